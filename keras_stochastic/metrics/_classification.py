"""How the metrics read labels and predictions (one place for every metric).

Predictions are probabilities over the last axis, `(..., num_classes)`; a
single unit (or a rank-1 array) is the probability of the positive class of
a binary problem, and is widened to the two columns `[1 - p, p]`. With
`from_logits=True` predictions are logits: a softmax over the last axis, or
a sigmoid for a single unit, as `ks.predict_mc(from_logits=True)` does.

Labels are integer class indices (any shape with one entry per example) or,
when they have the predictions' shape with more than one class, one-hot (or
soft) rows.
"""

from keras import ops

# Smallest probability inside a logarithm (entropies, NLL): float32 safe.
LOG_EPSILON = 1e-12


def widen_binary(probs):
    """float32 probabilities with a single positive-class unit widened to `[1 - p, p]`."""
    probs = ops.cast(ops.convert_to_tensor(probs), "float32")
    if probs.shape[-1] == 1:
        probs = ops.concatenate([1.0 - probs, probs], axis=-1)
    return probs


def probabilities(y_pred, from_logits=False):
    """`(num_examples, num_classes)` float32 probabilities, binary widened to two columns."""
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    if len(y_pred.shape) == 1:
        y_pred = ops.expand_dims(y_pred, -1)
    if from_logits:
        if y_pred.shape[-1] == 1:
            y_pred = ops.sigmoid(y_pred)
        else:
            y_pred = ops.softmax(y_pred, axis=-1)
    y_pred = widen_binary(y_pred)
    return ops.reshape(y_pred, (-1, y_pred.shape[-1]))


def is_binary(y_pred):
    """Whether `y_pred` is a single positive-class column (or a rank-1 array)."""
    shape = ops.shape(y_pred)
    return len(shape) == 1 or shape[-1] == 1


def one_hot_labels(y_true, y_pred):
    """`(num_examples, num_classes)` float32 targets matching `probabilities(y_pred)`."""
    num_classes = max(2, 1 if is_binary(y_pred) else ops.shape(y_pred)[-1])
    y_true = ops.convert_to_tensor(y_true)
    if not is_binary(y_pred) and tuple(y_true.shape) == tuple(ops.shape(y_pred)):
        return ops.reshape(ops.cast(y_true, "float32"), (-1, num_classes))
    labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
    return ops.one_hot(labels, num_classes, dtype="float32")


def labels(y_true, y_pred):
    """`(num_examples,)` int32 class indices (the argmax of one-hot rows)."""
    return ops.argmax(one_hot_labels(y_true, y_pred), axis=-1)


def entropy(probs, axis=-1):
    """`-sum p log p` in nats, with `0 log 0 = 0`."""
    return -ops.sum(probs * ops.log(ops.maximum(probs, LOG_EPSILON)), axis=axis)
