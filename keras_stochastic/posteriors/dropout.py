"""Gaussian-dropout posterior `q(w) = N(theta, alpha theta^2)` (see `keras_stochastic.posteriors`)."""

import math
import numbers

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic import kl as kl_lib
from keras_stochastic import priors as priors_lib
from keras_stochastic import rng
from keras_stochastic.posteriors import masks

PARAMETERIZATIONS = ("additive", "weight", "neuron", "layer")
# Defaults of the initial log sigma^2 (additive; Molchanov et al.) and log
# alpha (other parameterizations; Neklyudov et al.'s LinearVDO).
DEFAULT_LOG_SIGMA2 = -10.0
DEFAULT_LOG_ALPHA = -5.0
# Marks a view's fused `(sigma^2, KL)` as not computed yet (None means "no fused op").
_NOT_COMPUTED = object()


def validate_threshold(threshold):
    return _validation.real(
        "threshold", threshold, kl_lib.LOG_ALPHA_MIN, kl_lib.LOG_ALPHA_MAX
    )


def get_log_initializer(identifier, name):
    """A finite number means a constant; anything else goes to `keras.initializers.get`."""
    if isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        if not math.isfinite(identifier):
            raise ValueError(
                f"Argument `{name}` must be a finite float or a Keras "
                f"initializer. Received: {name}={identifier!r}"
            )
        return keras.initializers.Constant(float(identifier))
    try:
        return keras.initializers.get(identifier)
    except ValueError as error:
        raise ValueError(
            f"Argument `{name}` must be a finite float or a Keras initializer. "
            f"Received: {name}={identifier!r}"
        ) from error


class VariationalDropoutWeights:
    """One call's view of a Gaussian-dropout posterior.

    `log alpha` (float32, clipped) is computed at most once per view and
    shared by the estimator, the KL and the mask. On CPU the elementwise
    passes over the kernel cost as much as the matmuls, so each quantity is
    computed in the fewest passes (see `VariationalDropoutPosterior`).
    """

    def __init__(self, posterior, dtype):
        self._posterior = posterior
        self.dtype = dtype
        self._theta = ops.convert_to_tensor(posterior.mean)
        self.mean = ops.cast(self._theta, dtype)
        self._log_alpha = None
        self._fused = _NOT_COMPUTED
        # Pruning's mask: pruned weights get no noise and no KL.
        self._mask = None
        if posterior.mask is not None:
            self._mask = ops.cast(posterior.mask, "float32")

    def _fused_stats(self):
        """`(sigma^2, KL)` from the prior's fused op, or None where it has none."""
        posterior = self._posterior
        if posterior.parameterization != "additive" or self._mask is not None:
            return None
        if self._fused is _NOT_COMPUTED:
            # `cast` reads the variables: TensorFlow's custom gradient must
            # see tensors, not variables. None where the prior has no fused op.
            self._fused = posterior.prior.fused_kl(
                ops.cast(posterior.mean, "float32"),
                ops.cast(posterior.log_variance, "float32"),
            )
        return self._fused

    @property
    def log_alpha(self):
        if self._log_alpha is None:
            self._log_alpha = self._posterior.log_alpha()
        return self._log_alpha

    @property
    def inference_kernel(self):
        keep = ops.less(self.log_alpha, self._posterior.threshold)
        return ops.cast(ops.where(keep, self._theta, 0.0), self.dtype)

    def _log_sigma2_is_variance(self):
        # The additive parameterization learns the variance itself.
        # Not with a prior that clips log alpha lower ("kingma"): the clipped
        # alpha then sets the noise.
        return self._posterior.parameterization == "additive" and (
            self._posterior.log_alpha_max == kl_lib.LOG_ALPHA_MAX
        )

    @property
    def variance(self):
        """The elementwise variances of the training noise, float32."""
        fused = self._fused_stats()
        if fused is not None:
            return fused[0]
        if self._log_sigma2_is_variance():
            variance = ops.exp(ops.convert_to_tensor(self._posterior.log_variance))
            if self._mask is not None:
                variance = variance * self._mask
            return variance
        return ops.exp(self.log_alpha) * ops.square(self._theta)

    def noise(self, seed, sample_shape=()):
        if self._log_sigma2_is_variance():
            stddev = ops.exp(0.5 * ops.convert_to_tensor(self._posterior.log_variance))
            if self._mask is not None:
                stddev = stddev * self._mask
        else:
            # Zero where theta is: a pruned weight needs no mask here.
            stddev = ops.exp(0.5 * self.log_alpha) * ops.abs(self._theta)
        shape = tuple(sample_shape) + tuple(self._theta.shape)
        epsilon = rng.normal(shape, seed, self.dtype)
        return ops.cast(stddev, self.dtype) * epsilon

    def kl(self, seed):
        fused = self._fused_stats()
        if fused is not None:
            return fused[1]
        if self._mask is not None:
            return self._posterior.prior.kl(
                self.log_alpha, self._theta, seed, mask=self._mask
            )
        return self._posterior.prior.kl(self.log_alpha, self._theta, seed)


class VariationalDropoutPosterior:
    """Gaussian dropout `q(w) = N(theta, alpha theta^2)` with a selectable `alpha` granularity.

    Creates the variables `<prefix>_mean` (theta, initialized by the layer's
    kernel initializer, regularized and constrained like a Keras kernel) and,
    by `parameterization`:

    - `"additive"`: `<prefix>_log_sigma2` of the kernel's shape, with
      `log alpha = log sigma^2 - log(theta^2 + 1e-8)` (Molchanov et al.,
      2017: the noise parameter is independent of theta, which keeps the
      gradient of theta low-variance at large alpha);
    - `"weight"`: `<prefix>_log_alpha` of the kernel's shape;
    - `"neuron"`: `<prefix>_log_alpha` of shape `(units,)` / `(filters,)`,
      one per output unit (broadcast over the kernel's last axis);
    - `"layer"`: `<prefix>_log_alpha` of shape `()`, one for the layer.

    `log alpha` is clipped to [-8, 8] ([-8, 0] with `kl_approximation=
    "kingma"`) and the clipped value is used in the KL, the inference mask
    `log alpha < threshold` and the training noise (variance `alpha
    theta^2`), except that the `"additive"` parameterization (unless with
    `"kingma"`) samples with variance `sigma^2 = exp(log sigma^2)` directly.
    Clipping stops the gradient of `log alpha` outside the range, as in the
    reference implementations.

    Pruning adds `<prefix>_mask` (`add_mask`): masked weights are left out
    of the KL, and with the `"additive"` parameterization, whose noise does
    not vanish with theta, their noise is masked too (the other
    parameterizations' noise is proportional to theta, zero once pruned).
    """

    default_inference = "mean"

    def __init__(
        self,
        parameterization="additive",
        kl_approximation="molchanov",
        prior="log_uniform",
        threshold=3.0,
        log_variance_initializer=None,
        prefix="kernel",
    ):
        self.parameterization = _validation.choice(
            "parameterization", parameterization, PARAMETERIZATIONS
        )
        self.prior = priors_lib.get_dropout_prior(prior, kl_approximation)
        # The config keeps a prior given by name as that name (the on-disk
        # format of the first version) and serializes an instance.
        self._prior_identifier = prior if isinstance(prior, str) else None
        self.threshold = validate_threshold(threshold)
        self.prefix = prefix
        self.mask = None
        self._log_variance_identifier = log_variance_initializer
        if log_variance_initializer is None:
            log_variance_initializer = (
                DEFAULT_LOG_SIGMA2
                if parameterization == "additive"
                else DEFAULT_LOG_ALPHA
            )
        self.log_variance_initializer = get_log_initializer(
            log_variance_initializer, "log_variance_initializer"
        )

    def build(self, layer, shape, initializer, regularizer=None, constraint=None):
        self.mean = layer.add_weight(
            name=f"{self.prefix}_mean",
            shape=shape,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            autocast=False,
        )
        if self.parameterization == "additive":
            name, noise_shape = "log_sigma2", shape
        elif self.parameterization == "weight":
            name, noise_shape = "log_alpha", shape
        elif self.parameterization == "neuron":
            name, noise_shape = "log_alpha", shape[-1:]
        else:
            name, noise_shape = "log_alpha", ()
        self.log_variance = layer.add_weight(
            name=f"{self.prefix}_{name}",
            shape=noise_shape,
            initializer=self.log_variance_initializer,
            autocast=False,
        )

    @property
    def kl_approximation(self):
        """The log-uniform KL approximation (`"molchanov"` for the other priors)."""
        return getattr(self.prior, "approximation", "molchanov")

    @property
    def log_alpha_max(self):
        """The upper clip of `log alpha`: the domain of the prior's KL."""
        return self.prior.log_alpha_max

    def log_alpha(self):
        """Clipped `log alpha` (float32) in the parameterization's shape."""
        if self.parameterization == "additive":
            theta = ops.convert_to_tensor(self.mean)
            log_alpha = self.log_variance - ops.log(
                ops.square(theta) + kl_lib.THETA_SQUARED_EPSILON
            )
        else:
            log_alpha = ops.convert_to_tensor(self.log_variance)
        return ops.clip(log_alpha, kl_lib.LOG_ALPHA_MIN, self.log_alpha_max)

    def add_mask(self, layer):
        """Creates `<prefix>_mask` (ones) on the built `layer` (once); returns it."""
        if self.mask is None:
            masks.check_prior_takes_mask(self.prior)
            self.mask = masks.add_pruning_mask(layer, self.mean, self.prefix)
        return self.mask

    def noise_parameters(self):
        """The variables of the noise, elementwise with theta (pruning freezes them)."""
        if tuple(self.log_variance.shape) == tuple(self.mean.shape):
            return [self.log_variance]
        return []  # a log alpha shared by a unit or the layer stays trainable

    def __call__(self, dtype):
        return VariationalDropoutWeights(self, dtype)

    def get_config(self):
        initializer = self._log_variance_identifier
        if initializer is not None and not isinstance(initializer, numbers.Real):
            initializer = keras.initializers.serialize(self.log_variance_initializer)
        return {
            "parameterization": self.parameterization,
            "kl_approximation": self.kl_approximation,
            "prior": self._prior_identifier or priors_lib.serialize(self.prior),
            "threshold": self.threshold,
            "log_variance_initializer": initializer,
        }
