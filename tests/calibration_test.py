import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests.testing import save_and_reload
from tests.testing import to_numpy


def _calibrated_logits(seed, n=2000, k=5):
    """Logits whose softmax is the true label distribution (calibrated at T = 1)."""
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.array([rng.choice(k, p=p) for p in probs])
    return logits, labels


def _nll(probs, labels):
    return -np.mean(np.log(probs[np.arange(len(labels)), labels]))


def test_recovers_the_temperature_of_an_overconfident_model_keeping_its_argmax():
    logits, labels = _calibrated_logits(0)
    overconfident = 4.0 * logits
    scaler = ks.calibration.TemperatureScaling().fit(overconfident, labels)
    # The NLL minimiser on 2000 examples lands near 4 (a few percent off).
    assert scaler.temperature == pytest.approx(4.0, rel=0.1)
    before = ks.calibration.TemperatureScaling().probabilities(overconfident)
    after = scaler.probabilities(overconfident)
    assert _nll(after, labels) < _nll(before, labels) - 0.1
    np.testing.assert_array_equal(after.argmax(-1), overconfident.argmax(-1))
    ece_before = float(ks.metrics.expected_calibration_error(labels, before))
    ece_after = float(ks.metrics.expected_calibration_error(labels, after))
    assert ece_after < ece_before / 2
    # The fitted T is a minimum of the NLL: nudging it either way is worse.
    for factor in (0.95, 1.05):
        nudged = ks.calibration.TemperatureScaling(scaler.temperature * factor)
        assert _nll(nudged.probabilities(overconfident), labels) > _nll(after, labels)


def test_underconfident_logits_get_a_temperature_below_one():
    logits, labels = _calibrated_logits(1)
    scaler = ks.calibration.TemperatureScaling().fit(logits / 3.0, labels)
    assert scaler.temperature == pytest.approx(1 / 3.0, rel=0.1)


def test_fits_monte_carlo_samples_to_the_averaged_predictive():
    logits, labels = _calibrated_logits(2, n=1000)
    rng = np.random.default_rng(2)
    samples = 3.0 * (logits[None] + 0.5 * rng.normal(size=(8,) + logits.shape))
    scaler = ks.calibration.TemperatureScaling().fit(samples, labels)
    probs = scaler.probabilities(samples)
    assert probs.shape == logits.shape
    one = ks.calibration.TemperatureScaling()
    assert _nll(probs, labels) < _nll(one.probabilities(samples), labels)
    for factor in (0.95, 1.05):
        nudged = ks.calibration.TemperatureScaling(scaler.temperature * factor)
        assert _nll(nudged.probabilities(samples), labels) > _nll(probs, labels)


def test_binary_single_logit_and_one_hot_labels():
    rng = np.random.default_rng(3)
    z = 1.5 * rng.normal(size=(3000, 1))
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-z[:, 0]))).astype(int)
    scaler = ks.calibration.TemperatureScaling().fit(2.5 * z, y)
    assert scaler.temperature == pytest.approx(2.5, rel=0.15)
    logits, labels = _calibrated_logits(4, n=500)
    by_index = ks.calibration.TemperatureScaling().fit(2 * logits, labels)
    by_one_hot = ks.calibration.TemperatureScaling().fit(2 * logits, np.eye(5)[labels])
    assert by_index.temperature == pytest.approx(by_one_hot.temperature, rel=1e-6)


def test_divides_logits_inside_a_model_and_saves(tmp_path):
    logits, labels = _calibrated_logits(5, n=300)
    scaler = ks.calibration.TemperatureScaling().fit(3 * logits, labels)
    model = keras.Sequential([keras.Input((5,)), scaler])
    x = (3 * logits[:10]).astype("float32")
    np.testing.assert_allclose(to_numpy(model(x)), x / scaler.temperature, rtol=1e-6)
    reloaded = save_and_reload(model, tmp_path)
    assert reloaded.layers[-1].temperature == pytest.approx(scaler.temperature)
    np.testing.assert_allclose(to_numpy(reloaded(x)), to_numpy(model(x)), rtol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="temperature=0"):
        ks.calibration.TemperatureScaling(temperature=0)
    scaler = ks.calibration.TemperatureScaling()
    with pytest.raises(ValueError, match=r"logits.shape=\(4,\)"):
        scaler.fit(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="same number of examples"):
        scaler.fit(np.zeros((4, 3)), np.zeros(5))
