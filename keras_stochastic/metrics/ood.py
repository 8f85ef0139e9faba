"""Out-of-distribution detection scores.

Each function takes a score per example for in-distribution inputs
(`scores_in`) and for out-of-distribution inputs (`scores_out`), where a
higher score means "more likely out of distribution" (predictive entropy,
mutual information, `1 - max probability`); out-of-distribution is the
positive class. Ties count half, as in scikit-learn.
"""

from keras import ops


def _sorted_scores(scores_in, scores_out):
    scores_in = ops.sort(ops.reshape(ops.cast(scores_in, "float32"), (-1,)))
    scores_out = ops.sort(ops.reshape(ops.cast(scores_out, "float32"), (-1,)))
    return scores_in, scores_out


def _count(sorted_scores):
    return ops.cast(ops.shape(sorted_scores)[0], "float32")


def ood_auroc(scores_in, scores_out):
    """Area under the ROC curve of telling `scores_out` from `scores_in`.

    The probability that a random out-of-distribution score exceeds a random
    in-distribution one (ties count half): 0.5 is chance, 1 is perfect.

    Returns:
        A scalar float32 tensor.
    """
    scores_in, scores_out = _sorted_scores(scores_in, scores_out)
    below = ops.cast(ops.searchsorted(scores_in, scores_out, side="left"), "float32")
    not_above = ops.cast(
        ops.searchsorted(scores_in, scores_out, side="right"), "float32"
    )
    return ops.mean((below + not_above) / 2.0) / _count(scores_in)


def ood_aupr(scores_in, scores_out):
    """Area under the precision-recall curve, out-of-distribution as positive.

    Average precision (scikit-learn's `average_precision_score`): the mean,
    over out-of-distribution examples, of the precision at a threshold equal
    to their score. Chance level is the fraction of out-of-distribution
    examples.

    Returns:
        A scalar float32 tensor.
    """
    scores_in, scores_out = _sorted_scores(scores_in, scores_out)
    out_at_least = _count(scores_out) - ops.cast(
        ops.searchsorted(scores_out, scores_out, side="left"), "float32"
    )
    in_at_least = _count(scores_in) - ops.cast(
        ops.searchsorted(scores_in, scores_out, side="left"), "float32"
    )
    return ops.mean(out_at_least / (out_at_least + in_at_least))


def fpr_at_95_tpr(scores_in, scores_out):
    """False positive rate at the highest threshold that flags 95% of `scores_out`.

    The fraction of in-distribution examples flagged as out of distribution
    when the threshold keeps a true positive rate of at least 95%; lower is
    better.

    Returns:
        A scalar float32 tensor.
    """
    scores_in, scores_out = _sorted_scores(scores_in, scores_out)
    num_out = int(scores_out.shape[0])
    # The k-th largest out score, k = ceil(0.95 * num_out) (in integers).
    k = -(-95 * num_out // 100)
    threshold = ops.take(scores_out, num_out - k)
    flagged = _count(scores_in) - ops.cast(
        ops.searchsorted(scores_in, threshold[None], side="left"), "float32"
    )
    return flagged[0] / _count(scores_in)
