"""Plots of calibration and uncertainty (needs matplotlib: `pip install keras-stochastic[plot]`).

Each function draws on `ax` (a new figure's axes when None) and returns the
axes, so plots compose with `plt.subplots`.
"""

import numpy as np

from keras_stochastic.metrics import calibration_metrics

__all__ = ["entropy_histogram", "reliability_diagram", "shift_curves"]


def _axes(ax):
    if ax is not None:
        return ax
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "keras_stochastic.plot needs matplotlib: "
            "`pip install keras-stochastic[plot]` (or `pip install matplotlib`)."
        ) from error
    return plt.subplots(figsize=(5, 4))[1]


def reliability_diagram(
    y_true,
    y_pred,
    num_bins=15,
    binning="equal_width",
    from_logits=False,
    ax=None,
    label=None,
):
    """Accuracy against confidence per bin, with the diagonal of perfect calibration.

    Points above the diagonal are underconfident, below it overconfident;
    the legend gives the ECE. Data from `ks.metrics.reliability_diagram`
    (same arguments).

    Returns:
        The matplotlib axes.
    """
    ax = _axes(ax)
    data = calibration_metrics.reliability_diagram(
        y_true, y_pred, num_bins, binning, from_logits
    )
    filled = data["counts"] > 0
    ax.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1)
    text = f"ECE {data['ece']:.3f}"
    ax.plot(
        data["confidence"][filled],
        data["accuracy"][filled],
        marker="o",
        label=f"{label} ({text})" if label else text,
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize="small")
    return ax


def shift_curves(shifts, results, metric, ax=None, xlabel="shift", marker="o"):
    """One line per method: a metric against the shift intensity.

    Args:
        shifts: The shift intensities (x axis), e.g. rotation angles.
        results: Dict from method name to a dict from metric name to values:
            one per shift, or `(num_seeds, num_shifts)` (the mean is drawn,
            with a band of one standard deviation across seeds).
        metric: The metric name to draw.
        ax: Axes to draw on (a new figure when None).
        xlabel: Label of the x axis.
        marker: Marker of the points.

    Returns:
        The matplotlib axes.
    """
    ax = _axes(ax)
    for name, values in results.items():
        values = np.asarray(values[metric], dtype="float64")
        values = values.reshape(-1, len(shifts))
        mean = values.mean(axis=0)
        (line,) = ax.plot(shifts, mean, marker=marker, markersize=3, label=name)
        if len(values) > 1:
            std = values.std(axis=0)
            ax.fill_between(
                shifts, mean - std, mean + std, color=line.get_color(), alpha=0.15
            )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(metric)
    ax.legend(fontsize="small")
    return ax


def entropy_histogram(entropies, bins=30, ax=None, xlabel="predictive entropy (nats)"):
    """Overlaid density histograms of uncertainty scores, one per group.

    Args:
        entropies: Dict from group name (e.g. "correct", "misclassified",
            "out of distribution") to per-example scores.
        bins: Number of histogram bins, shared by all groups.
        ax: Axes to draw on (a new figure when None).
        xlabel: Label of the x axis.

    Returns:
        The matplotlib axes.
    """
    ax = _axes(ax)
    values = [np.asarray(v, dtype="float64").ravel() for v in entropies.values()]
    upper = max((v.max() for v in values if v.size), default=1.0)
    edges = np.linspace(0.0, max(upper, 1e-6), bins + 1)
    for name, v in zip(entropies, values):
        if v.size:
            ax.hist(v, bins=edges, density=True, alpha=0.5, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax
