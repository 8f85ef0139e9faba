"""Calibration, uncertainty and out-of-distribution metrics (keras.ops: any backend).

Streaming `keras.metrics.Metric` classes for `compile(metrics=[...])` and
`evaluate`, and functions on arrays (the outputs of `ks.predict_mc`):

- calibration: `ExpectedCalibrationError` / `expected_calibration_error`,
  `MaximumCalibrationError` / `maximum_calibration_error`,
  `reliability_diagram` (its data);
- proper scores: `BrierScore` / `brier_score`, `brier_decomposition`. The
  negative log-likelihood is Keras's cross-entropy
  (`keras.metrics.SparseCategoricalCrossentropy`, or
  `keras.losses.sparse_categorical_crossentropy` on probabilities);
- uncertainty of MC samples: `predictive_entropy`, `expected_entropy`,
  `mutual_information`;
- out-of-distribution detection: `ood_auroc`, `ood_aupr`, `fpr_at_95_tpr`;
- `classification_summary`: all of the above for one predictive at once.
"""

from keras_stochastic.metrics.brier import BrierScore
from keras_stochastic.metrics.brier import brier_decomposition
from keras_stochastic.metrics.brier import brier_score
from keras_stochastic.metrics.calibration_metrics import ExpectedCalibrationError
from keras_stochastic.metrics.calibration_metrics import MaximumCalibrationError
from keras_stochastic.metrics.calibration_metrics import expected_calibration_error
from keras_stochastic.metrics.calibration_metrics import maximum_calibration_error
from keras_stochastic.metrics.calibration_metrics import reliability_diagram
from keras_stochastic.metrics.ood import fpr_at_95_tpr
from keras_stochastic.metrics.ood import ood_aupr
from keras_stochastic.metrics.ood import ood_auroc
from keras_stochastic.metrics.summary import classification_summary
from keras_stochastic.metrics.uncertainty import expected_entropy
from keras_stochastic.metrics.uncertainty import mutual_information
from keras_stochastic.metrics.uncertainty import predictive_entropy

__all__ = [
    "BrierScore",
    "ExpectedCalibrationError",
    "MaximumCalibrationError",
    "brier_decomposition",
    "brier_score",
    "classification_summary",
    "expected_calibration_error",
    "expected_entropy",
    "fpr_at_95_tpr",
    "maximum_calibration_error",
    "mutual_information",
    "ood_aupr",
    "ood_auroc",
    "predictive_entropy",
    "reliability_diagram",
]
