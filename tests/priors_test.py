"""`ScaleMixtureNormal` in layers: the Monte Carlo KL of the forward weight sample.

Blundell et al. (2015) estimate `KL ~ log q(w) - log p(w)` at the weights `w`
sampled for the forward pass. Reparameterization and flipout layers have such
a sample, and their KL must be evaluated at it (not at a second, independent
draw); local reparameterization samples pre-activations, has no weight
sample, and keeps a draw of its own, which must stay an unbiased estimate.

The references are computed in float64 with SciPy.
"""

import math

import keras
import numpy as np
from scipy import stats

import keras_stochastic as ks
from tests import testing

# A smooth mixture (no component much narrower than the posteriors below), so
# that quadrature of E_q[log p] is accurate.
PI, STDDEV1, STDDEV2 = 0.3, 1.0, 0.05


def _prior():
    return ks.priors.ScaleMixtureNormal(pi=PI, stddev1=STDDEV1, stddev2=STDDEV2)


def _log_prior(w):
    return np.logaddexp(
        math.log(PI) + stats.norm.logpdf(w, 0.0, STDDEV1),
        math.log1p(-PI) + stats.norm.logpdf(w, 0.0, STDDEV2),
    )


def _log_q_minus_log_p(w, mean, stddev):
    """`sum(log q(w) - log p(w))` at the weights `w`, float64."""
    w, mean, stddev = (np.asarray(a, "float64") for a in (w, mean, stddev))
    return float(np.sum(stats.norm.logpdf(w, mean, stddev) - _log_prior(w)))


def _kl_loss(layer):
    (loss,) = layer.losses  # kl_weight = 1, no regularizers: the KL alone
    return float(testing.to_numpy(loss))


def _posterior(layer):
    return (
        testing.to_numpy(layer.kernel_mean).astype("float64"),
        testing.to_numpy(layer.kernel_stddev).astype("float64"),
    )


def test_reparameterization_kl_uses_the_forward_weight_sample():
    # With inputs = the identity (batch = input_dim), no bias and a linear
    # activation, the outputs of a reparameterization layer are exactly its
    # sampled kernel W = M + sigma * eps (rows of W times 1, plus zeros).
    units, input_dim = 32, 16
    layer = ks.layers.DenseReparameterization(
        units,
        use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=1),
        kernel_stddev_initializer=0.1,
        prior=_prior(),
        kl_weight=1.0,
        seed=2,
    )
    eye = np.eye(input_dim, dtype="float32")
    layer.build(eye.shape)
    mean, stddev = _posterior(layer)
    for _ in range(3):
        sample = testing.to_numpy(layer(eye, training=True)).astype("float64")
        assert np.abs(sample - mean).max() > 0.1  # a real draw, not the mean
        expected = _log_q_minus_log_p(sample, mean, stddev)
        # A KL drawn independently of the forward sample differs from this by
        # its own Monte Carlo noise, a few percent of the ~1e3 total here
        # (the sum over 512 weights of a term of standard deviation ~0.5+),
        # far above float32 rounding (~1e-6 relative).
        np.testing.assert_allclose(
            _kl_loss(layer),
            expected,
            rtol=1e-3,
            err_msg="KL is not log q - log p at the forward weight sample",
        )


def test_flipout_kl_uses_the_forward_weight_sample():
    # Flipout's forward pass uses, for example b, the weights
    # M + Delta_W * (s_b r_b^T) (random signs s_b, r_b). With inputs = the
    # identity, row b of the outputs is M[b] + s_bb * Delta_W[b] * r_b. With
    # M = 0 (zero kernel initializer) and a zero-mean prior, log q - log p
    # only depends on |w|, which is the same for every example's signs:
    # |outputs| = |Delta_W| gives the KL of the forward sample exactly.
    units, input_dim = 32, 16
    layer = ks.layers.DenseFlipout(
        units,
        use_bias=False,
        kernel_initializer="zeros",
        kernel_stddev_initializer=0.1,
        prior=_prior(),
        kl_weight=1.0,
        seed=4,
    )
    eye = np.eye(input_dim, dtype="float32")
    layer.build(eye.shape)
    mean, stddev = _posterior(layer)
    assert not mean.any()
    for _ in range(3):
        magnitude = np.abs(
            testing.to_numpy(layer(eye, training=True)).astype("float64")
        )
        assert magnitude.max() > 0.1
        expected = _log_q_minus_log_p(magnitude, mean, stddev)
        # As above: an independent draw is off by a few percent.
        np.testing.assert_allclose(
            _kl_loss(layer),
            expected,
            rtol=1e-3,
            err_msg="KL is not log q - log p at the forward weight sample",
        )


def _exact_kl(mean, stddev):
    """E_q[log q(w) - log p(w)], summed over weights, by quadrature.

    Trapezoid rule on mean +- 12 stddev with 20001 nodes per weight: the
    integrand is smooth on scales >= min(stddev, STDDEV2) >= 0.02, far wider
    than the node spacing (<= 4e-4 here), so the rule is accurate to float64
    rounding.
    """
    mean, stddev = mean.reshape(-1, 1), stddev.reshape(-1, 1)
    w = mean + stddev * np.linspace(-12.0, 12.0, 20001)
    log_p = np.trapezoid(stats.norm.pdf(w, mean, stddev) * _log_prior(w), w, axis=1)
    entropy = 0.5 * np.log(2.0 * np.pi * np.e * stddev[:, 0] ** 2)
    return float(np.sum(-entropy - log_p))


def test_local_reparameterization_kl_is_unbiased():
    # LRT has no weight sample: its Monte Carlo KL draws its own, which must
    # stay an unbiased estimate of the exact KL. The mean of 200 calls' KLs
    # matches it within five standard errors (the sample standard deviation
    # over sqrt(200)).
    units, input_dim = 8, 16
    layer = ks.layers.DenseLocalReparameterization(
        units,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=5),
        kernel_stddev_initializer=keras.initializers.RandomUniform(0.02, 0.3, seed=6),
        prior=_prior(),
        kl_weight=1.0,
        seed=7,
    )
    x = np.random.default_rng(0).normal(size=(4, input_dim)).astype("float32")
    layer.build(x.shape)
    mean, stddev = _posterior(layer)
    draws = []
    for _ in range(200):
        layer(x, training=True)
        draws.append(_kl_loss(layer))
    draws = np.array(draws)
    expected = _exact_kl(mean, stddev)
    assert draws.std() > 0  # a Monte Carlo estimate, fresh at every call
    assert abs(draws.mean() - expected) < testing.sample_tolerance(
        draws.std(ddof=1), len(draws)
    ), f"mean KL {draws.mean():.3f} vs exact {expected:.3f}"


def test_centered_normal_kl_is_the_closed_form_around_its_centre():
    """KL(N(m, s^2) || N(c, p^2)) = sum log(p / s) + (s^2 + (m - c)^2) / (2 p^2) - 1/2."""
    rng = np.random.default_rng(0)
    layer = ks.layers.DenseFlipout(
        3, prior=ks.priors.CenteredNormal(0.3), kernel_stddev_initializer=0.05, seed=0
    )
    layer.build((None, 4))
    initial = testing.to_numpy(layer.kernel_mean)
    # A standalone layer's prior starts at its initial mean: the KL is then
    # the stddev terms alone.
    np.testing.assert_array_equal(testing.to_numpy(layer.posterior.prior_mean), initial)
    center = rng.normal(0.0, 0.5, (4, 3)).astype("float32")
    mean = rng.normal(0.0, 0.5, (4, 3)).astype("float32")
    layer.posterior.prior_mean.assign(center)
    layer.kernel_mean.assign(mean)
    stddev = testing.to_numpy(layer.kernel_stddev).astype("float64")
    diff = mean.astype("float64") - center
    expected = np.sum(np.log(0.3 / stddev) + (stddev**2 + diff**2) / (2 * 0.3**2) - 0.5)
    np.testing.assert_allclose(
        float(testing.to_numpy(layer.kl_divergence())), expected, rtol=1e-5
    )
    # The loss the layer adds (the fused KL) is the same value.
    layer(np.ones((2, 4), "float32"), training=True)
    np.testing.assert_allclose(_kl_loss(layer), expected, rtol=1e-5)
    # Centred at zero it is the Normal prior's KL.
    layer.posterior.prior_mean.assign(np.zeros((4, 3), "float32"))
    np.testing.assert_allclose(
        float(testing.to_numpy(layer.kl_divergence())),
        float(testing.to_numpy(ks.kl.normal_kl(mean, stddev, 0.3))),
        rtol=1e-5,
    )
    # The centre is a non-trainable weight; the prior's config is its stddev.
    assert layer.posterior.prior_mean in layer.non_trainable_weights
    assert ks.priors.CenteredNormal(0.3).get_config() == {"stddev": 0.3}
    assert isinstance(ks.priors.get("centered_normal"), ks.priors.CenteredNormal)
