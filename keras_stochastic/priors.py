"""Priors over weights, as small serializable classes.

Every prior is a registered Keras object with a `get_config`, never a
callable or a lambda, so models using them save to `.keras` files and load
with `safe_mode=True`. Each KL formula lives once, in `keras_stochastic.kl`
(the function API); a prior picks the formula for its posterior family and,
where one exists, the fused forward-and-gradient kernel that computes it
faster (tested against the formula).

Two families, by the posterior they score:

- `GaussianPrior` (`Normal`, `ScaleMixtureNormal`, `CenteredNormal`): priors
  of the mean-field Gaussian posterior `N(mean, stddev^2)` of the flipout,
  local reparameterization and reparameterization layers:
  `kl(mean, stddev, seed, epsilon=None)`. A prior with `centered = True`
  (`CenteredNormal`) is located at a per-weight centre that the layer holds
  as a non-trainable weight; its `kl` receives `mean - center`.
- `DropoutPrior` (`LogUniform`, `StudentT`, `ARD`): priors of the
  Gaussian-dropout posterior `N(theta, alpha theta^2)` of the variational
  dropout layers: `kl(log_alpha, theta, seed)`.
"""

import math

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic import kl as kl_lib
from keras_stochastic import rng

_LOG_2PI = math.log(2.0 * math.pi)
# The narrow component's default standard deviation (Blundell et al.: e^-6).
_NARROW_STDDEV = math.exp(-6.0)


@keras.saving.register_keras_serializable(package="keras_stochastic")
class Prior:
    """Base class of weight priors.

    Subclasses implement `kl(...)`, the KL divergence from the posterior to
    the prior summed over all weights (a float32 scalar), with the arguments
    of their family (`GaussianPrior`, `DropoutPrior`), and `get_config()`.
    """

    def kl(self, *args, **kwargs):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_stochastic")
class GaussianPrior(Prior):
    """Base class of priors of the mean-field Gaussian posterior `N(mean, stddev^2)`.

    Subclasses implement `kl(mean, stddev, seed, epsilon=None, mask=None)`:
    `epsilon`, when given, is the standard-normal draw of the forward pass's
    weight sample `w = mean + stddev * epsilon`, which a Monte Carlo KL
    reuses instead of drawing its own; `mask`, when given (zeros and ones of
    the kernel's shape, from pruning), restricts the sum to the weights where
    it is one. `stddev` is unmasked.

    `centered` (a class attribute, default False): whether the prior sits at
    a per-weight centre `c` instead of at zero. The posterior then creates a
    non-trainable weight `<prefix>_prior_mean` holding `c` and passes
    `mean - c` as `mean` to `kl` and `fused_kl`: for a location family
    `p(w) = p0(w - c)`, `KL(N(mean, s^2) || p) = KL(N(mean - c, s^2) || p0)`.
    """

    centered = False

    def kl(self, mean, stddev, seed, epsilon=None, mask=None):
        raise NotImplementedError

    def fused_kl(self, mean, rho, square):
        """`(stddev or stddev^2, KL)` in one fused op, or None where the prior has none."""
        return None


@keras.saving.register_keras_serializable(package="keras_stochastic")
class Normal(GaussianPrior):
    """Zero-mean normal prior `p(w) = N(0, stddev^2)`; its KL is analytic.

    Args:
        stddev: Positive float, the prior standard deviation.

    Example:

    >>> layer = ks.layers.DenseFlipout(10, prior=ks.priors.Normal(0.1))
    """

    def __init__(self, stddev=1.0):
        self.stddev = _validation.positive("stddev", stddev)

    def kl(self, mean, stddev, seed=None, epsilon=None, mask=None):
        return kl_lib.normal_kl(mean, stddev, self.stddev, mask=mask)

    def fused_kl(self, mean, rho, square):
        return kl_lib.normal_kl_fused(mean, rho, self.stddev, square)

    def get_config(self):
        return {"stddev": self.stddev}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class CenteredNormal(Normal):
    """Normal prior centred on stored weights, `p(w) = N(center, stddev^2)`; analytic KL.

    `KL(N(mean, s^2) || N(center, stddev^2))` per weight is
    `log(stddev / s) + (s^2 + (mean - center)^2) / (2 stddev^2) - 1/2`, the
    `Normal` KL of `mean - center`.

    The centre is data, not configuration: the layer holds it as a
    non-trainable float32 weight of the kernel's shape, `kernel_prior_mean`
    (and `recurrent_kernel_prior_mean` for a stochastic recurrent kernel),
    created after the posterior's own weights. So it is saved and restored
    with the other weights (`.keras` files, checkpoints), and this object's
    config is only `stddev`. A layer built with this prior starts with the
    centre equal to the initial kernel mean (a prior at initialisation);
    `ks.to_bayesian(..., prior=ks.priors.CenteredNormal(...))` sets it to the
    trained kernel, the empirical prior of MOPED (Krishnan et al., 2020).
    Assign `layer.posterior.prior_mean` to move it.

    Args:
        stddev: Positive float, the prior standard deviation around the centre.

    Example:

    >>> bayesian = ks.to_bayesian(model, prior=ks.priors.CenteredNormal(0.1))

    References:
        - [Krishnan et al., 2020](https://arxiv.org/abs/1906.05323), Specifying
          Weight Priors in Bayesian Deep Neural Networks with Empirical Bayes.
    """

    # Everything else is `Normal`'s: the posterior passes `mean - center`.
    centered = True


@keras.saving.register_keras_serializable(package="keras_stochastic")
class ScaleMixtureNormal(GaussianPrior):
    """Scale mixture of two zero-mean normals (Blundell et al., 2015).

    `p(w) = pi N(w; 0, stddev1^2) + (1 - pi) N(w; 0, stddev2^2)`

    The KL has no closed form, so it is estimated by Monte Carlo from one
    weight sample `w ~ q` per call, `KL ~ sum(log q(w) - log p(w))`, as
    Blundell et al. do: the sample of the forward pass where there is one
    (reparameterization: the kernel sample; flipout: `mean + Delta W`, the
    shared perturbation before its sign flips, itself a draw from `q`), so the
    KL costs no extra draw. Local reparameterization samples no weights, so
    there the KL draws its own `w`: one weight-sized Gaussian draw per call.
    The estimate is unbiased; its noise adds to the gradient noise of
    training.

    Args:
        pi: Float in (0, 1), the weight of the first component.
        stddev1: Positive float, the wide component's standard deviation.
        stddev2: Positive float, the narrow component's standard deviation.

    References:
        - [Blundell et al., 2015](https://arxiv.org/abs/1505.05424),
          Weight Uncertainty in Neural Networks.
    """

    def __init__(self, pi=0.5, stddev1=1.0, stddev2=_NARROW_STDDEV):
        self.pi = _validation.real("pi", pi, 0.0, 1.0, low_open=True, high_open=True)
        self.stddev1 = _validation.positive("stddev1", stddev1)
        self.stddev2 = _validation.positive("stddev2", stddev2)

    def log_prob(self, weights):
        """Log density of the mixture, elementwise."""
        weights = ops.cast(weights, "float32")
        half_square = 0.5 * ops.square(weights)
        first = (
            math.log(self.pi) - math.log(self.stddev1) - 0.5 * _LOG_2PI
        ) - half_square / self.stddev1**2
        second = (
            math.log1p(-self.pi) - math.log(self.stddev2) - 0.5 * _LOG_2PI
        ) - half_square / self.stddev2**2
        return ops.logaddexp(first, second)

    def kl(self, mean, stddev, seed, epsilon=None, mask=None):
        mean = ops.cast(mean, "float32")
        stddev = ops.cast(stddev, "float32")
        if epsilon is None:
            noise = rng.normal(mean.shape, seed)
        else:
            noise = ops.cast(epsilon, "float32")
        weights = mean + stddev * noise
        if mask is not None:
            # log q(w) - log p(w), per kept weight.
            per_weight = (
                -ops.log(stddev)
                - 0.5 * ops.square(noise)
                - 0.5 * _LOG_2PI
                - self.log_prob(weights)
            )
            return _masked_sum(per_weight, mask)
        log_q = -ops.sum(ops.log(stddev)) - 0.5 * ops.sum(ops.square(noise))
        log_q = log_q - 0.5 * _LOG_2PI * math.prod(mean.shape)
        return log_q - ops.sum(self.log_prob(weights))

    def get_config(self):
        return {"pi": self.pi, "stddev1": self.stddev1, "stddev2": self.stddev2}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class DropoutPrior(Prior):
    """Base class of priors of the Gaussian-dropout posterior `N(theta, alpha theta^2)`.

    Subclasses implement `kl(log_alpha, theta, seed, mask=None)`, summed
    over the weights: `log_alpha` (float32, clipped to `[LOG_ALPHA_MIN,
    log_alpha_max]` by the layer) broadcasts against `theta`; a `log_alpha`
    shared by a unit or a layer counts once per weight it covers, and with a
    `mask` (zeros and ones of `theta`'s shape, from pruning) once per weight
    where the mask is one.
    """

    # The upper clip of log alpha the prior's KL is valid up to.
    log_alpha_max = kl_lib.LOG_ALPHA_MAX

    def kl(self, log_alpha, theta, seed, mask=None):
        raise NotImplementedError

    def fused_kl(self, theta, log_sigma2):
        """`(sigma^2, KL)` of the additive parameterization in one fused op, or None."""
        return None


def _once_per_weight(total, log_alpha, theta):
    """`total`, a sum over `log_alpha`, counted once per weight of `theta` it covers."""
    return (math.prod(theta.shape) // math.prod(log_alpha.shape)) * total


def _masked_sum(per_weight, mask):
    """`sum(per_weight)`, or its sum over the weights where `mask` is one.

    `per_weight` broadcasts against `mask`, so a value shared by a unit or
    a layer counts once per kept weight.
    """
    if mask is None:
        return ops.sum(per_weight)
    return ops.sum(per_weight * ops.cast(mask, "float32"))


@keras.saving.register_keras_serializable(package="keras_stochastic")
class LogUniform(DropoutPrior):
    """The improper log-uniform prior `p(|w|) ~ 1 / |w|` (Kingma et al.; Molchanov et al.).

    Its KL from `N(theta, alpha theta^2)` depends on `alpha` only (see
    `ks.kl.log_uniform_kl`, which computes the same values):

    - `"molchanov"`: Molchanov et al.'s fit, for any `alpha` (default);
    - `"kingma"`: Kingma et al.'s polynomial, valid for `alpha <= 1`, so the
      layers clip `log alpha` to [-8, 0] with it;
    - `"monte_carlo"`: the exact expectation, one draw per weight.

    Args:
        approximation: `"molchanov"`, `"kingma"` or `"monte_carlo"`.
    """

    def __init__(self, approximation="molchanov"):
        self.approximation = _validation.choice(
            "approximation", approximation, kl_lib.LOG_UNIFORM_APPROXIMATIONS
        )
        self.log_alpha_max = 0.0 if approximation == "kingma" else kl_lib.LOG_ALPHA_MAX

    def kl(self, log_alpha, theta, seed, mask=None):
        if self.approximation == "monte_carlo":
            # One draw per weight, also for a shared log alpha.
            log_alpha = ops.broadcast_to(log_alpha, theta.shape)
            return _masked_sum(
                kl_lib.log_uniform_kl_elementwise(log_alpha, "monte_carlo", seed),
                mask,
            )
        if mask is not None:
            return _masked_sum(
                kl_lib.log_uniform_kl_elementwise(log_alpha, self.approximation),
                mask,
            )
        if self.approximation == "molchanov":
            total = kl_lib.molchanov_kl_sum(-log_alpha)
        else:
            total = ops.sum(kl_lib.log_uniform_kl_elementwise(log_alpha, "kingma"))
        return _once_per_weight(total, log_alpha, theta)

    def fused_kl(self, theta, log_sigma2):
        if self.approximation != "molchanov":
            return None
        return kl_lib.log_uniform_kl_fused(theta, log_sigma2, self.log_alpha_max)

    def get_config(self):
        return {"approximation": self.approximation}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class StudentT(DropoutPrior):
    """Student-t prior with `df` degrees of freedom (Neklyudov et al., 2019).

    A proper prior; with `df` close to zero (the default 1e-16) it is
    log-uniform for every `|w| >> sqrt(df)`. Its KL from `N(theta, alpha
    theta^2)` is estimated with one draw per weight,
    `E_q[log q(w) - log p(w)]` with the entropy of `q` analytic; the constant
    is set so that it matches the log-uniform KL (-> 0 as alpha -> inf)
    wherever `|w| >> sqrt(df)`. The sample's variance is `alpha (theta^2 +
    1e-8)`, finite for `theta = 0`.

    Args:
        df: Positive float, the degrees of freedom.
    """

    def __init__(self, df=1e-16):
        self.df = _validation.positive("df", df)

    def kl(self, log_alpha, theta, seed, mask=None):
        log_variance = log_alpha + ops.log(
            ops.square(theta) + kl_lib.THETA_SQUARED_EPSILON
        )
        epsilon = rng.normal(theta.shape, seed, "float32")
        weights = theta + ops.exp(0.5 * log_variance) * epsilon
        per_weight = (
            kl_lib.LOG_UNIFORM_CONSTANT
            - 0.5 * log_variance
            + (0.5 * (self.df + 1.0)) * ops.log(ops.square(weights) + self.df)
        )
        return _masked_sum(per_weight, mask)

    def get_config(self):
        return {"df": self.df}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class ARD(DropoutPrior):
    """Automatic relevance determination: `N(0, tau^2)` per weight at its optimal `tau^2`.

    With `tau^2 = (1 + alpha) theta^2`, the value that minimises the KL from
    `N(theta, alpha theta^2)`, the KL is `0.5 log(1 + 1 / alpha)` per weight
    (Kharitonov et al., 2018).
    """

    def kl(self, log_alpha, theta, seed=None, mask=None):
        if mask is not None:
            return _masked_sum(0.5 * kl_lib.softplus(-log_alpha), mask)
        total = 0.5 * ops.sum(kl_lib.softplus(-log_alpha))
        return _once_per_weight(total, log_alpha, theta)


_GAUSSIAN_ALIASES = {
    "normal": Normal,
    "scale_mixture_normal": ScaleMixtureNormal,
    "centered_normal": CenteredNormal,
}
_DROPOUT_ALIASES = {"log_uniform": LogUniform, "student_t": StudentT, "ard": ARD}


def _get(identifier, family, aliases):
    if isinstance(identifier, family):
        return identifier
    if isinstance(identifier, str) and identifier in aliases:
        return aliases[identifier]()
    message = (
        f"Argument `prior` must be a `keras_stochastic.priors.{family.__name__}` "
        f"instance, its serialized config, or one of {sorted(aliases)}. "
        f"Received: prior={identifier!r}"
    )
    if isinstance(identifier, dict):
        try:
            prior = keras.saving.deserialize_keras_object(identifier)
        except (TypeError, ValueError) as error:
            raise ValueError(message) from error
        if isinstance(prior, family):
            return prior
    raise ValueError(message)


def get(identifier):
    """A `GaussianPrior` from a prior, a name or a serialized config."""
    return _get(identifier, GaussianPrior, _GAUSSIAN_ALIASES)


def get_dropout_prior(identifier, approximation="molchanov"):
    """A `DropoutPrior` from a prior, a name or a serialized config.

    `approximation` builds the `LogUniform` prior named `"log_uniform"`; any
    other prior has its own KL, so it must then be left at `"molchanov"` (or,
    for a `LogUniform` instance, equal the instance's).
    """
    _validation.choice(
        "kl_approximation", approximation, kl_lib.LOG_UNIFORM_APPROXIMATIONS
    )
    if identifier == "log_uniform":
        return LogUniform(approximation)
    prior = _get(identifier, DropoutPrior, _DROPOUT_ALIASES)
    own = getattr(prior, "approximation", "molchanov")
    if approximation not in ("molchanov", own):
        name = identifier if isinstance(identifier, str) else prior
        raise ValueError(
            "Argument `kl_approximation` applies to the log-uniform prior "
            f"only; the {name!r} prior has its own KL. Pass "
            'prior="log_uniform" or leave kl_approximation at its default. '
            f"Received: kl_approximation={approximation!r}, prior={name!r}"
        )
    return prior


def serialize(prior):
    return keras.saving.serialize_keras_object(prior)


__all__ = [
    "ARD",
    "CenteredNormal",
    "DropoutPrior",
    "GaussianPrior",
    "LogUniform",
    "Normal",
    "Prior",
    "ScaleMixtureNormal",
    "StudentT",
]
