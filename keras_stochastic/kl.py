"""KL divergences between weight posteriors and priors.

Every function returns the KL summed over all weights, as a float32 scalar,
whatever the dtype of its inputs (mixed-precision layers pass float32
parameters; the sums of millions of terms need float32 anyway).
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _reductions
from keras_stochastic import _validation
from keras_stochastic import rng


def softplus(values):
    """`log(1 + exp(values))`, written with vectorized elementwise ops.

    Exact and overflow-free; TensorFlow's `Softplus` kernel is several times
    slower on CPU for weight-sized tensors.
    """
    return _softplus_and_decay(values)[0]


def _softplus_and_decay(values):
    """`(softplus(values), exp(-|values|))`: the exponential also gives the sigmoid."""
    decay = ops.exp(-ops.abs(values))
    return ops.relu(values) + ops.log1p(decay), decay


def _times_sigmoid(x, values, decay):
    """`x * sigmoid(values)` from `decay = exp(-|values|)`, with no transcendental function.

    Written as a division last: XLA does not copy a division into each of
    its consumers' loops.
    """
    return (x * ops.where(values >= 0, 1.0, decay)) / (1.0 + decay)


def _normal_kl_from_sums(
    size, sum_log_stddev, sum_variance, sum_mean_squared, prior_stddev
):
    """The Normal KL of `normal_kl` from its three sums (the formula, written once)."""
    return (
        size * (math.log(prior_stddev) - 0.5)
        - sum_log_stddev
        + (0.5 / prior_stddev**2) * (sum_variance + sum_mean_squared)
    )


def normal_kl(mean, stddev, prior_stddev=1.0, mask=None):
    """KL(N(mean, stddev^2) || N(0, prior_stddev^2)), summed over elements.

    Per weight the divergence is

    `log(prior_stddev / stddev) + (stddev^2 + mean^2) / (2 prior_stddev^2) - 1/2`.

    It is computed as sums of `log(stddev)`, `stddev^2` and `mean^2` rather
    than element by element, which saves passes over weight-sized tensors.

    Args:
        mean: Tensor of posterior means.
        stddev: Tensor of posterior standard deviations (positive), same shape.
        prior_stddev: Positive float, standard deviation of the zero-mean
            normal prior.
        mask: Optional tensor of zeros and ones, same shape: only the
            elements where it is one are summed (pruned weights are not
            charged).

    Returns:
        A float32 scalar tensor.

    Example:

    >>> float(normal_kl(np.zeros(3), np.ones(3)))
    0.0
    """
    _validation.positive("prior_stddev", prior_stddev)
    mean = ops.cast(mean, "float32")
    stddev = ops.cast(stddev, "float32")
    if mask is None:
        return _normal_kl_from_sums(
            math.prod(mean.shape),
            ops.sum(ops.log(stddev)),
            ops.sum(ops.square(stddev)),
            ops.sum(ops.square(mean)),
            prior_stddev,
        )
    mask = ops.cast(mask, "float32")
    return _normal_kl_from_sums(
        ops.sum(mask),
        ops.sum(mask * ops.log(stddev)),
        ops.sum(mask * ops.square(stddev)),
        ops.sum(mask * ops.square(mean)),
        prior_stddev,
    )


# Added to softplus(rho) so that log(stddev) stays finite when softplus
# underflows; TFP and Edward2 use a similar floor.
STDDEV_FLOOR = 1e-7


def normal_kl_fused(mean, rho, prior_stddev, square):
    """`(stddev or stddev**2, normal_kl(mean, stddev, prior_stddev))` with a fused gradient.

    `stddev = softplus(rho) + STDDEV_FLOOR`, the parameterization of the
    Gaussian posterior; the KL is `normal_kl`'s formula. Differentiating the
    two through autodiff materializes a broadcast of each sum's scalar
    gradient and a chain of weight-sized temporaries; this gradient is
    written out instead:

    `d rho = (d_out * (2 stddev if square else 1)
              + d_kl * (stddev / prior^2 - 1 / stddev)) * sigmoid(rho)`,
    `d mean = d_kl * mean / prior^2`,
    with the terms grouped to minimize weight-sized passes (on CPU these
    passes are a large part of a stochastic layer's step).
    """
    inverse_prior_variance = 1.0 / prior_stddev**2
    size = math.prod(mean.shape)

    @ops.custom_gradient
    def stats(mean, rho):
        # The forward and backward ops are built in the same (XLA or not) context.
        compiled = _compat.xla_compiles()
        if compiled and square:
            # The gradient's sigmoid from softplus's own exponential: one
            # transcendental function per weight fewer, for one more
            # weight-sized buffer. Measured faster under XLA for the
            # variance output; with the standard deviation output, which
            # meets the noise draw in one fusion, XLA's step was slower.
            positive, decay = _softplus_and_decay(rho)
        else:
            positive, decay = softplus(rho), None
        stddev = positive + STDDEV_FLOOR
        variance = ops.square(stddev)
        if compiled:
            # One reduction over one fused elementwise pass (XLA does not
            # always merge three sums into one loop): the formula is linear
            # in the sums, so the log sum can carry the other two.
            terms = ops.log(stddev) - (0.5 * inverse_prior_variance) * (
                variance + ops.square(mean)
            )
            kl = _normal_kl_from_sums(
                size, _reductions.total(terms), 0.0, 0.0, prior_stddev
            )
        else:
            kl = _normal_kl_from_sums(
                size,
                ops.sum(ops.log(stddev)),
                ops.sum(variance),
                ops.sum(ops.square(mean)),
                prior_stddev,
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
            if decay is not None:
                return scale * mean, _times_sigmoid(d_stddev, rho, decay)
            if compiled:
                # sigmoid(rho) as a division: XLA does not copy a division
                # into each consumer, so the gradient is computed once
                # instead of again inside each of Adam's fusions.
                return scale * mean, d_stddev / (1.0 + ops.exp(-rho))
            return scale * mean, d_stddev * ops.sigmoid(rho)

        return (outputs, kl), grad

    return stats(mean, rho)


# Molchanov et al. (2017), Eq. 14: the fit of the negative KL from
# N(theta, alpha theta^2) to the log-uniform prior.
MOLCHANOV_K1 = 0.63576
MOLCHANOV_K2 = 1.87320
MOLCHANOV_K3 = 1.48695
# Kingma et al. (2015), Eq. 10 (valid for alpha <= 1).
KINGMA_C1 = 1.16145124
KINGMA_C2 = -1.50204118
KINGMA_C3 = 0.58629921
# E log|eps| = -(euler_gamma + log 2) / 2 for eps ~ N(0, 1): adding it back
# makes the KL vanish as alpha -> inf, the convention of both fits above.
LOG_UNIFORM_CONSTANT = 0.5 * (0.5772156649015329 + math.log(2.0))
# Floor under |.| in the Monte Carlo estimate: the log of an exact zero
# (probability zero, but representable in float32) stays finite.
_LOG_FLOOR = 1e-30

LOG_UNIFORM_APPROXIMATIONS = ("molchanov", "kingma", "monte_carlo")


def _concrete_values(x):
    """NumPy values of `x` when they exist outside any trace, else None."""
    if isinstance(x, (numbers.Real, list, tuple, np.ndarray, np.generic)):
        return np.asarray(x, dtype="float64")
    if isinstance(x, keras.KerasTensor):
        return None
    try:
        return np.asarray(ops.convert_to_numpy(x), dtype="float64")
    except (NotImplementedError, TypeError, ValueError):
        # TensorFlow graph tensors and JAX tracers have no values to check.
        return None


def _validate_seed(seed):
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        # The fixed seed `keras.random` makes of an integer, in the wrapper
        # `rng` draws from (it takes generators only): the same draw on
        # every call, and no variable created inside a traced function.
        dtype = "int64" if keras.backend.backend() == "tensorflow" else "uint32"
        return rng.PredrawnSeed(
            ops.convert_to_tensor([int(seed) & 0xFFFFFFFF, 0], dtype=dtype)
        )
    raise ValueError(
        "Argument `seed` must be a `keras.random.SeedGenerator` or an integer "
        'when `approximation="monte_carlo"`. '
        f"Received: seed={seed!r}"
    )


def log_uniform_kl_elementwise(log_alpha, approximation="molchanov", seed=None):
    """Per-element KL of `log_uniform_kl`, float32, without argument checks.

    For layers, which validate their configuration once and clip
    `log_alpha` to the approximation's domain themselves.
    """
    log_alpha = ops.cast(log_alpha, "float32")
    if approximation == "molchanov":
        return _molchanov(-log_alpha, reduce=lambda x: x)[0]
    if approximation == "kingma":
        alpha = ops.exp(log_alpha)
        polynomial = alpha * (KINGMA_C1 + alpha * (KINGMA_C2 + alpha * KINGMA_C3))
        return MOLCHANOV_K1 - (0.5 * log_alpha + polynomial)
    # -0.5 log alpha + log|1 + sqrt(alpha) eps| == log|alpha^(-1/2) + eps|.
    epsilon = rng.normal(ops.shape(log_alpha), seed, "float32")
    shifted = ops.abs(ops.exp(-0.5 * log_alpha) + epsilon)
    return ops.log(ops.maximum(shifted, _LOG_FLOOR)) + LOG_UNIFORM_CONSTANT


def _molchanov(neg_log_alpha, reduce, softplus_term=None):
    """`(KL, fit)`: Molchanov et al.'s KL (the formula, written once), given `u = -log alpha`.

    `KL = k1 reduce(sigmoid(k3 u - k2)) + 0.5 reduce(softplus(u))`: `k1 -
    k1 sigmoid(k2 + k3 log alpha) == k1 sigmoid(k3 u - k2)` and `log1p(1 /
    alpha) == softplus(u)`, both finite for any `log alpha`. `reduce` is the
    identity (elementwise) or a sum (the constant factors then move out of
    the sums: fewer weight-sized passes). `softplus_term` replaces
    `softplus(u)` where the caller has a cheaper equal form; `fit` is
    returned for callers that differentiate by hand.
    """
    fit = ops.sigmoid(MOLCHANOV_K3 * neg_log_alpha - MOLCHANOV_K2)
    if softplus_term is None:
        softplus_term = softplus(neg_log_alpha)
    return MOLCHANOV_K1 * reduce(fit) + 0.5 * reduce(softplus_term), fit


def molchanov_kl_sum(neg_log_alpha):
    """Sum of the `"molchanov"` KL over elements, given `-log alpha`."""
    return _molchanov(ops.cast(neg_log_alpha, "float32"), reduce=ops.sum)[0]


# log alpha is clipped to this range (Molchanov et al.'s code and
# google-research/state_of_sparsity use +-8); "kingma" lowers the upper end
# to 0 (alpha <= 1), the domain of its polynomial.
LOG_ALPHA_MIN = -8.0
LOG_ALPHA_MAX = 8.0
# Added to theta^2 under the log of the additive parameterization, as in the
# reference implementations, so that a zero theta gives a finite log alpha.
THETA_SQUARED_EPSILON = 1e-8


def log_uniform_kl_fused(theta, log_sigma2, log_alpha_max=LOG_ALPHA_MAX):
    """`(sigma^2, molchanov KL sum)` of the additive parameterization, with a fused gradient.

    `sigma^2 = exp(log_sigma2)` is the training noise's variance and the KL
    is `log_uniform_kl(log_alpha, "molchanov")` with `log_alpha =
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
    k1, k3 = MOLCHANOV_K1, MOLCHANOV_K3

    @ops.custom_gradient
    def stats(theta, log_sigma2):
        theta_squared = ops.square(theta) + THETA_SQUARED_EPSILON
        neg_log_alpha = ops.log(theta_squared) - log_sigma2
        clipped = ops.clip(neg_log_alpha, -log_alpha_max, -LOG_ALPHA_MIN)
        sigmoid = ops.sigmoid(clipped)
        kl, fit = _molchanov(clipped, ops.sum, softplus_term=-ops.log1p(-sigmoid))
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


def log_uniform_kl(log_alpha, approximation="molchanov", seed=None):
    """KL(N(theta, alpha theta^2) || log-uniform prior), summed over elements.

    The log-uniform prior `p(|w|) ~ 1 / |w|` is improper; the KL from a
    Gaussian-dropout posterior `q(w) = N(theta, alpha theta^2)` is defined up
    to a constant and depends on `alpha` only. All approximations here use
    the convention `KL -> 0` as `alpha -> inf`, where the exact value is

    ```
    KL(alpha) = -0.5 log(alpha) + E[log|1 + sqrt(alpha) eps|] + (euler_gamma + log 2) / 2
              = 2 * integral_0^u dawsn(t) dt,   u = 1 / sqrt(2 alpha),   eps ~ N(0, 1)
    ```

    (`dawsn` is Dawson's integral; `keras.ops` has none, hence the
    approximations):

    - `"molchanov"` (Molchanov et al., 2017), for any `alpha`:
      `KL = k1 - k1 sigmoid(k2 + k3 log alpha) + 0.5 log1p(1 / alpha)` with
      `k1 = 0.63576, k2 = 1.87320, k3 = 1.48695`. Non-negative, decreasing
      in `alpha`, within 0.0094 nats of the exact value for `log alpha` in
      [-8, 8] (largest error near `log alpha = -3.5`).
    - `"kingma"` (Kingma et al., 2015), **valid for `alpha <= 1` only**
      (`log alpha <= 0`): `KL = C - (0.5 log alpha + c1 alpha + c2 alpha^2 +
      c3 alpha^3)`, `c1 = 1.16145124, c2 = -1.50204118, c3 = 0.58629921`, with
      `C = k1` so that it is comparable with the others; on `log alpha` in
      [-8, 0] it lies within 0.040 nats below the exact value. Beyond
      `alpha = 1` the polynomial is meaningless (it turns negative and
      grows without bound). Values given as NumPy arrays, Python numbers or
      eager tensors are checked and raise a `ValueError` when `log alpha >
      0`; inside a traced function they cannot be checked, and the caller must
      clip (the variational dropout layers clip `log alpha` to [-8, 0] with
      this approximation, as Kingma et al. constrained `alpha`).
    - `"monte_carlo"`: the exact expectation estimated with one draw `eps`
      per element: unbiased, with a per-element standard deviation growing
      with `alpha` up to `pi / sqrt(8)`, about 1.11 nats (the standard
      deviation of `log|eps|`). Needs `seed`.

    Args:
        log_alpha: Tensor (or array) of `log alpha`, any shape.
        approximation: `"molchanov"` (default), `"kingma"` or `"monte_carlo"`.
        seed: A `keras.random.SeedGenerator` or an integer; required by
            `"monte_carlo"` (an integer seed gives the same draw on every
            call), ignored otherwise.

    Returns:
        A float32 scalar tensor, the KL summed over the elements of
        `log_alpha`.

    Example:

    >>> round(float(log_uniform_kl(np.zeros(2))), 3)  # exact: 2 * 0.4267
    0.862

    References:
        - [Molchanov et al., 2017](https://arxiv.org/abs/1701.05369), Variational
          Dropout Sparsifies Deep Neural Networks.
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick.
        - [Hron et al., 2017](https://arxiv.org/abs/1711.02989), Variational
          Gaussian Dropout is not Bayesian (the exact KL).
    """
    _validation.choice("approximation", approximation, LOG_UNIFORM_APPROXIMATIONS)
    if approximation == "monte_carlo":
        seed = _validate_seed(seed)
    elif seed is not None and not isinstance(seed, keras.random.SeedGenerator):
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):
            raise ValueError(
                "Argument `seed` must be a `keras.random.SeedGenerator`, an "
                f"integer or None. Received: seed={seed!r}"
            )
    values = _concrete_values(log_alpha)
    if values is not None:
        if np.isnan(values).any():
            raise ValueError(
                f"Argument `log_alpha` must not contain NaN. Received: log_alpha={log_alpha!r}"
            )
        if approximation == "kingma" and values.size and values.max() > 0.0:
            raise ValueError(
                'The "kingma" approximation is valid for alpha <= 1 only, i.e. '
                "`log_alpha <= 0`; clip it or use "
                'approximation="molchanov". '
                f"Received: log_alpha with maximum {values.max()}"
            )
    return ops.sum(log_uniform_kl_elementwise(log_alpha, approximation, seed))
