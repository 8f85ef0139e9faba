"""`ks.kl.log_uniform_kl` against the exact KL, computed here with scipy."""

import keras
import numpy as np
import pytest
from scipy import integrate
from scipy import special

from keras_stochastic import kl
from tests.testing import gradients
from tests.testing import to_numpy

EULER_CONSTANT = 0.5 * (np.euler_gamma + np.log(2.0))
GRID = np.linspace(-8.0, 8.0, 161)


def _log_moment(log_alpha, power):
    """E[log|alpha^(-1/2) + eps|^power], eps ~ N(0, 1), by quadrature.

    The integrand has a log singularity at eps = -alpha^(-1/2): the range is
    split there (and around the bulk of the normal) so that adaptive
    quadrature handles each piece.
    """
    shift = np.exp(-0.5 * log_alpha)

    def integrand(eps):
        return (
            np.log(abs(shift + eps)) ** power
            * np.exp(-0.5 * eps**2)
            / np.sqrt(2.0 * np.pi)
        )

    edges = (
        [-np.inf] + sorted({-shift - 1.0, -shift, -shift + 1.0, -12.0, 12.0}) + [np.inf]
    )
    return sum(
        integrate.quad(integrand, low, high, limit=200)[0]
        for low, high in zip(edges[:-1], edges[1:])
    )


def exact_kl_quadrature(log_alpha):
    """-0.5 log alpha + E log|1 + sqrt(alpha) eps| + (gamma + log 2) / 2."""
    # log|1 + sqrt(alpha) eps| = 0.5 log alpha + log|alpha^(-1/2) + eps|.
    return _log_moment(log_alpha, 1) + EULER_CONSTANT


def exact_kl_dawson(log_alpha):
    """2 * integral_0^u dawsn(t) dt with u = 1 / sqrt(2 alpha)."""
    upper = 1.0 / np.sqrt(2.0 * np.exp(log_alpha))
    return 2.0 * integrate.quad(special.dawsn, 0.0, upper, limit=200)[0]


@pytest.fixture(scope="module")
def exact():
    return np.array([exact_kl_dawson(value) for value in GRID])


def test_oracles_agree(exact):
    quadrature = np.array([exact_kl_quadrature(value) for value in GRID[::8]])
    np.testing.assert_allclose(quadrature, exact[::8], atol=1e-8)
    # Asymptotes: -0.5 log alpha + (gamma + log 2) / 2 as alpha -> 0, 0 as alpha -> inf.
    assert abs(exact_kl_dawson(-20.0) - (10.0 + EULER_CONSTANT)) < 1e-6
    assert exact_kl_dawson(20.0) < 1e-8


def test_molchanov_within_a_hundredth_of_a_nat(exact):
    molchanov = to_numpy(kl.log_uniform_kl_elementwise(GRID.astype("float32")))
    assert np.max(np.abs(molchanov - exact)) < 0.01


def test_molchanov_sum_matches_elementwise():
    log_alpha = np.random.default_rng(0).uniform(-8, 8, (7, 5)).astype("float32")
    total = kl.molchanov_kl_sum(neg_log_alpha=-log_alpha)
    np.testing.assert_allclose(
        to_numpy(total), to_numpy(kl.log_uniform_kl(log_alpha)), rtol=1e-6
    )


def test_molchanov_positive_decreasing_vanishing():
    grid = np.linspace(-50.0, 50.0, 2001).astype("float32")
    values = to_numpy(kl.log_uniform_kl_elementwise(grid))
    assert np.all(np.isfinite(values))
    assert np.all(values >= 0.0)
    # Strictly decreasing until float32 resolution runs out in the tail.
    assert np.all(np.diff(values[values > 1e-6]) < 0.0)
    assert np.all(np.diff(values) <= 0.0)
    assert values[-1] < 1e-12
    assert float(to_numpy(kl.log_uniform_kl(np.array([20.0])))) < 1e-8


def test_kingma_matches_exact_up_to_its_constant(exact):
    # Kingma et al. fitted -KL up to a constant on alpha in (0, 1]. With
    # C = k1 the oracle puts kingma - exact in [-0.0398, 0.0004] on log alpha
    # in [-8, 0]: a near-constant offset. Tolerance: 0.045.
    domain = GRID <= 0.0
    kingma = to_numpy(
        kl.log_uniform_kl_elementwise(GRID[domain].astype("float32"), "kingma")
    )
    difference = kingma - exact[domain]
    assert np.max(np.abs(difference)) < 0.045
    assert np.ptp(difference) < 0.045


def test_kingma_rejects_alpha_above_one():
    with pytest.raises(ValueError, match="valid for alpha <= 1 only"):
        kl.log_uniform_kl(np.array([-1.0, 0.5]), "kingma")
    # log alpha = 0 (alpha = 1) is inside the domain.
    assert np.isfinite(to_numpy(kl.log_uniform_kl(np.zeros(3), "kingma")))


@pytest.mark.parametrize("log_alpha", [-6.0, -1.0, 0.0, 2.0, 6.0])
def test_monte_carlo_is_unbiased(log_alpha):
    # Mean over 20 seeds x 10000 elements against the exact value, within
    # 5 standard errors; the per-element standard deviation comes from the
    # quadrature of the second moment.
    num_seeds, size = 20, 10_000
    values = np.full(size, log_alpha, dtype="float32")
    generator = keras.random.SeedGenerator(7)
    totals = [
        float(to_numpy(kl.log_uniform_kl(values, "monte_carlo", seed=generator)))
        for _ in range(num_seeds)
    ]
    mean = np.sum(totals) / (num_seeds * size)
    std = np.sqrt(_log_moment(log_alpha, 2) - _log_moment(log_alpha, 1) ** 2)
    tolerance = 5.0 * std / np.sqrt(num_seeds * size)
    assert abs(mean - exact_kl_dawson(log_alpha)) < tolerance
    # A generator advances: consecutive draws differ.
    assert len(set(totals)) == num_seeds


def test_monte_carlo_integer_seed_is_deterministic():
    values = np.linspace(-3, 3, 50)
    first = to_numpy(kl.log_uniform_kl(values, "monte_carlo", seed=3))
    second = to_numpy(kl.log_uniform_kl(values, "monte_carlo", seed=3))
    assert first == second


def test_returns_float32_scalar():
    result = kl.log_uniform_kl(keras.ops.zeros((4, 3), dtype="float16"))
    assert keras.backend.standardize_dtype(result.dtype) == "float32"
    assert tuple(result.shape) == ()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"approximation": "exact"}, "Argument `approximation` must be one of"),
        ({"approximation": "monte_carlo"}, "Argument `seed` must be"),
        ({"approximation": "monte_carlo", "seed": True}, "Argument `seed` must be"),
        ({"approximation": "monte_carlo", "seed": 1.5}, "Argument `seed` must be"),
        ({"seed": "a"}, "Argument `seed` must be"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kl.log_uniform_kl(np.zeros(2), **kwargs)


def test_rejects_nan():
    with pytest.raises(ValueError, match="must not contain NaN"):
        kl.log_uniform_kl(np.array([0.0, np.nan]))


def test_fused_additive_molchanov_stats_match_autodiff():
    # Values and gradients of the fused op against autodiff of the plain
    # formulas, with log alpha on both sides of both clipping bounds and an
    # exact zero theta (log alpha clipped at 8).

    rng = np.random.default_rng(0)
    theta = rng.normal(0.0, 0.05, (30, 20)).astype("float32")
    theta[0, 0] = 0.0
    log_sigma2 = rng.uniform(-22.0, -2.0, (30, 20)).astype("float32")
    upstream = rng.normal(size=(30, 20)).astype("float32")
    ops = keras.ops

    def plain(theta, log_sigma2):
        log_alpha = ops.clip(log_sigma2 - ops.log(ops.square(theta) + 1e-8), -8.0, 8.0)
        total = ops.sum(kl.log_uniform_kl_elementwise(log_alpha, "molchanov"))
        return 1e3 * ops.sum(ops.exp(log_sigma2) * upstream) + 0.37 * total

    def fused(theta, log_sigma2):
        variance, total = kl.log_uniform_kl_fused(theta, log_sigma2)
        return 1e3 * ops.sum(variance * upstream) + 0.37 * total

    log_alpha = log_sigma2 - np.log(theta.astype("float64") ** 2 + 1e-8)
    assert (log_alpha < -8).any() and (log_alpha > 8).any()
    np.testing.assert_allclose(
        to_numpy(fused(theta, log_sigma2)),
        to_numpy(plain(theta, log_sigma2)),
        rtol=1e-5,
    )
    for got, expected in zip(
        gradients(fused, theta, log_sigma2), gradients(plain, theta, log_sigma2)
    ):
        np.testing.assert_allclose(
            got, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max()
        )
