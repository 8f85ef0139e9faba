"""Mean-field Gaussian posterior (see `keras_stochastic.posteriors`)."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_stochastic import priors as priors_lib
from keras_stochastic import rng
from keras_stochastic.kl import STDDEV_FLOOR
from keras_stochastic.kl import softplus
from keras_stochastic.posteriors import masks


def get_stddev_initializer(identifier, name="kernel_stddev_initializer"):
    """A positive number means a constant standard deviation."""
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        if not identifier > 0:
            raise ValueError(
                f"Argument `{name}` must produce positive standard deviations. "
                f"Received: {name}={identifier}"
            )
        return keras.initializers.Constant(float(identifier))
    try:
        return keras.initializers.get(identifier)
    except ValueError as error:
        raise ValueError(
            f"Argument `{name}` must be a positive float or a Keras "
            f"initializer. Received: {name}={identifier!r}"
        ) from error


def inverse_softplus(values):
    """`rho` with `softplus(rho) == values`, stable for large values."""
    return values + ops.log(-ops.expm1(-values))


class InverseSoftplusInitializer(keras.initializers.Initializer):
    """Initializes `rho` so that `softplus(rho) + floor` follows `stddev_initializer`."""

    def __init__(
        self, stddev_initializer, floor=STDDEV_FLOOR, name="kernel_stddev_initializer"
    ):
        self.stddev_initializer = stddev_initializer
        self.floor = floor
        self.name = name

    def __call__(self, shape, dtype=None):
        stddev = self.stddev_initializer(shape, dtype=dtype)
        values = ops.convert_to_numpy(stddev)
        if not np.all(values > self.floor):
            raise ValueError(
                f"Argument `{self.name}` must produce standard deviations "
                f"greater than {self.floor}. Received values in "
                f"[{values.min()}, {values.max()}] from {self.stddev_initializer}"
            )
        return inverse_softplus(ops.convert_to_tensor(values - self.floor, dtype))


class GaussianWeights:
    """One call's view of a mean-field Gaussian posterior.

    The standard deviations (or variances) and the KL are computed once per
    view, on first use, and shared by the estimator and the KL term (in one
    fused op where the prior has one). The standard-normal draw of `noise` is
    kept, so that a Monte Carlo KL is estimated from the forward pass's own
    weight sample.
    """

    def __init__(self, mean, rho, prior, dtype, center=None, mask=None):
        # `cast` reads the variables (a no-op conversion otherwise): the fused
        # gradient must see tensors, not variables.
        self._mean32 = ops.cast(mean, "float32")
        self._rho = ops.cast(rho, "float32")
        # Pruning's mask: pruned weights get no noise and no KL.
        self._mask = None if mask is None else ops.cast(mask, "float32")
        # What the prior scores: the mean relative to a centred prior's centre.
        self._kl_mean32 = self._mean32
        if center is not None:
            self._kl_mean32 = self._mean32 - ops.cast(center, "float32")
        self.prior = prior
        self.dtype = dtype
        self.mean = ops.cast(self._mean32, dtype)
        self._stats = {}
        self._epsilon = None

    def _stddev_or_variance(self, square):
        if square not in self._stats:
            stats = None
            if self._mask is None:
                stats = self.prior.fused_kl(self._kl_mean32, self._rho, square)
            if stats is None:
                stddev = self._unmasked_stddev()
                if self._mask is not None:
                    stddev = stddev * self._mask
                stats = (ops.square(stddev) if square else stddev, None)
            self._stats[square] = stats
        return self._stats[square][0]

    def _unmasked_stddev(self):
        if "unmasked" not in self._stats:
            self._stats["unmasked"] = softplus(self._rho) + STDDEV_FLOOR
        return self._stats["unmasked"]

    @property
    def inference_kernel(self):
        return self.mean

    @property
    def stddev(self):
        """The standard deviations, float32."""
        return self._stddev_or_variance(square=False)

    @property
    def variance(self):
        """The elementwise variances, float32."""
        return self._stddev_or_variance(square=True)

    def noise(self, seed, sample_shape=()):
        shape = tuple(sample_shape) + tuple(self._mean32.shape)
        epsilon = rng.normal(shape, seed, self.dtype)
        # A Monte Carlo KL scores one weight sample: the first, if several.
        self._epsilon = epsilon[(0,) * len(sample_shape)] if sample_shape else epsilon
        return ops.cast(self.stddev, self.dtype) * epsilon

    def kl(self, seed):
        if self._mask is not None:
            return self.prior.kl(
                self._kl_mean32,
                self._unmasked_stddev(),
                seed,
                epsilon=self._epsilon,
                mask=self._mask,
            )
        for key in (False, True):
            kl = self._stats.get(key, (None, None))[1]
            if kl is not None:
                # Reuse the fused computation the estimator already made.
                return kl
        self._stddev_or_variance(square=False)
        kl = self._stats[False][1]
        if kl is not None:
            return kl
        return self.prior.kl(self._kl_mean32, self.stddev, seed, epsilon=self._epsilon)


class GaussianPosterior:
    """Mean-field Gaussian `q(w) = N(mean, stddev^2)`, `stddev = softplus(rho) + 1e-7`.

    Creates the variables `<prefix>_mean` (the trainable mean, initialized by
    the layer's kernel initializer, regularized and constrained like a Keras
    kernel) and `<prefix>_rho`; with a centred prior (`prior.centered`, e.g.
    `ks.priors.CenteredNormal`) also `<prefix>_prior_mean`, the prior's
    centre (non-trainable, initialized to the initial mean). Pruning adds
    `<prefix>_mask` (`add_mask`): weights where it is zero have standard
    deviation zero, so they are exactly zero in every sample, and are left
    out of the KL.
    """

    default_inference = "mean"

    def __init__(self, stddev_initializer, prior, prefix="kernel"):
        self.prefix = prefix
        self.stddev_initializer = get_stddev_initializer(
            stddev_initializer, f"{prefix}_stddev_initializer"
        )
        self.prior = priors_lib.get(prior)
        self.prior_mean = None
        self.mask = None

    def build(self, layer, shape, initializer, regularizer=None, constraint=None):
        self.mean = layer.add_weight(
            name=f"{self.prefix}_mean",
            shape=shape,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            autocast=False,
        )
        self.rho = layer.add_weight(
            name=f"{self.prefix}_rho",
            shape=shape,
            initializer=InverseSoftplusInitializer(
                self.stddev_initializer, name=f"{self.prefix}_stddev_initializer"
            ),
            autocast=False,
        )
        if self.prior.centered:
            mean = self.mean
            self.prior_mean = layer.add_weight(
                name=f"{self.prefix}_prior_mean",
                shape=shape,
                # A copy: JAX must not see one buffer in two variables.
                initializer=lambda shape, dtype=None: ops.copy(ops.cast(mean, dtype)),
                trainable=False,
                autocast=False,
            )

    def stddev(self):
        stddev = softplus(self.rho) + STDDEV_FLOOR
        if self.mask is not None:
            stddev = stddev * self.mask
        return stddev

    def add_mask(self, layer):
        """Creates `<prefix>_mask` (ones) on the built `layer` (once); returns it."""
        if self.mask is None:
            masks.check_prior_takes_mask(self.prior)
            self.mask = masks.add_pruning_mask(layer, self.mean, self.prefix)
        return self.mask

    def noise_parameters(self):
        """The variables of the noise, elementwise with the mean (pruning freezes them)."""
        return [self.rho]

    def __call__(self, dtype):
        return GaussianWeights(
            self.mean,
            self.rho,
            self.prior,
            dtype,
            center=self.prior_mean,
            mask=self.mask,
        )

    def get_config(self):
        return {
            f"{self.prefix}_stddev_initializer": keras.initializers.serialize(
                self.stddev_initializer
            ),
            "prior": priors_lib.serialize(self.prior),
        }
