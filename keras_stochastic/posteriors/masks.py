"""Pruning masks of posteriors: pruned weights are exactly zero in every sample.

Pruning (`ks.callbacks.FlipOutPruning`, `ks.pruning.snip`) masks a
stochastic layer's kernel mean through its `GradientNoise` optimizer. The
posterior's noise must vanish there too, so a posterior that has noise
parameters of its own (`GaussianPosterior`'s `rho`, the additive
`VariationalDropoutPosterior`'s `log sigma^2`) gets a `<prefix>_mask`
weight on its layer: its views multiply the noise (and the variance) by it
and leave the masked weights out of the KL, so their noise parameters get no
gradient (the optimizer also keeps them from moving, see
`GradientNoise`). The mask is a non-trainable float32 weight of the
kernel's shape, created after the layer's other weights when pruning begins,
so it is saved with the layer; a layer loaded from a file that has it
recreates it first (`StochasticLayer.load_own_variables`).
"""

import inspect

from keras_stochastic import _compat


def add_pruning_mask(layer, like, prefix):
    """Adds `<prefix>_mask` (ones, the shape of `like`) to the built `layer`."""
    with _compat.unlocked_state(layer):
        return layer.add_weight(
            name=f"{prefix}_mask",
            shape=like.shape,
            initializer="ones",
            dtype="float32",
            trainable=False,
            autocast=False,
        )


def check_prior_takes_mask(prior):
    """Raises if `prior.kl` cannot leave pruned weights out (no `mask` argument)."""
    if "mask" not in inspect.signature(prior.kl).parameters:
        raise ValueError(
            f"The prior {prior!r} cannot be used with pruning: its `kl` must "
            "accept a `mask` argument (zeros and ones of the kernel's shape) "
            "and sum over the weights where it is one, as the built-in priors "
            f"do. Received: prior={prior!r}"
        )
