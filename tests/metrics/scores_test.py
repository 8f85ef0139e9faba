"""Brier score, entropies and out-of-distribution scores against references."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score
from sklearn.metrics import brier_score_loss
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve

import keras_stochastic as ks
from tests.testing import to_numpy


def _dirichlet(seed, shape, k=5, concentration=1.0):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(k, concentration), size=shape).astype("float32")


# Brier score.


def test_binary_brier_score_matches_scikit_learn():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    for y_pred in (p, p[:, None]):
        np.testing.assert_allclose(
            to_numpy(ks.metrics.brier_score(y, y_pred)),
            brier_score_loss(y, p),
            atol=1e-6,
        )
    logits = np.log(p / (1 - p))[:, None]
    np.testing.assert_allclose(
        to_numpy(ks.metrics.brier_score(y, logits, from_logits=True)),
        brier_score_loss(y, p),
        atol=1e-5,
    )


def test_multiclass_brier_score_hand_computed():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = np.array([0, 1])
    # (0.09 + 0.04 + 0.01) and (0.01 + 0.49 + 0.36), averaged.
    expected = (0.14 + 0.86) / 2
    np.testing.assert_allclose(
        to_numpy(ks.metrics.brier_score(labels, probs)), expected, atol=1e-6
    )
    one_hot = np.eye(3)[labels]
    np.testing.assert_allclose(
        to_numpy(ks.metrics.brier_score(one_hot, probs)), expected, atol=1e-6
    )


def test_brier_metric_streams_and_serializes():
    probs = _dirichlet(1, 300)
    labels = np.random.default_rng(1).integers(0, 5, 300)
    metric = ks.metrics.BrierScore()
    for start in range(0, 300, 70):
        metric.update_state(labels[start : start + 70], probs[start : start + 70])
    np.testing.assert_allclose(
        to_numpy(metric.result()),
        to_numpy(ks.metrics.brier_score(labels, probs)),
        atol=1e-6,
    )


def test_brier_decomposition_is_exact_for_forecasts_constant_per_group():
    rng = np.random.default_rng(2)
    forecasts = np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    group = rng.integers(0, 3, 900)
    probs = forecasts[group]
    labels = np.array(
        [rng.choice(3, p=forecasts[(g + rng.integers(0, 2)) % 3]) for g in group]
    )
    parts = {
        k: float(v) for k, v in ks.metrics.brier_decomposition(labels, probs).items()
    }
    np.testing.assert_allclose(parts["residual"], 0.0, atol=1e-5)
    np.testing.assert_allclose(
        parts["brier"], float(ks.metrics.brier_score(labels, probs)), atol=1e-6
    )
    # Hand-computed terms, group by group.
    base = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(
        parts["uncertainty"], np.sum(base * (1 - base)), atol=1e-6
    )
    reliability = resolution = 0.0
    for g in range(3):
        members = group == g
        outcome = np.bincount(labels[members], minlength=3) / members.sum()
        reliability += members.mean() * np.sum((forecasts[g] - outcome) ** 2)
        resolution += members.mean() * np.sum((outcome - base) ** 2)
    np.testing.assert_allclose(parts["reliability"], reliability, atol=1e-5)
    np.testing.assert_allclose(parts["resolution"], resolution, atol=1e-5)


def test_brier_decomposition_residual_accounts_for_spread_within_groups():
    probs = _dirichlet(3, 400)
    labels = np.random.default_rng(3).integers(0, 5, 400)
    parts = {
        k: float(v) for k, v in ks.metrics.brier_decomposition(labels, probs).items()
    }
    assert abs(parts["residual"]) > 1e-3
    np.testing.assert_allclose(
        parts["uncertainty"]
        - parts["resolution"]
        + parts["reliability"]
        + parts["residual"],
        parts["brier"],
        atol=1e-6,
    )


# Entropies.


def test_entropy_hand_computed_and_binary_unit():
    uniform = np.full((2, 4), 0.25)
    np.testing.assert_allclose(
        to_numpy(ks.metrics.predictive_entropy(uniform)), np.log(4), atol=1e-6
    )
    one_hot = np.eye(3)
    np.testing.assert_allclose(
        to_numpy(ks.metrics.predictive_entropy(one_hot)), 0.0, atol=1e-6
    )
    p = np.array([[0.2], [0.5]])
    expected = -(0.2 * np.log(0.2) + 0.8 * np.log(0.8))
    np.testing.assert_allclose(
        to_numpy(ks.metrics.predictive_entropy(p)), [expected, np.log(2)], atol=1e-6
    )


def test_entropy_decomposition_identities():
    samples = _dirichlet(4, (12, 50), concentration=0.7)
    total = to_numpy(ks.metrics.predictive_entropy(samples.mean(0)))
    aleatoric = to_numpy(ks.metrics.expected_entropy(samples))
    epistemic = to_numpy(ks.metrics.mutual_information(samples))
    assert total.shape == aleatoric.shape == epistemic.shape == (50,)
    np.testing.assert_allclose(total, aleatoric + epistemic, atol=1e-5)
    assert (epistemic > 0).all()
    reference = -np.sum(samples * np.log(samples), -1).mean(0)
    np.testing.assert_allclose(aleatoric, reference, rtol=1e-4, atol=1e-5)


def test_mutual_information_is_zero_for_identical_samples():
    one = _dirichlet(5, (1, 40))
    samples = np.repeat(one, 9, axis=0)
    np.testing.assert_allclose(
        to_numpy(ks.metrics.mutual_information(samples)), 0.0, atol=1e-6
    )
    assert (to_numpy(ks.metrics.mutual_information(samples)) >= 0).all()


# Out-of-distribution scores.


def _scores(seed, ties):
    rng = np.random.default_rng(seed)
    scores_in = rng.normal(size=400)
    scores_out = rng.normal(0.8, 1.3, size=250)
    if ties:
        scores_in, scores_out = scores_in.round(1), scores_out.round(1)
    return scores_in, scores_out


@pytest.mark.parametrize("ties", [False, True])
def test_ood_scores_match_scikit_learn(ties):
    scores_in, scores_out = _scores(6, ties)
    y = np.r_[np.zeros(len(scores_in)), np.ones(len(scores_out))]
    s = np.r_[scores_in, scores_out]
    np.testing.assert_allclose(
        to_numpy(ks.metrics.ood_auroc(scores_in, scores_out)),
        roc_auc_score(y, s),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(ks.metrics.ood_aupr(scores_in, scores_out)),
        average_precision_score(y, s),
        atol=1e-6,
    )
    fpr, tpr, _ = roc_curve(y, s)
    np.testing.assert_allclose(
        to_numpy(ks.metrics.fpr_at_95_tpr(scores_in, scores_out)),
        fpr[np.searchsorted(tpr, 0.95, side="left")],
        atol=1e-6,
    )


def test_ood_scores_at_the_extremes():
    low, high = np.arange(10.0), np.arange(10.0) + 100
    assert float(ks.metrics.ood_auroc(low, high)) == 1.0
    assert float(ks.metrics.ood_auroc(high, low)) == 0.0
    assert float(ks.metrics.ood_aupr(low, high)) == 1.0
    assert float(ks.metrics.fpr_at_95_tpr(low, high)) == 0.0
    assert float(ks.metrics.fpr_at_95_tpr(high, low)) == 1.0
    same = np.ones(20)
    assert float(ks.metrics.ood_auroc(same, same)) == 0.5


# Everything at once.


def test_classification_summary_composes_the_metrics():
    samples = _dirichlet(7, (6, 300), k=4, concentration=0.5)
    labels = np.random.default_rng(7).integers(0, 4, 300)
    probs = samples.mean(0)
    summary = ks.metrics.classification_summary(labels, samples=samples, num_bins=10)
    assert summary["accuracy"] == pytest.approx(np.mean(probs.argmax(-1) == labels))
    nll = -np.mean(np.log(probs[np.arange(300), labels]))
    assert summary["nll"] == pytest.approx(nll, rel=1e-4)
    assert summary["ece"] == pytest.approx(
        float(ks.metrics.expected_calibration_error(labels, probs, num_bins=10)),
        abs=1e-6,
    )
    assert summary["entropy"] == pytest.approx(
        summary["expected_entropy"] + summary["mutual_information"], abs=1e-5
    )
    assert set(ks.metrics.classification_summary(labels, probs)) == {
        "accuracy",
        "nll",
        "ece",
        "mce",
        "brier",
        "entropy",
    }
    with pytest.raises(ValueError, match="probs=None"):
        ks.metrics.classification_summary(labels)


def test_summary_of_perfect_uniform_and_overconfident_predictions():
    labels = np.array([0, 1, 2, 1])
    perfect = ks.metrics.classification_summary(labels, np.eye(3)[labels])
    assert perfect["accuracy"] == 1.0 and perfect["ece"] == 0.0
    assert perfect["brier"] == 0.0 and perfect["entropy"] == pytest.approx(0, abs=1e-6)
    assert perfect["nll"] < 1e-6
    uniform = ks.metrics.classification_summary(labels, np.full((4, 3), 1 / 3))
    np.testing.assert_allclose(uniform["nll"], np.log(3), rtol=1e-6)
    np.testing.assert_allclose(uniform["entropy"], np.log(3), rtol=1e-6)
    # Confidence 0.9 on every example, half of them right: ECE = |0.5 - 0.9|.
    probs = np.array([[0.9, 0.1]] * 4)
    overconfident = ks.metrics.classification_summary([0, 0, 1, 1], probs)
    np.testing.assert_allclose(overconfident["ece"], 0.4, rtol=1e-6)
    np.testing.assert_allclose(overconfident["mce"], 0.4, rtol=1e-6)
