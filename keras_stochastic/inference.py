"""Model-level helpers: posterior predictive, KL, kl_weight and inference mode."""

import contextlib
import warnings

import keras
import numpy as np

from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic.layers.base_stochastic import StochasticLayer


def stochastic_layers(model):
    """Every keras_stochastic layer in `model`, nested models and cells included."""
    layers = [
        layer
        for layer in _compat.flatten_layers(model)
        if isinstance(layer, StochasticLayer)
    ]
    if not layers:
        raise ValueError(
            f"The model {model.name!r} contains no keras_stochastic layer. "
            f"Received: model={model}"
        )
    return layers


def set_kl_weight(model, kl_weight):
    """Sets `kl_weight` on every stochastic layer of `model`.

    The weights live in variables, so the change reaches train steps that are
    already compiled (no need to recompile).

    Args:
        model: A Keras model (or layer) containing keras_stochastic layers.
        kl_weight: Non-negative float; `1 / num_train_examples` makes the
            training loss the negative ELBO per example.
    """
    kl_weight = _validation.kl_weight(kl_weight)
    for layer in stochastic_layers(model):
        layer.kl_weight = kl_weight


def set_inference(model, mode):
    """Sets the inference mode (`"mean"` or `"sample"`) of every stochastic layer.

    The mode lives in a variable read inside the layers' `call`, so it takes
    effect even in a `predict` function that is already compiled.
    """
    mode = _validation.inference(mode)
    for layer in stochastic_layers(model):
        layer.inference = mode


@contextlib.contextmanager
def _switched_modes(layers, inference_mode=None, drop_mean_term=None):
    """Sets the layers' inference mode and `_drop_mean_term` (those given); restores both.

    For measurements that need a mode on purpose, so the warning that variance
    layers give in `"mean"` mode (their output ignores the input) is silenced,
    also when a layer is put back in that mode.
    """
    previous = [(layer.inference, layer._drop_mean_term) for layer in layers]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for layer in layers:
                if inference_mode is not None:
                    layer.inference = inference_mode
                if drop_mean_term is not None:
                    layer._drop_mean_term = drop_mean_term
        yield
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for layer, (mode, flag) in zip(layers, previous):
                layer.inference = mode
                layer._drop_mean_term = flag


def kl_divergence(model):
    """Total KL(q || p) of `model`'s stochastic layers, without their kl_weights.

    Returns:
        A float32 scalar tensor. Layers with Monte Carlo KLs draw a fresh
        weight sample for it.
    """
    total = None
    for layer in stochastic_layers(model):
        if not layer.built:
            raise ValueError(
                f"Layer {layer.name!r} is not built yet; call the model on data "
                "(or build it) before asking for its KL divergence."
            )
        value = layer.kl_divergence()
        total = value if total is None else total + value
    return total


def _probabilities(outputs):
    outputs = np.asarray(outputs, dtype="float64")
    if outputs.shape[-1] == 1:
        return np.exp(-np.logaddexp(0.0, -outputs))
    shifted = outputs - outputs.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def _is_array_structure(x):
    leaves = keras.tree.flatten(x)
    return bool(leaves) and all(
        hasattr(leaf, "shape") and hasattr(leaf, "__getitem__") and len(leaf.shape) > 0
        for leaf in leaves
    )


def _input_batches(x, batch_size):
    """The input batches of `x`, iterating it exactly once.

    Arrays (or structures of arrays) are sliced into `batch_size` rows (32 by
    default); a `tf.data.Dataset`, a `keras.utils.PyDataset` or any iterable
    of batches (a generator) yields its batches as they are. A batch given as
    a tuple is `(x, y[, sample_weight])`, as `model.predict` reads it; only
    its inputs are kept.
    """
    if _is_array_structure(x):
        size = keras.tree.flatten(x)[0].shape[0]
        batch_size = batch_size or 32
        for start in range(0, size, batch_size):
            yield keras.tree.map_structure(
                lambda a, start=start: a[start : start + batch_size], x
            )
        return
    if isinstance(x, keras.utils.PyDataset):
        batches = (x[index] for index in range(len(x)))
    elif hasattr(x, "as_numpy_iterator"):
        batches = x.as_numpy_iterator()
    else:
        batches = iter(x)
    for batch in batches:
        yield batch[0] if isinstance(batch, tuple) else batch


def _sampled_outputs(model, x, num_samples, batch_size):
    """Yields lists of `num_samples` sampled outputs, batch after batch.

    The data is iterated once and each batch goes through the compiled
    `predict_on_batch` function `num_samples` times in a row, so the samples
    of a row always belong to the same example (a dataset reshuffled on each
    pass, or a generator, which can be iterated only once, would break a
    pass per sample), and the fixed cost of a `predict` call per sample is
    avoided.
    """
    for batch in _input_batches(x, batch_size):
        yield [model.predict_on_batch(batch) for _ in range(num_samples)]


def predict_mc(
    model,
    x,
    num_samples=20,
    batch_size=None,
    from_logits=False,
    return_std=False,
    return_samples=False,
):
    """Monte Carlo posterior predictive: the mean of `num_samples` sampled predictions.

    Every stochastic layer samples (whatever its `inference` mode, restored
    afterwards); other layers stay in inference mode (BatchNormalization uses
    its moving statistics, Dropout is off). The data is iterated once: each
    batch goes through the model's compiled predict step `num_samples` times
    in a row, so the cost is `num_samples` sampling passes, and the rows of
    every sample line up with the data, also for a dataset that reshuffles
    on each iteration and for a generator.

    Args:
        model: A Keras model with keras_stochastic layers.
        x: Input data: arrays (or a structure of arrays, as the model takes),
            a `tf.data.Dataset`, a `keras.utils.PyDataset`, or a generator or
            other iterable of batches. A batch that is a tuple is read as
            `(x, y[, sample_weight])`, as `model.predict` reads it.
        num_samples: Positive integer, the number of posterior samples.
        batch_size: Batch size for arrays (default 32); datasets and
            generators keep their own batches.
        from_logits: If `True`, each sample's outputs are turned into
            probabilities before averaging (softmax over the last axis, or a
            sigmoid when it has one unit), as the posterior predictive needs.
        return_std: If `True`, also returns the standard deviation across
            samples (of probabilities when `from_logits`).
        return_samples: If `True`, also returns every sample (probabilities
            when `from_logits`), stacked on a new leading axis of size
            `num_samples`: `(num_samples, num_examples, ...)`.

    Returns:
        The mean prediction (NumPy, float64, the structure of the model's
        outputs); with `return_std` and/or `return_samples`, a tuple
        `(mean, std)`, `(mean, samples)` or `(mean, std, samples)`.

    Example:

    ```python
    probs, std = ks.predict_mc(model, x_test, num_samples=20, from_logits=True,
                               return_std=True)
    ```
    """
    _validation.positive_integer("num_samples", num_samples)
    transform = _probabilities if from_logits else lambda o: np.asarray(o, "float64")
    means, stds, all_samples = [], [], []
    with _switched_modes(stochastic_layers(model), "sample"):
        for samples in _sampled_outputs(model, x, num_samples, batch_size):
            samples = [keras.tree.map_structure(transform, s) for s in samples]
            stacked = keras.tree.map_structure(lambda *s: np.stack(s), *samples)
            means.append(keras.tree.map_structure(lambda s: s.mean(0), stacked))
            if return_std:
                stds.append(keras.tree.map_structure(lambda s: s.std(0), stacked))
            if return_samples:
                all_samples.append(stacked)
    if not means:
        raise ValueError(f"Argument `x` holds no data. Received: x={x!r}")

    def concatenate(parts, axis=0):
        return keras.tree.map_structure(lambda *p: np.concatenate(p, axis=axis), *parts)

    results = [concatenate(means)]
    if return_std:
        results.append(concatenate(stds))
    if return_samples:
        results.append(concatenate(all_samples, axis=1))
    return results[0] if len(results) == 1 else tuple(results)
