"""Local reparameterization under `mixed_float16`: the output noise keeps its variance.

The LRT noise of a pre-activation is `sqrt(x^2 . sigma^2) * zeta`. In
float16, `sigma^2` below ~6e-8 is subnormal or zero and `x^2` overflows for
|x| > 256, so these tests compare the empirical output variance with the exact
`sum_i x_i^2 sigma_i^2` (float64). With zero kernel means and no bias the
outputs are pure noise of known mean 0, so `outputs^2 / exact` has mean 1 and
standard deviation sqrt(2) (chi-square with one degree of freedom): over `n`
draws per unit, the relative standard error of the variance is sqrt(2 / n),
and the tolerance is five of them.
"""

import keras
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import keras_stochastic as ks
from tests import testing


@pytest.fixture
def mixed_float16():
    keras.config.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.config.set_dtype_policy("float32")


def _float16_inputs(shape, scale=3.0, seed=0):
    """Normal inputs, rounded to float16 so that the layer sees them exactly."""
    x = scale * np.random.default_rng(seed).normal(size=shape)
    return x.astype("float16").astype("float32")


def _pure_noise_layer(cls, *args, stddev):
    layer = cls(
        *args,
        use_bias=False,
        kernel_initializer="zeros",
        kernel_stddev_initializer=stddev,
        seed=3,
    )
    assert layer.compute_dtype == "float16"
    return layer


def _assert_variance_matches(layer, x, exact, calls):
    """Each unit's empirical variance over `calls` training calls equals `exact`."""
    draws = np.stack(
        [
            testing.to_numpy(layer(x, training=True)).astype("float64")
            for _ in range(calls)
        ]
    )
    non_finite = np.count_nonzero(~np.isfinite(draws))
    assert non_finite == 0, f"{non_finite} of {draws.size} LRT outputs are not finite"
    ratios = (draws**2 / exact).reshape(-1, draws.shape[-1])
    assert np.count_nonzero(draws) > 0.99 * draws.size, "the LRT noise vanished"
    n = ratios.shape[0]
    tolerance = testing.sample_tolerance(np.sqrt(2.0), n)
    per_unit = ratios.mean(axis=0)
    assert np.abs(per_unit - 1.0).max() < tolerance, (
        f"output variance / exact variance per unit: {np.round(per_unit, 3)} "
        f"(tolerance {tolerance:.3f} over {n} draws per unit)"
    )


def _dense_exact(layer, x):
    variance = testing.to_numpy(layer.kernel_stddev).astype("float64") ** 2
    return np.square(x.astype("float64")) @ variance


# 3e-4: sigma^2 = 9e-8 is a float16 subnormal (the variance came out ~1.3-1.5x
# too large); 1e-4: sigma^2 = 1e-8 rounds to zero in float16, leaving only the
# float16 eps0 floor (~0.02x the exact variance at these inputs).
@pytest.mark.parametrize("stddev", [3e-4, 1e-4])
def test_dense_lrt_output_variance_under_mixed_float16(mixed_float16, stddev):
    # Inputs of scale 3 over 64 features: the exact variance (~5.8e-6 at
    # 1e-4) is ~50x the float16 eps0 of the LRT square root (1e-7), so that
    # floor alone biases the variance by at most ~2%.
    x = _float16_inputs((1024, 64))
    layer = _pure_noise_layer(ks.layers.DenseLocalReparameterization, 8, stddev=stddev)
    layer.build(x.shape)
    # 8 calls x 1024 examples = 8192 draws per unit: tolerance 5 * sqrt(2/8192) = 0.078.
    _assert_variance_matches(layer, x, _dense_exact(layer, x), calls=8)


def test_dense_lrt_large_inputs_under_mixed_float16(mixed_float16):
    # |x| = 1000: x^2 = 1e6 overflows float16 (max 65504); the exact variance
    # 16 * 1e6 * 9e-8 = 1.44 is an ordinary float16 number.
    signs = np.sign(np.random.default_rng(1).normal(size=(1024, 16)))
    x = (1000.0 * signs).astype("float32")
    layer = _pure_noise_layer(ks.layers.DenseLocalReparameterization, 8, stddev=3e-4)
    layer.build(x.shape)
    _assert_variance_matches(layer, x, _dense_exact(layer, x), calls=8)


def test_conv2d_lrt_output_variance_under_mixed_float16(mixed_float16):
    x = _float16_inputs((128, 6, 6, 3), seed=2)
    layer = _pure_noise_layer(
        ks.layers.Conv2DLocalReparameterization, 4, 3, stddev=3e-4
    )
    layer.build(x.shape)
    variance = testing.to_numpy(layer.kernel_stddev).astype("float64") ** 2
    assert variance.shape == (3, 3, 3, 4)
    # "valid" 3x3 patches of x^2: (batch, 4, 4, channels, 3, 3).
    patches = sliding_window_view(np.square(x.astype("float64")), (3, 3), axis=(1, 2))
    exact = np.einsum("bhwcij,ijcf->bhwf", patches, variance)
    # 4 calls x 128 examples x 16 positions = 8192 draws per filter
    # (tolerance 0.078).
    _assert_variance_matches(layer, x, exact, calls=4)
