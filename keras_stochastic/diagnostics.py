"""Diagnostics of stochastic training."""

import numbers

import keras
import numpy as np

from keras_stochastic import _autodiff


def _positive_int(name, value):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"Argument `{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def gradient_variance(
    model, x, y, batch_size, num_draws=100, loss=None, variables=None, seed=None
):
    """Variance of minibatch gradients, per weight, averaged over each variable.

    Each draw takes `batch_size` examples of `(x, y)` at random (without
    replacement within a draw), runs the model with `training=True` (so every
    stochastic layer samples its weight noise afresh) and differentiates the
    data loss (layer KL terms excluded: for analytic KLs their gradient is
    deterministic). The returned variance therefore includes both the data
    subsampling noise and the estimator's weight noise; an estimator whose
    examples are decorrelated (flipout, local reparameterization) gives a
    variance falling as `1 / batch_size`, a shared weight sample does not.

    Args:
        model: A built Keras model.
        x: NumPy array of inputs.
        y: NumPy array of targets.
        batch_size: Positive integer, the minibatch size.
        num_draws: Integer >= 2, the number of gradient draws.
        loss: A Keras loss (name, function or object). Defaults to the loss
            the model was compiled with.
        variables: Variables to measure. Defaults to
            `model.trainable_variables`.
        seed: Integer or None, seeds the choice of minibatches.

    Returns:
        A dict mapping each variable's `path` to the mean, over its entries,
        of the per-entry gradient variance (unbiased, across draws).
    """
    batch_size = _positive_int("batch_size", batch_size)
    num_draws = _positive_int("num_draws", num_draws)
    if num_draws < 2:
        raise ValueError(
            f"Argument `num_draws` must be at least 2. Received: num_draws={num_draws}"
        )
    x = np.asarray(x)
    y = np.asarray(y)
    if batch_size > len(x):
        raise ValueError(
            "Argument `batch_size` cannot exceed the number of examples "
            f"({len(x)}). Received: batch_size={batch_size}"
        )
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "Pass `loss`, or compile the model with one, to measure gradients."
            )
    loss_fn = keras.losses.get(loss)
    variables = list(model.trainable_variables if variables is None else variables)
    gradients = _autodiff.loss_gradient_fn(model, loss_fn, variables)
    rng = np.random.default_rng(seed)
    count = 0
    means = [np.zeros(v.shape, "float64") for v in variables]
    squares = [np.zeros(v.shape, "float64") for v in variables]
    for _ in range(num_draws):
        index = rng.choice(len(x), size=batch_size, replace=False)
        count += 1
        for grad, mean, square in zip(gradients(x[index], y[index]), means, squares):
            delta = grad - mean
            mean += delta / count
            square += delta * (grad - mean)
    return {
        variable.path: float(np.mean(square / (count - 1)))
        for variable, square in zip(variables, squares)
    }
