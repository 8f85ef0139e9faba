"""Calibration of top-1 confidence: ECE, MCE and the reliability diagram.

The top-1 confidence of an example is its largest predicted probability; it
is correct when that class is the label. Confidences are grouped into
`num_bins` bins, and per bin `b` the metrics compare the accuracy `acc(b)`
with the mean confidence `conf(b)`:

- expected calibration error, `ECE = sum_b |B_b| / n * |acc(b) - conf(b)|`
  (Naeini et al., 2015; Guo et al., 2017);
- maximum calibration error, `MCE = max_b |acc(b) - conf(b)|` over non-empty
  bins.

`binning="equal_width"` (the default) uses bins `[b / num_bins, (b + 1) /
num_bins)`, the last one closed at 1. `binning="equal_mass"` (adaptive)
sorts the confidences and gives every bin the same number of examples
(within one), so that no bin is nearly empty when the confidences crowd near
1; it needs all the predictions at once, so the streaming metrics use equal
widths.

Every result comes from three per-bin sums (examples, confidences, correct
predictions), which the streaming metrics accumulate over batches.
"""

import keras
import numpy as np
from keras import ops

from keras_stochastic import _validation
from keras_stochastic.metrics import _classification

BINNINGS = ("equal_width", "equal_mass")


def _num_bins(value):
    return _validation.integer("num_bins", value, minimum=1)


def _confidence_and_correct(y_true, y_pred, from_logits):
    probs = _classification.probabilities(y_pred, from_logits)
    labels = _classification.labels(y_true, y_pred)
    confidence = ops.max(probs, axis=-1)
    correct = ops.cast(ops.equal(ops.argmax(probs, axis=-1), labels), "float32")
    return confidence, correct


def _equal_width_bins(confidence, num_bins):
    index = ops.cast(ops.floor(confidence * num_bins), "int32")
    return ops.clip(index, 0, num_bins - 1)


def _assigned_bins(y_true, y_pred, num_bins, binning, from_logits, sample_weight):
    """`(confidence, correct, weight, bin index)` per example (sorted for equal mass)."""
    _validation.choice("binning", binning, BINNINGS)
    confidence, correct = _confidence_and_correct(y_true, y_pred, from_logits)
    weight = (
        ops.ones_like(confidence)
        if sample_weight is None
        else ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    )
    if binning == "equal_width":
        return confidence, correct, weight, _equal_width_bins(confidence, num_bins)
    order = ops.argsort(confidence)
    confidence = ops.take(confidence, order)
    size = ops.shape(confidence)[0]
    position = ops.arange(size, dtype="float32")
    index = ops.cast(ops.floor(position * num_bins / size), "int32")
    return confidence, ops.take(correct, order), ops.take(weight, order), index


def _sums(confidence, correct, weight, index, num_bins):
    members = ops.one_hot(index, num_bins, dtype="float32") * weight[:, None]
    counts = ops.sum(members, axis=0)
    confidence_sums = ops.matmul(confidence[None, :], members)[0]
    correct_sums = ops.matmul(correct[None, :], members)[0]
    return counts, confidence_sums, correct_sums


def bin_statistics(
    y_true,
    y_pred,
    num_bins=15,
    binning="equal_width",
    from_logits=False,
    sample_weight=None,
):
    """Per-bin `(counts, confidence_sums, correct_sums)`, each `(num_bins,)` float32.

    With `sample_weight` each example counts with its weight.
    """
    assigned = _assigned_bins(
        y_true, y_pred, num_bins, binning, from_logits, sample_weight
    )
    return _sums(*assigned, num_bins)


def ece_from_statistics(counts, confidence_sums, correct_sums):
    """ECE from per-bin sums: `sum_b |correct_b - confidence_b| / n`."""
    total = ops.maximum(ops.sum(counts), 1e-12)
    return ops.sum(ops.abs(correct_sums - confidence_sums)) / total


def mce_from_statistics(counts, confidence_sums, correct_sums):
    """MCE from per-bin sums: the largest `|acc - conf|` over non-empty bins."""
    gaps = ops.abs(correct_sums - confidence_sums) / ops.maximum(counts, 1e-12)
    return ops.max(ops.where(counts > 0, gaps, 0.0))


def expected_calibration_error(
    y_true, y_pred, num_bins=15, binning="equal_width", from_logits=False
):
    """Expected calibration error of top-1 confidence.

    Args:
        y_true: Integer labels, or one-hot rows of `y_pred`'s shape.
        y_pred: Probabilities `(..., num_classes)` (a single unit: the
            positive class of a binary problem), or logits with
            `from_logits=True`.
        num_bins: Positive integer, the number of confidence bins.
        binning: `"equal_width"` (bins of width `1 / num_bins`) or
            `"equal_mass"` (the same number of examples in every bin).
        from_logits: Whether `y_pred` holds logits.

    Returns:
        A scalar float32 tensor in `[0, 1]`.

    Example:

    ```python
    probs = ks.predict_mc(model, x_test, from_logits=True)
    ece = float(ks.metrics.expected_calibration_error(y_test, probs))
    ```
    """
    statistics = bin_statistics(
        y_true, y_pred, _num_bins(num_bins), binning, from_logits
    )
    return ece_from_statistics(*statistics)


def maximum_calibration_error(
    y_true, y_pred, num_bins=15, binning="equal_width", from_logits=False
):
    """Maximum calibration error: the worst bin's `|accuracy - confidence|`.

    Arguments as `expected_calibration_error`; empty bins are ignored.
    """
    statistics = bin_statistics(
        y_true, y_pred, _num_bins(num_bins), binning, from_logits
    )
    return mce_from_statistics(*statistics)


def reliability_diagram(
    y_true, y_pred, num_bins=15, binning="equal_width", from_logits=False
):
    """The data of a reliability diagram, as NumPy arrays.

    Arguments as `expected_calibration_error`.

    Returns:
        A dict: `"bin_edges"` (`num_bins + 1` edges; for equal-mass bins the
        smallest confidence in each bin, with 0 and 1 at the ends),
        `"counts"`, `"confidence"` and `"accuracy"` (per-bin means, NaN
        where a bin is empty), `"ece"` and `"mce"` (floats).
    """
    num_bins = _num_bins(num_bins)
    assigned = _assigned_bins(y_true, y_pred, num_bins, binning, from_logits, None)
    statistics = _sums(*assigned, num_bins)
    counts, confidence_sums, correct_sums = (
        ops.convert_to_numpy(s).astype("float64") for s in statistics
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.where(counts > 0, confidence_sums / counts, np.nan)
        accuracy = np.where(counts > 0, correct_sums / counts, np.nan)
    if binning == "equal_width":
        edges = np.linspace(0.0, 1.0, num_bins + 1)
    else:
        # Sorted confidences: each bin's first member is its smallest.
        sorted_confidence, index = (
            ops.convert_to_numpy(assigned[0]),
            ops.convert_to_numpy(assigned[3]),
        )
        starts = np.searchsorted(index, np.arange(1, num_bins), side="left")
        # An empty bin (fewer examples than bins) gets the largest confidence.
        starts = np.minimum(starts, len(index) - 1)
        edges = np.concatenate([[0.0], sorted_confidence[starts], [1.0]])
    return {
        "bin_edges": edges,
        "counts": counts,
        "confidence": confidence,
        "accuracy": accuracy,
        "ece": float(ops.convert_to_numpy(ece_from_statistics(*statistics))),
        "mce": float(ops.convert_to_numpy(mce_from_statistics(*statistics))),
    }


class _BinnedCalibrationMetric(keras.metrics.Metric):
    """Accumulates per-bin sums over batches; subclasses pick the statistic."""

    _from_statistics = None

    def __init__(self, num_bins=15, from_logits=False, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_bins = _num_bins(num_bins)
        self.from_logits = _validation.boolean("from_logits", from_logits)
        self._direction = "down"
        self.counts, self.confidence_sums, self.correct_sums = (
            self.add_variable(
                shape=(self.num_bins,),
                initializer="zeros",
                dtype="float32",
                name=variable_name,
            )
            for variable_name in ("counts", "confidence_sums", "correct_sums")
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        statistics = bin_statistics(
            y_true,
            y_pred,
            self.num_bins,
            "equal_width",
            self.from_logits,
            sample_weight,
        )
        for variable, value in zip(
            (self.counts, self.confidence_sums, self.correct_sums), statistics
        ):
            variable.assign_add(value)

    def result(self):
        value = type(self)._from_statistics(
            self.counts, self.confidence_sums, self.correct_sums
        )
        return ops.cast(value, self.dtype)

    def get_config(self):
        return {
            "name": self.name,
            "dtype": self.dtype,
            "num_bins": self.num_bins,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="keras_stochastic")
class ExpectedCalibrationError(_BinnedCalibrationMetric):
    """Streaming expected calibration error of top-1 confidence (equal-width bins).

    Accumulates per-bin counts, confidence sums and correct counts over
    batches, so the result over a dataset equals
    `ks.metrics.expected_calibration_error` on all of it at once.

    Args:
        num_bins: Positive integer, the number of equal-width bins.
        from_logits: Whether the model outputs logits (softmax, or a sigmoid
            for a single unit, is applied first).
        name: Name of the metric instance.
        dtype: Dtype of the result.

    Example:

    ```python
    model.compile(
        "adam",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy", ks.metrics.ExpectedCalibrationError(from_logits=True)],
    )
    ```
    """

    _from_statistics = staticmethod(ece_from_statistics)

    def __init__(
        self,
        num_bins=15,
        from_logits=False,
        name="expected_calibration_error",
        dtype=None,
    ):
        super().__init__(num_bins, from_logits, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_stochastic")
class MaximumCalibrationError(_BinnedCalibrationMetric):
    """Streaming maximum calibration error (equal-width bins).

    Arguments as `ExpectedCalibrationError`.
    """

    _from_statistics = staticmethod(mce_from_statistics)

    def __init__(
        self,
        num_bins=15,
        from_logits=False,
        name="maximum_calibration_error",
        dtype=None,
    ):
        super().__init__(num_bins, from_logits, name=name, dtype=dtype)
