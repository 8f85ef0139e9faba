"""All the classification metrics of a predictive distribution in one call."""

import keras
from keras import ops

from keras_stochastic.metrics import _classification
from keras_stochastic.metrics import brier
from keras_stochastic.metrics import calibration_metrics
from keras_stochastic.metrics import uncertainty


def classification_summary(y_true, probs=None, samples=None, num_bins=15):
    """Accuracy, NLL, ECE, MCE, Brier score and mean entropies, as floats.

    Args:
        y_true: Integer labels, or one-hot rows of the predictions' shape.
        probs: Predicted probabilities `(num_examples, num_classes)`, such
            as `ks.predict_mc(..., from_logits=True)`'s mean. Optional when
            `samples` is given (their mean is used).
        samples: Optional sampled probabilities `(num_samples, num_examples,
            num_classes)` (`predict_mc(..., return_samples=True)`); adds the
            expected entropy and the mutual information.
        num_bins: Equal-width bins of the calibration errors.

    Returns:
        A dict of floats: `"accuracy"`, `"nll"` (the mean negative
        log-likelihood, Keras's categorical cross-entropy of the
        probabilities), `"ece"`, `"mce"`, `"brier"`, `"entropy"` (mean
        predictive entropy) and, with `samples`, `"expected_entropy"` and
        `"mutual_information"` (means over examples).
    """
    if probs is None:
        if samples is None:
            raise ValueError(
                "Pass `probs`, `samples` or both. Received: probs=None, samples=None"
            )
        probs = ops.mean(ops.convert_to_tensor(samples), axis=0)
    widened = _classification.probabilities(probs)
    targets = _classification.one_hot_labels(y_true, probs)
    correct = ops.equal(ops.argmax(widened, -1), ops.argmax(targets, -1))
    statistics = calibration_metrics.bin_statistics(y_true, probs, num_bins)
    values = {
        "accuracy": ops.mean(ops.cast(correct, "float32")),
        "nll": ops.mean(keras.losses.categorical_crossentropy(targets, widened)),
        "ece": calibration_metrics.ece_from_statistics(*statistics),
        "mce": calibration_metrics.mce_from_statistics(*statistics),
        "brier": brier.brier_score(y_true, probs),
        "entropy": ops.mean(uncertainty.predictive_entropy(probs)),
    }
    if samples is not None:
        values["expected_entropy"] = ops.mean(uncertainty.expected_entropy(samples))
        values["mutual_information"] = ops.mean(uncertainty.mutual_information(samples))
    return {key: float(ops.convert_to_numpy(value)) for key, value in values.items()}
