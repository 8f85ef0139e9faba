"""Gradient estimators: how weight noise reaches a layer's activations.

Each estimator takes the layer's linear operator `linear(inputs, kernel)`
(a matmul for dense layers, a convolution for conv layers, the gate projection
of a recurrent cell), the inputs, and a per-call view of the weight posterior
(`weights`) that provides:

- `weights.mean`: the posterior mean kernel `M`, or `None` for zero-mean
  posteriors (variance layers);
- `weights.noise(seed)`: a perturbation `Delta W` drawn from `q(w) - M`,
  symmetric about zero and independent across weights;
- `weights.variance`: the elementwise variance of `q` (Gaussian posteriors).

None of them adds the bias: layers add it after the estimator, outside any
sign flips.
"""

import collections

from keras import ops

from keras_stochastic import _random

Estimator = collections.namedtuple("Estimator", ["name", "num_seeds", "apply"])


def reparameterization(linear, inputs, weights, seeds, channel_axis, out_channels):
    """`y = x W` with one `W = M + Delta W` shared by the whole batch."""
    kernel = weights.noise(seeds[0])
    if weights.mean is not None:
        kernel = weights.mean + kernel
    return linear(inputs, kernel)


def flipout_signs(inputs, channel_axis, out_channels, seed):
    """Rademacher signs per example and channel, shared over other axes.

    Returns `(sign_in, sign_out)` shaped to broadcast against the inputs and
    the outputs: `(B, 1, ..., C_in)` and `(B, 1, ..., C_out)` for
    channels-last layouts, `(B, C_in, 1, ...)` and `(B, C_out, 1, ...)` for
    channels-first ones.
    """
    batch = ops.shape(inputs)[0]
    rank = len(inputs.shape)
    in_channels = inputs.shape[channel_axis]
    signs = _random.rademacher(
        (batch, in_channels + out_channels), seed, inputs.dtype
    )

    def expand(sign, channels):
        ones = [1] * (rank - 2)
        if channel_axis in (-1, rank - 1):
            return ops.reshape(sign, [batch] + ones + [channels])
        return ops.reshape(sign, [batch, channels] + ones)

    return (
        expand(signs[:, :in_channels], in_channels),
        expand(signs[:, in_channels:], out_channels),
    )


def flipout(linear, inputs, weights, seeds, channel_axis, out_channels):
    """`y = x M + ((x * S) Delta W) * R` (Wen et al., 2018).

    One `Delta W` per call; each example sees it with its own random sign
    flips `S` (inputs) and `R` (outputs), which decorrelates the examples of
    a batch at the price of a second linear operation.
    """
    noise = weights.noise(seeds[0])
    sign_in, sign_out = flipout_signs(inputs, channel_axis, out_channels, seeds[1])
    return flipout_apply(linear, inputs, weights.mean, noise, sign_in, sign_out)


def flipout_apply(linear, inputs, mean, noise, sign_in, sign_out):
    """`x M + ((x * S) Delta W) * R` for a given `Delta W` and given signs.

    The deterministic half of `flipout`, for callers that draw `Delta W` and
    the signs once and apply them many times (recurrent cells reuse one draw
    at every time step). `mean` may be `None` (zero-mean posteriors).
    """
    outputs = linear(inputs * sign_in, noise) * sign_out
    if mean is not None:
        outputs = linear(inputs, mean) + outputs
    return outputs


def lrt_epsilon(dtype):
    """The `eps0` added under the square root of the LRT variance.

    A zero variance only occurs for an all-zero input patch, whose gradient
    through `x^2` is zero, so `eps0` only has to keep the square root's
    derivative finite; it is the smallest value that float16 represents well.
    """
    return 1e-7 if dtype == "float16" else 1e-12


def local_reparameterization(linear, inputs, weights, seeds, channel_axis, out_channels):
    """`y = x M + sqrt(x^2 sigma^2 + eps0) * zeta` (Kingma et al., 2015).

    Samples the pre-activations directly: `zeta ~ N(0, 1)` has the output's
    shape, so only `B x out` numbers are drawn per call.
    """
    delta = linear(ops.square(inputs), weights.variance)
    zeta = _random.normal(ops.shape(delta), seeds[0], delta.dtype)
    outputs = lrt_perturbation(delta, zeta)
    if weights.mean is not None:
        outputs = linear(inputs, weights.mean) + outputs
    return outputs


def lrt_perturbation(delta, zeta):
    """`sqrt(delta + eps0) * zeta`: the noise of a pre-activation of variance `delta`.

    Split out of `local_reparameterization` for callers that sum the
    variances of several linear maps before sampling once (a recurrent
    cell's input and recurrent projections) or that draw `zeta` themselves.
    """
    return ops.sqrt(delta + lrt_epsilon(delta.dtype)) * zeta


ESTIMATORS = {
    "reparameterization": Estimator("reparameterization", 1, reparameterization),
    "flipout": Estimator("flipout", 2, flipout),
    "local_reparameterization": Estimator(
        "local_reparameterization", 1, local_reparameterization
    ),
}


def get(name, allowed=tuple(ESTIMATORS)):
    if name not in allowed:
        raise ValueError(
            f"Argument `estimator` must be one of {list(allowed)}. "
            f"Received: estimator={name!r}"
        )
    return ESTIMATORS[name]
