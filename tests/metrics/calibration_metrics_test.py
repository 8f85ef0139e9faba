import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests.testing import to_numpy


def _reference_bins(probs, labels, num_bins, binning):
    """An independent loop over bins: (count, mean confidence, accuracy) per bin."""
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == labels
    if binning == "equal_width":
        members = [
            (confidence >= b / num_bins)
            & ((confidence < (b + 1) / num_bins) | (b == num_bins - 1))
            for b in range(num_bins)
        ]
    else:
        order = np.argsort(confidence, kind="stable")
        members = []
        for part in np.array_split(order, num_bins):
            mask = np.zeros(len(labels), bool)
            mask[part] = True
            members.append(mask)
    return [
        (m.sum(), confidence[m].mean(), correct[m].mean()) for m in members if m.any()
    ]


def _reference_ece(probs, labels, num_bins=15, binning="equal_width"):
    rows = _reference_bins(probs, labels, num_bins, binning)
    return sum(n / len(labels) * abs(acc - conf) for n, conf, acc in rows)


def _reference_mce(probs, labels, num_bins=15):
    rows = _reference_bins(probs, labels, num_bins, "equal_width")
    return max(abs(acc - conf) for _, conf, acc in rows)


def _random_predictions(seed, n=600, k=10, sharpness=3.0):
    rng = np.random.default_rng(seed)
    logits = sharpness * rng.normal(size=(n, k))
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    labels = np.where(
        rng.uniform(size=n) < 0.6, probs.argmax(-1), rng.integers(0, k, n)
    )
    return logits.astype("float32"), probs.astype("float32"), labels


def test_hand_computed_ece_and_mce():
    # Confidences 0.95 (right), 0.95 (wrong), 0.65 (right), 0.55 (right), ten bins:
    # bin 9: acc 0.5, conf 0.95; bin 6: 1 vs 0.65; bin 5: 1 vs 0.55.
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 0])
    ece = ks.metrics.expected_calibration_error(labels, probs, num_bins=10)
    mce = ks.metrics.maximum_calibration_error(labels, probs, num_bins=10)
    np.testing.assert_allclose(
        to_numpy(ece), 0.5 * 0.45 + 0.25 * 0.35 + 0.25 * 0.45, atol=1e-6
    )
    np.testing.assert_allclose(to_numpy(mce), 0.45, atol=1e-6)


@pytest.mark.parametrize("binning", ["equal_width", "equal_mass"])
@pytest.mark.parametrize("num_bins", [1, 7, 15])
def test_ece_matches_a_reference_loop(binning, num_bins):
    _, probs, labels = _random_predictions(0)
    ece = ks.metrics.expected_calibration_error(
        labels, probs, num_bins=num_bins, binning=binning
    )
    expected = _reference_ece(probs, labels, num_bins, binning)
    np.testing.assert_allclose(to_numpy(ece), expected, atol=1e-5)


def test_mce_matches_a_reference_loop():
    _, probs, labels = _random_predictions(1)
    mce = ks.metrics.maximum_calibration_error(labels, probs)
    np.testing.assert_allclose(to_numpy(mce), _reference_mce(probs, labels), atol=1e-5)


def test_logits_one_hot_labels_and_a_confidence_of_one():
    logits, probs, labels = _random_predictions(2)
    one_hot = np.eye(10, dtype="float32")[labels]
    expected = _reference_ece(probs, labels)
    for y_true, y_pred, from_logits in [
        (labels, logits, True),
        (one_hot, probs, False),
        (labels.reshape(-1, 1), probs, False),
    ]:
        ece = ks.metrics.expected_calibration_error(
            y_true, y_pred, from_logits=from_logits
        )
        np.testing.assert_allclose(to_numpy(ece), expected, atol=1e-5)
    # Confidence exactly 1 falls in the last bin (its gap is 0 when correct).
    certain = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert float(ks.metrics.expected_calibration_error([0, 1], certain)) == 0.0
    assert float(ks.metrics.expected_calibration_error([1, 0], certain)) == 1.0


def test_binary_single_unit_uses_the_top_class_confidence():
    rng = np.random.default_rng(3)
    p = rng.uniform(size=300).astype("float32")
    y = (rng.uniform(size=300) < p).astype("int32")
    two_columns = np.stack([1 - p, p], -1)
    np.testing.assert_allclose(
        to_numpy(ks.metrics.expected_calibration_error(y, p[:, None])),
        _reference_ece(two_columns, y),
        atol=1e-5,
    )


def test_reliability_diagram_data():
    _, probs, labels = _random_predictions(4)
    data = ks.metrics.reliability_diagram(labels, probs, num_bins=10)
    rows = _reference_bins(probs, labels, 10, "equal_width")
    filled = data["counts"] > 0
    np.testing.assert_allclose(data["counts"][filled], [r[0] for r in rows])
    np.testing.assert_allclose(
        data["confidence"][filled], [r[1] for r in rows], atol=1e-6
    )
    np.testing.assert_allclose(
        data["accuracy"][filled], [r[2] for r in rows], atol=1e-6
    )
    assert np.isnan(data["accuracy"][~filled]).all()
    np.testing.assert_allclose(data["bin_edges"], np.linspace(0, 1, 11))
    np.testing.assert_allclose(
        data["ece"], _reference_ece(probs, labels, 10), atol=1e-5
    )
    mass = ks.metrics.reliability_diagram(
        labels, probs, num_bins=6, binning="equal_mass"
    )
    assert set(mass["counts"]) == {100.0}
    assert np.all(np.diff(mass["bin_edges"]) >= 0)


def test_streaming_over_batches_equals_one_shot_and_weights_repeat_examples():
    _, probs, labels = _random_predictions(5)
    for metric_class, function in [
        (ks.metrics.ExpectedCalibrationError, ks.metrics.expected_calibration_error),
        (ks.metrics.MaximumCalibrationError, ks.metrics.maximum_calibration_error),
    ]:
        metric = metric_class(num_bins=12)
        for start in range(0, len(labels), 64):
            metric.update_state(labels[start : start + 64], probs[start : start + 64])
        one_shot = function(labels, probs, num_bins=12)
        np.testing.assert_allclose(
            to_numpy(metric.result()), to_numpy(one_shot), atol=1e-6
        )
        metric.reset_state()
        weights = np.arange(len(labels)) % 3
        metric.update_state(labels, probs, sample_weight=weights)
        repeated = np.repeat(np.arange(len(labels)), weights)
        np.testing.assert_allclose(
            to_numpy(metric.result()),
            to_numpy(function(labels[repeated], probs[repeated], num_bins=12)),
            atol=1e-6,
        )


def test_metrics_inside_compiled_fit_and_evaluate():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(200, 8)).astype("float32")
    y = (x[:, :3].argmax(-1)).astype("int32")
    model = keras.Sequential(
        [keras.Input((8,)), ks.layers.DenseFlipout(3, kl_weight=1 / 200, seed=1)]
    )
    model.compile(
        keras.optimizers.Adam(0.05),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            "accuracy",
            ks.metrics.ExpectedCalibrationError(from_logits=True),
            ks.metrics.MaximumCalibrationError(num_bins=5, from_logits=True),
            ks.metrics.BrierScore(from_logits=True),
        ],
    )
    history = model.fit(x, y, batch_size=50, epochs=2, verbose=0)
    assert np.isfinite(history.history["expected_calibration_error"]).all()
    results = model.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    logits = model.predict(x, batch_size=64, verbose=0)
    np.testing.assert_allclose(
        results["expected_calibration_error"],
        to_numpy(ks.metrics.expected_calibration_error(y, logits, from_logits=True)),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        results["maximum_calibration_error"],
        to_numpy(
            ks.metrics.maximum_calibration_error(
                y, logits, num_bins=5, from_logits=True
            )
        ),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        results["brier_score"],
        to_numpy(ks.metrics.brier_score(y, logits, from_logits=True)),
        atol=1e-5,
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_bins=0"):
        ks.metrics.ExpectedCalibrationError(num_bins=0)
    with pytest.raises(TypeError, match="num_bins=2.5"):
        ks.metrics.expected_calibration_error([0], [[0.6, 0.4]], num_bins=2.5)
    with pytest.raises(ValueError, match="binning='quantile'"):
        ks.metrics.expected_calibration_error([0], [[0.6, 0.4]], binning="quantile")
    with pytest.raises(TypeError, match="from_logits='yes'"):
        ks.metrics.BrierScore(from_logits="yes")


def test_equal_mass_edges_are_each_bins_smallest_confidence():
    # 601 examples in 7 bins: the bin sizes differ, so edges must follow the
    # same rule that assigns examples to bins.
    _, probs, labels = _random_predictions(7, n=601)
    data = ks.metrics.reliability_diagram(
        labels, probs, num_bins=7, binning="equal_mass"
    )
    confidence = np.sort(probs.max(-1))
    starts = [part[0] for part in np.array_split(confidence, 7)]
    np.testing.assert_allclose(data["bin_edges"][1:-1], starts[1:])
    np.testing.assert_allclose(
        data["counts"], [len(p) for p in np.array_split(confidence, 7)]
    )

    few = ks.metrics.reliability_diagram(
        [0, 1, 1], probs[:3], num_bins=7, binning="equal_mass"
    )
    assert few["counts"].sum() == 3 and len(few["bin_edges"]) == 8
