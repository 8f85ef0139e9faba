"""`StochasticLayer`: what every keras_stochastic layer shares.

- a `keras.random.SeedGenerator` built from `seed`, the source of every draw;
- `kl_weight`, held in a non-trainable float32 variable, so that changing it
  (`ks.set_kl_weight`, `ks.callbacks.KLAnnealing`) reaches train steps that are
  already compiled;
- the inference mode (`"mean"` or `"sample"`), held in a non-trainable bool
  variable and switched with `ops.cond` when `training` is false, so that
  `ks.set_inference` reaches predict functions that are already compiled;
- the one stochastic forward path: `_draw_kernel` (the estimator's draw of a
  kernel, with the zero-mean flag applied), `_add_kl` (`add_loss(kl_weight *
  KL)`) and `_stochastic_linear` (the training/inference switch around them),
  used by the dense and convolution `call` and by the recurrent cells'
  per-sequence hook;
- `_drop_mean_term`, a Python flag that makes the estimator sample without
  its mean term (the "zero-mean approximation" of Neklyudov et al., 2019,
  measured by `ks.callbacks.PhaseTransitionMonitor`). It is read when `call`
  is traced: a function compiled while it is set keeps it, one compiled
  without it ignores it.

Subclasses provide `posterior` (see `keras_stochastic.posteriors`) and the
`estimator` name (a class attribute, or an instance attribute where it is an
argument).
"""

import warnings

import keras
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic import estimators as estimators_lib
from keras_stochastic import rng

# What `kl_weight=None` (not set) stands for.
DEFAULT_KL_WEIGHT = 1.0


class StochasticLayer(keras.layers.Layer):
    """Base class of the layers with random weights.

    Args:
        kl_weight: Non-negative float, multiplies the KL term that the layer
            adds with `add_loss`; `None` (not set) means 1.0, and the layer
            warns the first time it trains (see `_warn_if_default_kl_weight`).
        inference: `"mean"` or `"sample"`, what the layer does when `training`
            is false.
        seed: Integer or None, seeds the layer's `SeedGenerator`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    estimator = None
    # Whether the layer's KL is identically 0 (zero-mean layers): no warning then.
    _kl_is_zero = False
    # Whether the layer multiplies its inputs by a kernel (the kernel
    # inventory, `keras_stochastic.kernels`, reads it).
    _has_kernel = True

    def __init__(self, kl_weight=None, inference="mean", seed=None, **kwargs):
        super().__init__(**kwargs)
        self._kl_weight_is_default = kl_weight is None
        self._kl_weight_warned = False
        self._kl_weight_value = (
            DEFAULT_KL_WEIGHT if kl_weight is None else _validation.kl_weight(kl_weight)
        )
        self._inference_value = _validation.inference(inference)
        self.seed = _validation.seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._kl_weight = None
        self._sample_at_inference = None
        self._drop_mean_term = False

    def _build_stochastic_state(self):
        """Creates the `kl_weight` and inference-mode variables (after the layer's weights)."""
        self._kl_weight = self.add_weight(
            name="kl_weight",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(self._kl_weight_value),
            trainable=False,
            autocast=False,
        )
        self._sample_at_inference = self.add_weight(
            name="sample_at_inference",
            shape=(),
            dtype="bool",
            initializer="ones" if self._inference_value == "sample" else "zeros",
            trainable=False,
        )

    @property
    def kl_weight(self):
        """Float multiplying the layer's KL term; settable, even after compiling."""
        if self._kl_weight is None:
            return self._kl_weight_value
        return float(ops.convert_to_numpy(self._kl_weight))

    @kl_weight.setter
    def kl_weight(self, value):
        self._kl_weight_value = _validation.kl_weight(value)
        self._kl_weight_is_default = False
        if self._kl_weight is not None:
            self._kl_weight.assign(self._kl_weight_value)

    def _warn_if_default_kl_weight(self, training=True, owner=None):
        """Warns, once per layer, when it trains with `kl_weight` never set.

        `fit` adds layer losses to the batch-mean data loss, so the default
        1.0 weighs the KL of every weight against one example's loss, and
        the KL usually wins (a two-layer `DenseFlipout` MLP on digits trains
        to chance level). Silenced by any explicit value, `ks.set_kl_weight`
        or `ks.callbacks.KLAnnealing` with an explicit target. `owner` is
        the layer the message names (a recurrent layer for its cell).
        """
        owner = owner or self
        if not (training and self._kl_weight_is_default) or self._kl_is_zero:
            return
        if self._kl_weight_warned:
            return
        self._kl_weight_warned = True
        warnings.warn(
            f"Layer {owner.name!r} ({type(owner).__name__}) is training with "
            "`kl_weight` not set, so it is 1.0. Keras adds the KL term to the "
            "*batch-mean* data loss, so 1.0 weighs the KL of all the layer's "
            "weights against a single example's loss, and usually keeps the "
            "model from learning. Pass `kl_weight=1 / num_train_examples` to "
            "the layer (or call `ks.set_kl_weight(model, 1 / "
            "num_train_examples)` before `fit`); pass `kl_weight=1.0` to keep "
            "1.0 without this warning.",
            UserWarning,
            stacklevel=2,
        )

    @property
    def inference(self):
        """`"mean"` or `"sample"`; settable, even after compiling."""
        if self._sample_at_inference is None:
            return self._inference_value
        sample = bool(ops.convert_to_numpy(self._sample_at_inference))
        return "sample" if sample else "mean"

    @inference.setter
    def inference(self, mode):
        self._inference_value = _validation.inference(mode)
        if self._sample_at_inference is not None:
            self._sample_at_inference.assign(mode == "sample")

    @property
    def _estimator(self):
        return estimators_lib.get(self.estimator)

    def _sampling(self):
        """Whether inference samples: a bool tensor, for `ops.cond`."""
        return ops.logical_and(self._sample_at_inference, True)

    def _draw_kernel(
        self, posterior, inputs, seeds, channel_axis=-1, out_channels=None
    ):
        """`(draw, weights)`: the estimator's draw of one kernel and its posterior view.

        With `_drop_mean_term` set the draw has no mean term (the zero-mean
        approximation); `weights` is the full view, for the KL.
        """
        weights = posterior(self.compute_dtype)
        view = _WithoutMean(weights) if self._drop_mean_term else weights
        draw = self._estimator.draw(view, inputs, seeds, channel_axis, out_channels)
        return draw, weights

    def _add_kl(self, weights):
        """Adds `kl_weight * KL(q || p)` of a posterior view to the layer's losses.

        Called after the view was used to sample, so that a Monte Carlo KL
        reuses the forward pass's weight sample.
        """
        self.add_loss(self._kl_weight * weights.kl(self.seed_generator))

    def _stochastic_linear(
        self, linear, inputs, training, channel_axis=-1, out_channels=None
    ):
        """`linear(inputs, kernel)` under the estimator when sampling, the inference kernel otherwise.

        Training always samples; otherwise the inference-mode variable
        chooses, inside `ops.cond` (whose branches get predrawn seeds). Adds
        the KL term on every call. The estimator checks the inputs first
        (`Estimator.check_inputs`) when the call samples: in training, or in
        `"sample"` inference mode as set when the function is traced.
        """
        estimator = self._estimator
        dtype = self.compute_dtype
        if training or self._inference_value == "sample":
            # Only where the call will sample: a "mean" call never draws.
            estimator.check_inputs(inputs, channel_axis, out_channels)

        def sample(seeds):
            draw, weights = self._draw_kernel(
                self.posterior, inputs, seeds, channel_axis, out_channels
            )
            return estimator.apply(linear, inputs, draw), weights

        if training:
            self._warn_if_default_kl_weight(training)
            outputs, weights = sample([self.seed_generator] * estimator.num_seeds)
        else:
            seeds = rng.predraw(self.seed_generator, estimator.num_seeds)
            outputs = self._switch(
                training,
                lambda: sample(seeds)[0],
                lambda: estimators_lib.MEAN(
                    linear, inputs, self.posterior(dtype), None
                ),
            )
            # A separate view: in predict functions this KL feeds nothing and
            # is pruned, and the mean branch computes no standard deviations.
            weights = self.posterior(dtype)
        self._add_kl(weights)
        return outputs

    def _switch(self, training, sample_fn, mean_fn):
        """`sample_fn()` when training, else the branch the inference mode chooses.

        The choice is an `ops.cond` on the inference-mode variable, so that
        `ks.set_inference` reaches compiled functions; neither branch may
        advance a seed generator (JAX), hence the predrawn seeds.
        """
        if training:
            return sample_fn()
        return ops.cond(self._sampling(), sample_fn, mean_fn)

    def _prunable_variables(self):
        """The kernel variables a pruning callback may mask (never biases)."""
        mean = getattr(self.posterior, "mean", None)
        return [mean] if mean is not None else []

    def _posteriors(self):
        """The kernel posteriors of the layer."""
        posterior = getattr(self, "posterior", None)
        return [] if posterior is None else [posterior]

    def _maskable_posteriors(self):
        """The kernel posteriors whose noise pruning must mask (`add_mask`)."""
        return [p for p in self._posteriors() if hasattr(p, "add_mask")]

    def _add_pruning_masks(self):
        """Gives the maskable kernel posteriors their masks (once).

        Returns:
            `{id(kernel mean): (mask, noise parameters)}` for those posteriors.
        """
        return {
            id(posterior.mean): (posterior.add_mask(self), posterior.noise_parameters())
            for posterior in self._maskable_posteriors()
        }

    def load_own_variables(self, store):
        # A layer saved while pruned has its posteriors' masks after its
        # other weights: create them, then load.
        missing = [p for p in self._maskable_posteriors() if p.mask is None]
        own = len(_compat.own_variables(self))
        if missing and len(store.keys()) == own + len(missing):
            self._add_pruning_masks()
        super().load_own_variables(store)

    def kl_divergence(self):
        """KL(q || p) of the layer's weights, float32, without the kl_weight."""
        return self.posterior(self.compute_dtype).kl(self.seed_generator)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kl_weight": None if self._kl_weight_is_default else self.kl_weight,
                "inference": self.inference,
                "seed": self.seed,
            }
        )
        return config


class _WithoutMean:
    """A posterior view whose mean is dropped; its noise and variance are kept."""

    mean = None

    def __init__(self, weights):
        self._weights = weights

    def __getattr__(self, name):
        return getattr(self._weights, name)


class GaussianKernelMixin:
    """Read-only views of a mean-field Gaussian kernel posterior."""

    @property
    def kernel_mean(self):
        """The trainable posterior mean of the kernel (a variable)."""
        return self.posterior.mean

    @property
    def kernel_stddev(self):
        """The posterior standard deviation of the kernel (a float32 tensor)."""
        return self.posterior.stddev()

    @property
    def prior(self):
        """The kernel prior (a `keras_stochastic.priors.Prior`)."""
        return self.posterior.prior
