"""Mean-field Gaussian posterior (see `keras_stochastic.posteriors`)."""

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_stochastic import _random
from keras_stochastic import priors as priors_lib

# Added to softplus(rho) so that log(stddev) stays finite when softplus
# underflows; TFP and Edward2 use a similar floor.
STDDEV_FLOOR = 1e-7


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


def softplus(values):
    """`log(1 + exp(values))`, written with vectorized elementwise ops.

    Exact and overflow-free; on TensorFlow's CPU kernels it costs about 60%
    of `ops.softplus` for weight-sized tensors.
    """
    return ops.relu(values) + ops.log1p(ops.exp(-ops.abs(values)))


def inverse_softplus(values):
    """`rho` with `softplus(rho) == values`, stable for large values."""
    return values + ops.log(-ops.expm1(-values))


class InverseSoftplusInitializer(keras.initializers.Initializer):
    """Initializes `rho` so that `softplus(rho) + floor` follows `stddev_initializer`."""

    def __init__(self, stddev_initializer, floor=STDDEV_FLOOR, name="kernel_stddev_initializer"):
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


def normal_prior_stats(mean, rho, prior_stddev, square):
    """`(stddev or stddev**2, KL(q || N(0, prior_stddev**2)))` with a fused gradient.

    `stddev = softplus(rho) + STDDEV_FLOOR`. The KL is the same sum as
    `ks.kl.normal_kl`. Differentiating the two through autodiff materializes
    a broadcast of each sum's scalar gradient and a chain of weight-sized
    temporaries; this gradient is written out instead:

    `d rho = (d_out * (2 stddev if square else 1)
              + d_kl * (stddev / prior^2 - 1 / stddev)) * sigmoid(rho)`,
    `d mean = d_kl * mean / prior^2`,
    with the terms grouped to minimize weight-sized passes.

    On CPU, where weight-sized elementwise passes are a large part of a
    stochastic layer's step, this saves several passes per training step.
    """
    inverse_prior_variance = 1.0 / prior_stddev**2
    size = math.prod(mean.shape)

    @ops.custom_gradient
    def stats(mean, rho):
        stddev = softplus(rho) + STDDEV_FLOOR
        variance = ops.square(stddev)
        kl = (
            size * (math.log(prior_stddev) - 0.5)
            - ops.sum(ops.log(stddev))
            + 0.5
            * inverse_prior_variance
            * (ops.sum(variance) + ops.sum(ops.square(mean)))
        )
        outputs = variance if square else stddev

        def grad(*args, upstream=None):
            # TensorFlow passes one gradient per output, JAX one tuple.
            if upstream is None:
                upstream = args[0] if len(args) == 1 else args
            d_out, d_kl = upstream
            # d stddev = stddev * (d_kl / prior^2 [+ 2 d_out]) [+ d_out] - d_kl / stddev,
            # grouped so that each weight-sized pass does as much as it can.
            scale = d_kl * inverse_prior_variance
            if d_out is None:
                d_stddev = stddev * scale
            elif square:
                d_stddev = stddev * (2.0 * d_out + scale)
            else:
                d_stddev = stddev * scale + d_out
            d_stddev = d_stddev - d_kl / stddev
            return scale * mean, d_stddev * ops.sigmoid(rho)

        return (outputs, kl), grad

    return stats(mean, rho)


class GaussianWeights:
    """One call's view of a mean-field Gaussian posterior.

    The standard deviations (or variances) and the KL are computed once per
    view, on first use, and shared by the estimator and the KL term.
    """

    def __init__(self, mean, rho, prior, dtype):
        # `cast` reads the variables (a no-op conversion otherwise): the fused
        # gradient must see tensors, not variables.
        self._mean32 = ops.cast(mean, "float32")
        self._rho = ops.cast(rho, "float32")
        self.prior = prior
        self.dtype = dtype
        self.mean = ops.cast(self._mean32, dtype)
        self._stats = {}

    def _stddev_or_variance(self, square):
        if square not in self._stats:
            if isinstance(self.prior, priors_lib.Normal):
                self._stats[square] = normal_prior_stats(
                    self._mean32, self._rho, self.prior.stddev, square
                )
            else:
                stddev = softplus(self._rho) + STDDEV_FLOOR
                self._stats[square] = (ops.square(stddev) if square else stddev, None)
        return self._stats[square]

    @property
    def inference_kernel(self):
        return self.mean

    @property
    def stddev(self):
        return self._stddev_or_variance(square=False)[0]

    @property
    def variance(self):
        return ops.cast(self._stddev_or_variance(square=True)[0], self.dtype)

    def noise(self, seed):
        epsilon = _random.normal(self._mean32.shape, seed, self.dtype)
        return ops.cast(self.stddev, self.dtype) * epsilon

    def kl(self, seed):
        if isinstance(self.prior, priors_lib.Normal):
            # Reuse whichever fused computation the estimator already made.
            return self._stddev_or_variance(square=True in self._stats)[1]
        return self.prior.kl(self._mean32, self.stddev, seed)


class GaussianPosterior:
    """Mean-field Gaussian `q(w) = N(mean, stddev^2)`, `stddev = softplus(rho) + 1e-7`.

    Creates the variables `<prefix>_mean` (the trainable mean, initialized by
    the layer's kernel initializer, regularized and constrained like a Keras
    kernel) and `<prefix>_rho`.
    """

    default_inference = "mean"

    def __init__(self, stddev_initializer, prior, prefix="kernel"):
        self.prefix = prefix
        self.stddev_initializer = get_stddev_initializer(
            stddev_initializer, f"{prefix}_stddev_initializer"
        )
        self.prior = priors_lib.get(prior)

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

    def stddev(self):
        return softplus(self.rho) + STDDEV_FLOOR

    def __call__(self, dtype):
        return GaussianWeights(self.mean, self.rho, self.prior, dtype)

    def get_config(self):
        return {
            f"{self.prefix}_stddev_initializer": keras.initializers.serialize(
                self.stddev_initializer
            ),
            "prior": priors_lib.serialize(self.prior),
        }
