"""Priors over weights, as small serializable classes.

A prior scores a mean-field Gaussian posterior through `kl(mean, stddev,
seed)`. Priors are never callables or lambdas: they are registered Keras
objects with a `get_config`, so models using them save to `.keras` files and
load with `safe_mode=True`.
"""

import math

import keras
from keras import ops

from keras_stochastic import _random
from keras_stochastic import kl as kl_lib

_LOG_2PI = math.log(2.0 * math.pi)


@keras.saving.register_keras_serializable(package="keras_stochastic")
class Prior:
    """Base class of weight priors.

    Subclasses implement `kl(mean, stddev, seed)`, the KL divergence from the
    posterior `N(mean, stddev^2)` (elementwise) to the prior, summed over all
    weights and returned as a float32 scalar, and `get_config()`.
    """

    def kl(self, mean, stddev, seed):
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
class Normal(Prior):
    """Zero-mean normal prior `p(w) = N(0, stddev^2)`; its KL is analytic.

    Args:
        stddev: Positive float, the prior standard deviation.

    Example:

    >>> layer = ks.layers.DenseFlipout(10, prior=ks.priors.Normal(0.1))
    """

    def __init__(self, stddev=1.0):
        kl_lib._check_positive("stddev", stddev)
        self.stddev = float(stddev)

    def kl(self, mean, stddev, seed):
        return kl_lib.normal_kl(mean, stddev, self.stddev)

    def get_config(self):
        return {"stddev": self.stddev}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class ScaleMixtureNormal(Prior):
    """Scale mixture of two zero-mean normals (Blundell et al., 2015).

    `p(w) = pi N(w; 0, stddev1^2) + (1 - pi) N(w; 0, stddev2^2)`

    The KL has no closed form, so it is estimated by Monte Carlo from one
    weight sample `w ~ q` per call, drawn for the KL alone:
    `KL ~ sum(log q(w) - log p(w))`. The estimate is unbiased; its noise adds
    to the gradient noise of training, and drawing `w` costs one
    weight-sized Gaussian draw per call.

    Args:
        pi: Float in (0, 1), the weight of the first component.
        stddev1: Positive float, the wide component's standard deviation.
        stddev2: Positive float, the narrow component's standard deviation.

    References:
        - [Blundell et al., 2015](https://arxiv.org/abs/1505.05424),
          Weight Uncertainty in Neural Networks.
    """

    def __init__(self, pi=0.5, stddev1=1.0, stddev2=math.exp(-6.0)):
        if not isinstance(pi, (int, float)) or not 0.0 < pi < 1.0:
            raise ValueError(
                f"Argument `pi` must be a float in (0, 1). Received: pi={pi!r}"
            )
        kl_lib._check_positive("stddev1", stddev1)
        kl_lib._check_positive("stddev2", stddev2)
        self.pi = float(pi)
        self.stddev1 = float(stddev1)
        self.stddev2 = float(stddev2)

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

    def kl(self, mean, stddev, seed):
        mean = ops.cast(mean, "float32")
        stddev = ops.cast(stddev, "float32")
        noise = _random.normal(mean.shape, seed)
        weights = mean + stddev * noise
        log_q = -ops.sum(ops.log(stddev)) - 0.5 * ops.sum(ops.square(noise))
        log_q = log_q - 0.5 * _LOG_2PI * math.prod(mean.shape)
        return log_q - ops.sum(self.log_prob(weights))

    def get_config(self):
        return {"pi": self.pi, "stddev1": self.stddev1, "stddev2": self.stddev2}


_ALIASES = {"normal": Normal, "scale_mixture_normal": ScaleMixtureNormal}


def get(identifier):
    """Returns a `Prior` from a prior, a name, or a serialized config."""
    if isinstance(identifier, Prior):
        return identifier
    if isinstance(identifier, str) and identifier in _ALIASES:
        return _ALIASES[identifier]()
    message = (
        "Argument `prior` must be a `keras_stochastic.priors.Prior` instance, "
        f"its serialized config, or one of {sorted(_ALIASES)}. "
        f"Received: prior={identifier!r}"
    )
    if isinstance(identifier, dict):
        try:
            prior = keras.saving.deserialize_keras_object(identifier)
        except (TypeError, ValueError) as error:
            raise ValueError(message) from error
        if isinstance(prior, Prior):
            return prior
    raise ValueError(message)


def serialize(prior):
    return keras.saving.serialize_keras_object(prior)
