"""KL divergences between weight posteriors and priors.

Every function returns the KL summed over all weights, as a float32 scalar,
whatever the dtype of its inputs (mixed-precision layers pass float32
parameters; the sums of millions of terms need float32 anyway).
"""

import math

from keras import ops


def _check_positive(name, value):
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(
            f"Argument `{name}` must be a positive float. "
            f"Received: {name}={value!r}"
        )
    if not value > 0 or not math.isfinite(value):
        raise ValueError(
            f"Argument `{name}` must be a positive, finite float. "
            f"Received: {name}={value}"
        )


def normal_kl(mean, stddev, prior_stddev=1.0):
    """KL(N(mean, stddev^2) || N(0, prior_stddev^2)), summed over elements.

    Per weight the divergence is

    `log(prior_stddev / stddev) + (stddev^2 + mean^2) / (2 prior_stddev^2) - 1/2`.

    It is computed as sums of `log(stddev)`, `stddev^2` and `mean^2` rather
    than element by element, which saves passes over weight-sized tensors.

    Args:
        mean: Tensor of posterior means.
        stddev: Tensor of posterior standard deviations (positive), same shape.
        prior_stddev: Positive float, standard deviation of the zero-mean
            normal prior.

    Returns:
        A float32 scalar tensor.

    Example:

    >>> float(normal_kl(np.zeros(3), np.ones(3)))
    0.0
    """
    _check_positive("prior_stddev", prior_stddev)
    mean = ops.cast(mean, "float32")
    stddev = ops.cast(stddev, "float32")
    size = math.prod(mean.shape)
    inverse_variance = 0.5 / prior_stddev**2
    return (
        size * (math.log(prior_stddev) - 0.5)
        - ops.sum(ops.log(stddev))
        + inverse_variance * (ops.sum(ops.square(stddev)) + ops.sum(ops.square(mean)))
    )
