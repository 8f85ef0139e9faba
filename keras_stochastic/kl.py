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

from keras_stochastic import _random


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"Argument `{name}` must be a positive float. "
            f"Received: {name}={value!r}"
        )
    if not value > 0 or not math.isfinite(value):
        raise ValueError(
            f"Argument `{name}` must be a positive, finite float. "
            f"Received: {name}={value}"
        )


def normal_kl(mean, stddev, prior_stddev=1.0):
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

    Returns:
        A float32 scalar tensor.

    Example:

    >>> float(normal_kl(np.zeros(3), np.ones(3)))
    0.0
    """
    _check_positive("prior_stddev", prior_stddev)
    mean = ops.cast(mean, "float32")
    stddev = ops.cast(stddev, "float32")
    size = math.prod(mean.shape)
    inverse_variance = 0.5 / prior_stddev**2
    return (
        size * (math.log(prior_stddev) - 0.5)
        - ops.sum(ops.log(stddev))
        + inverse_variance * (ops.sum(ops.square(stddev)) + ops.sum(ops.square(mean)))
    )


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
        # `_random` draws from (it takes generators only): the same draw on
        # every call, and no variable created inside a traced function.
        dtype = "int64" if keras.backend.backend() == "tensorflow" else "uint32"
        return _random.PredrawnSeed(
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
        # k1 - k1 sigmoid(x) == k1 sigmoid(-x) and log1p(1 / alpha) ==
        # softplus(-log alpha): both terms stay finite for any log alpha.
        return MOLCHANOV_K1 * ops.sigmoid(
            -(MOLCHANOV_K2 + MOLCHANOV_K3 * log_alpha)
        ) + 0.5 * ops.softplus(-log_alpha)
    if approximation == "kingma":
        alpha = ops.exp(log_alpha)
        polynomial = alpha * (KINGMA_C1 + alpha * (KINGMA_C2 + alpha * KINGMA_C3))
        return MOLCHANOV_K1 - (0.5 * log_alpha + polynomial)
    # -0.5 log alpha + log|1 + sqrt(alpha) eps| == log|alpha^(-1/2) + eps|.
    epsilon = _random.normal(ops.shape(log_alpha), seed, "float32")
    shifted = ops.abs(ops.exp(-0.5 * log_alpha) + epsilon)
    return ops.log(ops.maximum(shifted, _LOG_FLOOR)) + LOG_UNIFORM_CONSTANT


def molchanov_kl_sum(neg_log_alpha):
    """Sum of the `"molchanov"` KL over elements, given `-log alpha`.

    The same value as `ops.sum(log_uniform_kl_elementwise(log_alpha))` in
    fewer elementwise passes (the constant factors move out of the sums),
    which matters for kernel-sized tensors on CPU.
    """
    neg_log_alpha = ops.cast(neg_log_alpha, "float32")
    # softplus(u) = relu(u) + log1p(exp(-|u|)): TensorFlow's `Softplus`
    # kernel costs several times as much on CPU.
    softplus = ops.relu(neg_log_alpha) + ops.log1p(ops.exp(-ops.abs(neg_log_alpha)))
    return MOLCHANOV_K1 * ops.sum(
        ops.sigmoid(MOLCHANOV_K3 * neg_log_alpha - MOLCHANOV_K2)
    ) + 0.5 * ops.sum(softplus)


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
    if approximation not in LOG_UNIFORM_APPROXIMATIONS:
        raise ValueError(
            "Argument `approximation` must be one of "
            f"{list(LOG_UNIFORM_APPROXIMATIONS)}. "
            f"Received: approximation={approximation!r}"
        )
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
