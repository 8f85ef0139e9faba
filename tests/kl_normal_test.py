"""`ks.kl.normal_kl` and the priors, against closed forms and quadrature."""

import math

import keras
import numpy as np
import pytest
from scipy import integrate
from scipy import stats

import keras_stochastic as ks
from tests import testing


def test_normal_kl_matches_elementwise_closed_form():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(7, 3))
    stddev = rng.uniform(0.01, 2.0, size=(7, 3))
    prior = 0.7
    expected = np.sum(
        np.log(prior / stddev) + (stddev**2 + mean**2) / (2 * prior**2) - 0.5
    )
    value = ks.kl.normal_kl(mean, stddev, prior)
    assert value.dtype == "float32"
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)
    assert float(
        ks.kl.normal_kl(np.zeros(4), np.full(4, prior), prior)
    ) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_normal_kl_rejects_bad_prior(bad):
    with pytest.raises(ValueError, match="Received: prior_stddev="):
        ks.kl.normal_kl(np.zeros(2), np.ones(2), bad)


def test_scale_mixture_kl_is_unbiased():
    prior = ks.priors.ScaleMixtureNormal(pi=0.3, stddev1=1.0, stddev2=0.05)
    mean = np.array([0.0, 0.3, -1.2], "float32")
    stddev = np.array([0.1, 0.5, 0.02], "float32")

    def exact(m, s):
        def integrand(w):
            log_q = stats.norm.logpdf(w, m, s)
            log_p = np.logaddexp(
                np.log(0.3) + stats.norm.logpdf(w, 0, 1.0),
                np.log(0.7) + stats.norm.logpdf(w, 0, 0.05),
            )
            return stats.norm.pdf(w, m, s) * (log_q - log_p)

        return integrate.quad(integrand, m - 12 * s, m + 12 * s, limit=200)[0]

    expected = sum(exact(m, s) for m, s in zip(mean, stddev))
    # Each call scores 500 independent copies of the three weights at once.
    copies = 500
    seed = keras.random.SeedGenerator(3)
    draws = np.array(
        [
            float(prior.kl(np.tile(mean, copies), np.tile(stddev, copies), seed))
            / copies
            for _ in range(20)
        ]
    )
    assert abs(draws.mean() - expected) < testing.sample_tolerance(
        draws.std(ddof=1), len(draws)
    )
    assert draws.std() > 0


def test_priors_serialize_and_validate():
    for prior in (ks.priors.Normal(0.3), ks.priors.ScaleMixtureNormal(0.2, 2.0, 0.1)):
        clone = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(prior)
        )
        assert type(clone) is type(prior) and clone.get_config() == prior.get_config()
    assert isinstance(ks.priors.get("normal"), ks.priors.Normal)
    assert isinstance(
        ks.priors.get("scale_mixture_normal"), ks.priors.ScaleMixtureNormal
    )
    with pytest.raises(ValueError, match="Received: stddev=0"):
        ks.priors.Normal(0)
    with pytest.raises(ValueError, match="Received: pi=1.5"):
        ks.priors.ScaleMixtureNormal(pi=1.5)
    with pytest.raises(ValueError, match="Received: prior="):
        ks.priors.get({"class_name": "Dense", "config": {"units": 1}})


def test_layer_kl_is_the_normal_kl_of_its_posterior():
    layer = ks.layers.DenseFlipout(
        3, prior=ks.priors.Normal(0.5), kl_weight=0.25, seed=0
    )
    x = np.ones((2, 4), "float32")
    layer(x, training=True)
    expected = float(ks.kl.normal_kl(layer.kernel_mean, layer.kernel_stddev, 0.5))
    np.testing.assert_allclose(float(layer.kl_divergence()), expected, rtol=1e-6)
    (loss,) = layer.losses
    np.testing.assert_allclose(
        float(testing.to_numpy(loss)), 0.25 * expected, rtol=1e-6
    )
    model = testing.sequential(layer, (4,))
    np.testing.assert_allclose(float(ks.kl_divergence(model)), expected, rtol=1e-6)
    assert math.isfinite(expected)


def _fused_and_plain(weights, square, prior=0.6):
    """A scalar of the fused posterior op's outputs, and the same from the plain formulas."""
    from keras import ops

    def fused(mean, rho):
        out, kl = ks.kl.normal_kl_fused(mean, rho, prior, square)
        return ops.sum(out * weights) + 0.3 * kl

    def plain(mean, rho):
        stddev = ops.softplus(rho) + ks.kl.STDDEV_FLOOR
        out = ops.square(stddev) if square else stddev
        return ops.sum(out * weights) + 0.3 * ks.kl.normal_kl(mean, stddev, prior)

    return fused, plain


@pytest.mark.parametrize("square", [False, True])
def test_fused_posterior_gradient_matches_autodiff(square):
    rng = np.random.default_rng(4)
    mean = rng.normal(size=(5, 4))
    rho = rng.normal(-1.0, 1.5, size=(5, 4))
    fused, plain = _fused_and_plain(rng.normal(size=(5, 4)).astype("float32"), square)
    np.testing.assert_allclose(
        float(testing.to_numpy(fused(mean.astype("float32"), rho.astype("float32")))),
        float(testing.to_numpy(plain(mean.astype("float32"), rho.astype("float32")))),
        rtol=1e-5,
    )
    for got, expected in zip(
        testing.gradients(fused, mean, rho), testing.gradients(plain, mean, rho)
    ):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("square", [False, True])
def test_fused_gradient_under_xla_matches_autodiff(square):
    # Under XLA the variance output takes the gradient's sigmoid from
    # softplus's own exponential (both signs of rho, and far tails where
    # exp(-|rho|) underflows to 0), and the KL sum may be a matrix-vector
    # product: the gradients stay those of the plain formula.
    rng = np.random.default_rng(7)
    mean = rng.normal(size=(256, 160))
    rho = rng.normal(-1.0, 3.0, size=(256, 160))
    rho[0, :6] = [-120.0, -30.0, -1e-8, 0.0, 1e-8, 120.0]
    weights = rng.normal(size=(256, 160)).astype("float32")
    fused, plain = _fused_and_plain(weights, square)
    got = testing.gradients(fused, mean, rho, compiled=True)
    expected = testing.gradients(plain, mean, rho)
    for g, e in zip(got, expected, strict=True):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-6)
    # At rho = -120 the sigmoid is exactly 0: no gradient reaches rho.
    assert got[1][0, 0] == 0.0
