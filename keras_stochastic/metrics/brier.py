"""The Brier score and its reliability / resolution / uncertainty decomposition.

Multiclass Brier score (Brier, 1950): the mean over examples of
`sum_k (p_k - y_k)^2`, with `y` the one-hot label; 0 is perfect, 2 the
worst. A single-unit (sigmoid) prediction is scored as the binary Brier
score `(p - y)^2`, as scikit-learn's `brier_score_loss` computes it (the
two-column form of the same prediction would count the error twice).
"""

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic.metrics import _classification


def _per_example_brier(y_true, y_pred, from_logits=False):
    targets = _classification.one_hot_labels(y_true, y_pred)
    squared = ops.sum(
        ops.square(_classification.probabilities(y_pred, from_logits) - targets),
        axis=-1,
    )
    return squared / 2.0 if _classification.is_binary(y_pred) else squared


def brier_score(y_true, y_pred, from_logits=False):
    """Brier score: the mean over examples of `sum_k (p_k - y_k)^2`.

    Args:
        y_true: Integer labels, or one-hot rows of `y_pred`'s shape.
        y_pred: Probabilities `(..., num_classes)`, a single unit being the
            positive class of a binary problem (scored as `(p - y)^2`), or
            logits with `from_logits=True`.
        from_logits: Whether `y_pred` holds logits.

    Returns:
        A scalar float32 tensor.
    """
    return ops.mean(_per_example_brier(y_true, y_pred, from_logits))


def brier_decomposition(y_true, y_pred, from_logits=False):
    """Murphy's decomposition `brier ~ uncertainty - resolution + reliability`.

    Forecasts are grouped by their predicted class (the argmax); with `n_g`
    examples in group `g`, `f_g` their mean forecast, `o_g` their label
    frequencies and `o` the overall label frequencies:

    - `uncertainty = sum_k o_k (1 - o_k)`: the score of always forecasting
      the base rates, a property of the labels alone;
    - `resolution = sum_g n_g / n * ||o_g - o||^2`: how far the groups'
      outcomes move away from the base rates (higher is better);
    - `reliability = sum_g n_g / n * ||f_g - o_g||^2`: how far each group's
      mean forecast is from its outcomes (lower is better; 0 is calibrated).

    The identity is exact when forecasts are constant within each group;
    otherwise `brier` also contains the forecasts' spread within groups,
    returned as `brier - (uncertainty - resolution + reliability)` under
    `"residual"`. A single-unit prediction is widened to two classes (its
    binary Brier score is half the values here).

    Args:
        y_true: Integer labels, or one-hot rows of `y_pred`'s shape.
        y_pred: Probabilities (or logits with `from_logits=True`).
        from_logits: Whether `y_pred` holds logits.

    Returns:
        A dict of scalar float32 tensors: `"brier"` (two-column form),
        `"uncertainty"`, `"resolution"`, `"reliability"`, `"residual"`.
    """
    probs = _classification.probabilities(y_pred, from_logits)
    targets = _classification.one_hot_labels(y_true, y_pred)
    num_classes = probs.shape[-1]
    groups = ops.one_hot(ops.argmax(probs, axis=-1), num_classes, dtype="float32")
    n = ops.cast(ops.shape(probs)[0], "float32")
    sizes = ops.sum(groups, axis=0)
    share = sizes / n
    safe = ops.maximum(sizes, 1.0)[:, None]
    mean_forecast = ops.matmul(ops.transpose(groups), probs) / safe
    group_outcomes = ops.matmul(ops.transpose(groups), targets) / safe
    base_rates = ops.mean(targets, axis=0)
    uncertainty = ops.sum(base_rates * (1.0 - base_rates))
    resolution = ops.sum(
        share * ops.sum(ops.square(group_outcomes - base_rates), axis=-1)
    )
    reliability = ops.sum(
        share * ops.sum(ops.square(mean_forecast - group_outcomes), axis=-1)
    )
    brier = ops.mean(ops.sum(ops.square(probs - targets), axis=-1))
    return {
        "brier": brier,
        "uncertainty": uncertainty,
        "resolution": resolution,
        "reliability": reliability,
        "residual": brier - (uncertainty - resolution + reliability),
    }


@keras.saving.register_keras_serializable(package="keras_stochastic")
class BrierScore(keras.metrics.MeanMetricWrapper):
    """Streaming Brier score (mean over examples of `sum_k (p_k - y_k)^2`).

    Args:
        from_logits: Whether the model outputs logits.
        name: Name of the metric instance.
        dtype: Dtype of the result.

    Example:

    ```python
    model.compile("adam", "sparse_categorical_crossentropy",
                  metrics=[ks.metrics.BrierScore()])
    ```
    """

    def __init__(self, from_logits=False, name="brier_score", dtype=None):
        from_logits = _validation.boolean("from_logits", from_logits)
        super().__init__(
            _per_example_brier, name=name, dtype=dtype, from_logits=from_logits
        )
        self.from_logits = from_logits
        self._direction = "down"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "from_logits": self.from_logits}
