import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402


def _predictions():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(4, 0.4), size=200)
    return probs, rng.integers(0, 4, 200)


def test_reliability_diagram_draws_the_binned_points():
    probs, labels = _predictions()
    ax = ks.plot.reliability_diagram(labels, probs, num_bins=10, label="net")
    data = ks.metrics.reliability_diagram(labels, probs, num_bins=10)
    line = ax.get_lines()[1]
    np.testing.assert_allclose(line.get_xdata(), data["confidence"][data["counts"] > 0])
    np.testing.assert_allclose(line.get_ydata(), data["accuracy"][data["counts"] > 0])
    assert f"ECE {data['ece']:.3f}" in ax.get_legend().get_texts()[0].get_text()
    plt.close("all")


def test_shift_curves_draw_seed_means_with_a_band():
    shifts = [0, 15, 30]
    results = {
        "a": {"accuracy": [[0.9, 0.8, 0.6], [0.8, 0.7, 0.5]]},
        "b": {"accuracy": [0.95, 0.7, 0.4]},
    }
    fig, ax = plt.subplots()
    assert ks.plot.shift_curves(shifts, results, "accuracy", ax=ax) is ax
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [0.85, 0.75, 0.55])
    np.testing.assert_allclose(lines[1].get_ydata(), [0.95, 0.7, 0.4])
    assert len(ax.collections) == 1  # Only the two-seed method has a band.
    assert ax.get_ylabel() == "accuracy"
    plt.close(fig)


def test_entropy_histogram_one_per_group():
    rng = np.random.default_rng(1)
    ax = ks.plot.entropy_histogram(
        {"correct": rng.uniform(0, 0.5, 50), "wrong": rng.uniform(0.5, 1.5, 20)}
    )
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["correct", "wrong"]
    plt.close("all")
