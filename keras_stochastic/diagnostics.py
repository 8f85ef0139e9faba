"""Diagnostics of stochastic training."""

import contextlib

import keras
import numpy as np
from keras import ops

from keras_stochastic import _autodiff
from keras_stochastic import _validation
from keras_stochastic import inference


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
    batch_size = _validation.positive_integer("batch_size", batch_size)
    num_draws = _validation.positive_integer("num_draws", num_draws)
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


def _summed_loss(loss):
    """`f(y, y_pred)`: the loss summed over examples (minus the log-likelihood)."""
    if not isinstance(loss, keras.losses.Loss):
        loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        config = loss.get_config()
        config["reduction"] = "sum"
        return type(loss).from_config(config)
    return lambda y, y_pred: ops.sum(loss(y, y_pred))


@contextlib.contextmanager
def _kernel_offset(layer, offset):
    """Adds `offset` to every kernel that `layer`'s linear operator receives.

    In `"mean"` inference the operator receives the mean-mode kernel only, so
    this evaluates the layer at `W = M + offset`. Patches the instance (not the
    class), and only while tracing the Hessian-vector product.
    """
    linear = layer._linear

    def shifted(inputs, kernel):
        return linear(inputs, kernel + ops.cast(offset, kernel.dtype))

    layer._linear = shifted
    try:
        yield
    finally:
        del layer._linear


def _stochastic_layer(model, layer):
    if isinstance(layer, str):
        layer = model.get_layer(layer)
    layers = inference.stochastic_layers(model)
    if not any(layer is candidate for candidate in layers):
        raise ValueError(
            "Argument `layer` must be a keras_stochastic Dense or Conv layer of "
            f"`model` (or its name). Received: layer={layer!r}"
        )
    if not hasattr(layer, "posterior") or not hasattr(layer, "_linear"):
        raise ValueError(
            "Argument `layer` must be a keras_stochastic layer with one kernel "
            "posterior and a linear operator (Dense or Conv families). "
            f"Received: layer={layer.name!r} ({type(layer).__name__})"
        )
    return layer


def curvature_criterion(
    model, layer, x, y, loss=None, num_probes=100, batch_size=256, seed=None
):
    """Per-weight curvature of the log-likelihood, scaled by the posterior variance.

    ```
    kappa_ij = sigma_ij^2 * d^2/dW_ij^2 log p(y | x, W)   at W = M
    ```

    with `M` the posterior mean of `layer`'s kernel and `sigma_ij^2` its
    posterior variance (Neklyudov et al., 2019). To second order,
    `E_q log p(y | x, W) ~= log p(y | x, M) + 1/2 sum_ij kappa_ij`, so
    `kappa_ij / 2` is what the noise of weight `ij` costs (or gains) in
    expected log-likelihood: a weight with `kappa_ij ~= 0` can be replaced by
    its mean, and zeroed if its mean is small too. Near a maximum of the
    likelihood `kappa <= 0`. For a variance layer followed by ReLU, `kappa`
    is exactly zero: at the zero mean every pre-activation is 0, where ReLU's
    derivative is 0. Use a smooth activation (softplus) there.

    `log p(y | x, W)` is minus the loss summed over the examples of `(x, y)`
    (exact for cross-entropy losses; for a squared error it is the Gaussian
    log-likelihood with unit noise variance, up to a constant). The model runs
    with `training=False` and every stochastic layer in `"mean"` inference
    (restored afterwards), a deterministic pass; other layers behave as in
    inference (BatchNormalization uses its moving statistics). For a variance
    layer `M = 0`; for layers whose mean mode masks weights (variational
    dropout), the Hessian is taken at that masked mean.

    The diagonal of the Hessian is never materialized: Hutchinson's estimator
    `diag(H) ~= mean_k z_k * (H z_k)` over `num_probes` Rademacher vectors
    `z_k`, each Hessian-vector product costing about two gradient
    evaluations over `(x, y)`. It is unbiased; entry `ij` has variance
    `sum_{kl != ij} H_{ij,kl}^2 / num_probes`.

    Args:
        model: A built Keras model containing `layer`.
        layer: A keras_stochastic Dense or Conv layer of `model`, or its name.
        x: NumPy array of inputs.
        y: NumPy array of targets.
        loss: The negative log-likelihood per example, as a Keras loss (name,
            function or `keras.losses.Loss`, whose reduction is replaced by a
            sum). Defaults to the loss the model was compiled with.
        num_probes: Positive integer (default 100), the number of Rademacher
            probe vectors.
        batch_size: Positive integer (default 256): the Hessian-vector
            products are summed over batches of this size.
        seed: Integer or None, seeds the probe vectors.

    Returns:
        A float32 NumPy array shaped like the layer's kernel.

    Example:

    ```python
    kappa = ks.diagnostics.curvature_criterion(model, "dense_variance", x, y)
    replaceable = np.abs(kappa) < 1e-3
    ```

    References:
        - [Neklyudov et al., 2019](https://arxiv.org/abs/1803.03764), Variance
          Networks: When Expectation Does Not Meet Your Expectations.
        - [Hutchinson, 1990](https://doi.org/10.1080/03610919008812866), A
          stochastic estimator of the trace of the influence matrix for
          Laplacian smoothing splines.
    """
    layer = _stochastic_layer(model, layer)
    num_probes = _validation.positive_integer("num_probes", num_probes)
    batch_size = _validation.positive_integer("batch_size", batch_size)
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "Pass `loss`, or compile the model with one, to measure curvature."
            )
    x = np.asarray(x)
    y = np.asarray(y)
    variance = ops.convert_to_numpy(layer.posterior("float32").variance)
    shape = variance.shape
    hvp = _autodiff.hessian_vector_product_fn(
        model,
        _summed_loss(loss),
        lambda offset: _kernel_offset(layer, offset),
        shape,
    )
    rng = np.random.default_rng(seed)
    diagonal = np.zeros(shape, "float64")
    with inference._switched_modes(inference.stochastic_layers(model), "mean"):
        for _ in range(num_probes):
            probe = (2 * rng.integers(0, 2, size=shape) - 1).astype("float32")
            product = sum(
                hvp(x[start : start + batch_size], y[start : start + batch_size], probe)
                for start in range(0, len(x), batch_size)
            )
            diagonal += probe * product
    # log p = -loss, so its Hessian is minus the loss's.
    return (-variance * diagonal / num_probes).astype("float32")
