"""Gaussian-dropout posterior `q(w) = N(theta, alpha theta^2)` (see `keras_stochastic.posteriors`)."""

import math
import numbers

import keras
from keras import ops

from keras_stochastic import _random
from keras_stochastic import kl as kl_lib

PARAMETERIZATIONS = ("additive", "weight", "neuron", "layer")
PRIORS = ("log_uniform", "student_t", "ard")

# log alpha is clipped to this range (Molchanov et al.'s code and
# google-research/state_of_sparsity use +-8); "kingma" lowers the upper end
# to 0 (alpha <= 1), the domain of its polynomial.
LOG_ALPHA_MIN = -8.0
LOG_ALPHA_MAX = 8.0
# Added to theta^2 under the log of the additive parameterization, as in the
# reference implementations, so that a zero theta gives a finite log alpha.
THETA_SQUARED_EPSILON = 1e-8
# Degrees of freedom of the Student-t prior (Neklyudov et al., 2019): close
# enough to zero that the prior is log-uniform for every |w| >> 1e-8.
STUDENT_T_DF = 1e-16
# Defaults of the initial log sigma^2 (additive; Molchanov et al.) and log
# alpha (other parameterizations; Neklyudov et al.'s LinearVDO).
DEFAULT_LOG_SIGMA2 = -10.0
DEFAULT_LOG_ALPHA = -5.0


def _validate_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(
            f"Argument `{name}` must be one of {list(allowed)}. "
            f"Received: {name}={value!r}"
        )
    return value


def validate_threshold(threshold):
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool):
        raise TypeError(
            "Argument `threshold` must be a float. "
            f"Received: threshold={threshold!r}"
        )
    if not LOG_ALPHA_MIN <= threshold <= LOG_ALPHA_MAX:
        raise ValueError(
            "Argument `threshold` must lie in the range log alpha is clipped to, "
            f"[{LOG_ALPHA_MIN}, {LOG_ALPHA_MAX}]. Received: threshold={threshold!r}"
        )
    return float(threshold)


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


def additive_molchanov_stats(theta, log_sigma2, log_alpha_max=LOG_ALPHA_MAX):
    """`(sigma^2, molchanov KL sum)` of the additive parameterization, with a fused gradient.

    `sigma^2 = exp(log_sigma2)` is the training noise's variance and the KL
    is `ks.kl.log_uniform_kl(log_alpha, "molchanov")` with `log_alpha =
    clip(log_sigma2 - log(theta^2 + 1e-8), -8, log_alpha_max)`. Autodiff
    through the clip, the sigmoid, the softplus and the two sums makes a
    chain of kernel-sized temporaries; the gradient is written out instead,
    and each weight-sized pass is made to count (on CPU these passes cost as
    much as the layer's matmuls). With `u = -log_alpha` (clipped),
    `s = sigmoid(u)` and `f = sigmoid(k3 u - k2)`:

    - `softplus(u) = -log(1 - s)`, so one sigmoid serves the KL's softplus
      term and its derivative `s` (with u in [-8, 8], `1 - s >= 3.3e-4` is
      exact to ~2e-4 relative in float32, ~1e-4 nats per weight);
    - `d KL / d u = k1 k3 f (1 - f) + 0.5 s` where u was not clipped (0
      where it was, as for `ops.clip`), `d u / d log_sigma2 = -1`,
      `d u / d theta = 2 theta / (theta^2 + 1e-8)`.
    """
    k1, k2, k3 = kl_lib.MOLCHANOV_K1, kl_lib.MOLCHANOV_K2, kl_lib.MOLCHANOV_K3

    @ops.custom_gradient
    def stats(theta, log_sigma2):
        theta_squared = ops.square(theta) + THETA_SQUARED_EPSILON
        neg_log_alpha = ops.log(theta_squared) - log_sigma2
        clipped = ops.clip(neg_log_alpha, -log_alpha_max, -LOG_ALPHA_MIN)
        fit = ops.sigmoid(k3 * clipped - k2)
        sigmoid = ops.sigmoid(clipped)
        kl = k1 * ops.sum(fit) - 0.5 * ops.sum(ops.log1p(-sigmoid))
        variance = ops.exp(log_sigma2)

        def grad(*args, upstream=None):
            # TensorFlow passes one gradient per output, JAX one tuple.
            if upstream is None:
                upstream = args[0] if len(args) == 1 else args
            d_variance, d_kl = upstream
            # The scalar factors are folded into the coefficients.
            d_u = (fit - ops.square(fit)) * (k1 * k3 * d_kl) + sigmoid * (0.5 * d_kl)
            d_u = ops.where(ops.equal(clipped, neg_log_alpha), d_u, 0.0)
            d_theta = (theta * d_u) / (0.5 * theta_squared)
            if d_variance is None:
                return d_theta, -d_u
            return d_theta, d_variance * variance - d_u

        return (variance, kl), grad

    return stats(theta, log_sigma2)


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
        self._fused = None

    def _fused_stats(self):
        """`(sigma^2, KL)` from `additive_molchanov_stats`, or None where it does not apply."""
        posterior = self._posterior
        if not (
            posterior.parameterization == "additive"
            and posterior.kl_approximation == "molchanov"
            and posterior.prior == "log_uniform"
        ):
            return None
        if self._fused is None:
            # `cast` reads the variables: TensorFlow's custom gradient must
            # see tensors, not variables.
            self._fused = additive_molchanov_stats(
                ops.cast(posterior.mean, "float32"),
                ops.cast(posterior.log_variance, "float32"),
                posterior.log_alpha_max,
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
        return self._posterior.parameterization == "additive" and (
            self._posterior.kl_approximation != "kingma"
        )

    @property
    def variance(self):
        fused = self._fused_stats()
        if fused is not None:
            return ops.cast(fused[0], self.dtype)
        if self._log_sigma2_is_variance():
            variance = ops.exp(ops.convert_to_tensor(self._posterior.log_variance))
        else:
            variance = ops.exp(self.log_alpha) * ops.square(self._theta)
        return ops.cast(variance, self.dtype)

    def noise(self, seed):
        if self._log_sigma2_is_variance():
            stddev = ops.exp(0.5 * ops.convert_to_tensor(self._posterior.log_variance))
        else:
            stddev = ops.exp(0.5 * self.log_alpha) * ops.abs(self._theta)
        epsilon = _random.normal(self._theta.shape, seed, self.dtype)
        return ops.cast(stddev, self.dtype) * epsilon

    def kl(self, seed):
        posterior = self._posterior
        fused = self._fused_stats()
        if fused is not None:
            return fused[1]
        if posterior.prior == "student_t":
            return self._student_t_kl(seed)
        if posterior.prior == "log_uniform" and posterior.kl_approximation == "monte_carlo":
            # One draw per weight, also for a shared log alpha.
            log_alpha = ops.broadcast_to(self.log_alpha, self._theta.shape)
            return ops.sum(
                kl_lib.log_uniform_kl_elementwise(log_alpha, "monte_carlo", seed)
            )
        if posterior.prior == "ard":
            # Kharitonov et al. (2018): with the ARD prior N(0, tau^2) at its
            # optimal tau^2 = (1 + alpha) theta^2, KL = 0.5 log(1 + 1/alpha).
            total = 0.5 * ops.sum(ops.softplus(-self.log_alpha))
        elif posterior.kl_approximation == "molchanov":
            total = kl_lib.molchanov_kl_sum(neg_log_alpha=-self.log_alpha)
        else:
            total = ops.sum(
                kl_lib.log_uniform_kl_elementwise(self.log_alpha, "kingma")
            )
        # A log alpha shared by a neuron or the layer counts once per weight.
        kernel_size = math.prod(self._theta.shape)
        return (kernel_size // math.prod(self.log_alpha_shape)) * total

    @property
    def log_alpha_shape(self):
        return self._posterior.log_variance.shape

    def _student_t_kl(self, seed):
        # One-sample Monte Carlo estimate of E_q[log q(w) - log p(w)] with the
        # entropy of q analytic. log p drops its normalizer, and the constant
        # is set so that the KL matches the log-uniform one (-> 0 as alpha ->
        # inf) wherever |w| >> sqrt(df). The sample's variance is
        # alpha (theta^2 + 1e-8), finite for theta = 0.
        theta = self._theta
        log_variance = self.log_alpha + ops.log(
            ops.square(theta) + THETA_SQUARED_EPSILON
        )
        epsilon = _random.normal(theta.shape, seed, "float32")
        weights = theta + ops.exp(0.5 * log_variance) * epsilon
        per_weight = (
            kl_lib.LOG_UNIFORM_CONSTANT
            - 0.5 * log_variance
            + (0.5 * (STUDENT_T_DF + 1.0))
            * ops.log(ops.square(weights) + STUDENT_T_DF)
        )
        return ops.sum(per_weight)


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
        self.parameterization = _validate_choice(
            "parameterization", parameterization, PARAMETERIZATIONS
        )
        self.kl_approximation = _validate_choice(
            "kl_approximation", kl_approximation, kl_lib.LOG_UNIFORM_APPROXIMATIONS
        )
        self.prior = _validate_choice("prior", prior, PRIORS)
        if prior != "log_uniform" and kl_approximation != "molchanov":
            raise ValueError(
                "Argument `kl_approximation` applies to the log-uniform prior "
                f"only; the {prior!r} prior has its own KL. Pass "
                'prior="log_uniform" or leave kl_approximation at its default. '
                f"Received: kl_approximation={kl_approximation!r}, prior={prior!r}"
            )
        self.threshold = validate_threshold(threshold)
        self.prefix = prefix
        self._log_variance_identifier = log_variance_initializer
        if log_variance_initializer is None:
            log_variance_initializer = (
                DEFAULT_LOG_SIGMA2 if parameterization == "additive" else DEFAULT_LOG_ALPHA
            )
        self.log_variance_initializer = get_log_initializer(
            log_variance_initializer, "log_variance_initializer"
        )
        self.log_alpha_max = 0.0 if kl_approximation == "kingma" else LOG_ALPHA_MAX

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

    def log_alpha(self):
        """Clipped `log alpha` (float32) in the parameterization's shape."""
        if self.parameterization == "additive":
            theta = ops.convert_to_tensor(self.mean)
            log_alpha = self.log_variance - ops.log(
                ops.square(theta) + THETA_SQUARED_EPSILON
            )
        else:
            log_alpha = ops.convert_to_tensor(self.log_variance)
        return ops.clip(log_alpha, LOG_ALPHA_MIN, self.log_alpha_max)

    def __call__(self, dtype):
        return VariationalDropoutWeights(self, dtype)

    def get_config(self):
        initializer = self._log_variance_identifier
        if initializer is not None and not isinstance(initializer, numbers.Real):
            initializer = keras.initializers.serialize(self.log_variance_initializer)
        return {
            "parameterization": self.parameterization,
            "kl_approximation": self.kl_approximation,
            "prior": self.prior,
            "threshold": self.threshold,
            "log_variance_initializer": initializer,
        }
