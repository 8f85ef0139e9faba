"""Zero-mean posterior of variance layers (see `keras_stochastic.posteriors`).

`q(w_ij) = scale_ij * eps_ij` with a symmetric, unit-scale `eps`:

- `"gaussian"`: `eps ~ N(0, 1)`, so `var(w) = scale^2`;
- `"bernoulli"`: `eps = 2 b - 1`, `b ~ Bernoulli(0.5)`, i.e. `w = +-scale`,
  so `var(w) = scale^2`;
- `"uniform"`: `eps ~ U(-1, 1)`, so `var(w) = scale^2 / 3`.

The only parameter is the signed `scale`, as in the reference code of
Neklyudov et al. (2019): the variance is `scale * scale`, which is smooth
everywhere (also at zero, where a pruned weight sits) and needs no floor or
softplus; the sign carries no meaning. Because the scale plays the part of a
Keras kernel (same shape, same fan-in scaling of the activations), it is
initialized, regularized and constrained like one.

The KL divergence from any such `q` to the log-uniform prior is a constant
(the alpha -> infinity limit of the variational-dropout KL), so it has no
gradient: `kl()` returns 0 and the layers add `kl_weight * 0`.
"""

import math

from keras import ops

from keras_stochastic import _validation
from keras_stochastic import rng

DISTRIBUTIONS = ("gaussian", "bernoulli", "uniform")

# var(eps) per distribution: var(w) = VARIANCE_FACTOR * scale^2.
_VARIANCE_FACTOR = {"gaussian": 1.0, "bernoulli": 1.0, "uniform": 1.0 / 3.0}


def validate_distribution(distribution):
    return _validation.choice("distribution", distribution, DISTRIBUTIONS)


def _unit_noise(distribution, shape, seed, dtype):
    if distribution == "gaussian":
        return rng.normal(shape, seed, dtype)
    if distribution == "bernoulli":
        return rng.rademacher(shape, seed, dtype)
    return rng.uniform(shape, seed, dtype, minval=-1.0, maxval=1.0)


class ZeroMeanWeights:
    """One call's view of a zero-mean posterior: `mean` is `None`."""

    mean = None

    def __init__(self, scale, distribution, dtype):
        self._scale32 = ops.convert_to_tensor(scale)
        self.distribution = distribution
        self.dtype = dtype

    @property
    def inference_kernel(self):
        """The posterior mean, zero: `"mean"` inference ignores the inputs."""
        return ops.zeros(self._scale32.shape, self.dtype)

    @property
    def variance(self):
        """The elementwise variance of `w` (exact for every distribution), float32."""
        return _VARIANCE_FACTOR[self.distribution] * ops.square(self._scale32)

    def noise(self, seed, sample_shape=()):
        shape = tuple(sample_shape) + tuple(self._scale32.shape)
        epsilon = _unit_noise(self.distribution, shape, seed, self.dtype)
        return ops.cast(self._scale32, self.dtype) * epsilon

    def kl(self, seed):
        # KL(q || log-uniform) does not depend on the scale: no term to add.
        return ops.zeros((), "float32")


class ZeroMeanPosterior:
    """Zero-mean `q(w) = scale * eps`; `eps` Gaussian, Bernoulli (+-1) or U(-1, 1).

    Creates one variable, `<prefix>_scale` (float32, trainable), initialized,
    regularized and constrained by the layer's kernel arguments.
    """

    default_inference = "sample"

    def __init__(self, distribution="gaussian", prefix="kernel"):
        self.distribution = validate_distribution(distribution)
        self.prefix = prefix

    def build(self, layer, shape, initializer, regularizer=None, constraint=None):
        self.scale = layer.add_weight(
            name=f"{self.prefix}_scale",
            shape=shape,
            initializer=initializer,
            regularizer=regularizer,
            constraint=constraint,
            autocast=False,
        )

    def stddev(self):
        """`|scale| * sqrt(var(eps))`, the standard deviation of each weight."""
        return math.sqrt(_VARIANCE_FACTOR[self.distribution]) * ops.abs(self.scale)

    def __call__(self, dtype):
        return ZeroMeanWeights(self.scale, self.distribution, dtype)

    def get_config(self):
        return {"distribution": self.distribution}
