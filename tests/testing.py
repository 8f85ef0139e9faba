"""Shared test helpers (the project's small TestCase toolkit)."""

import keras
import numpy as np
import pytest

BACKEND = keras.backend.backend()

tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="needs the TensorFlow backend"
)


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def save_and_reload(model, tmp_path, name="model.keras"):
    """`.keras` round trip with `safe_mode=True`."""
    path = str(tmp_path / name)
    model.save(path)
    return keras.saving.load_model(path, safe_mode=True)


def config_roundtrip(layer):
    """Rebuilds `layer` from its config (through JSON-able serialization)."""
    serialized = keras.saving.serialize_keras_object(layer)
    return keras.saving.deserialize_keras_object(serialized)


def sequential(layer, input_shape):
    return keras.Sequential([keras.Input(input_shape), layer])


def fit_steps(model, x, y, steps=1, batch_size=None, **compile_kwargs):
    """Compiles with SGD + MSE (unless told otherwise) and runs `steps` batches."""
    compile_kwargs.setdefault("optimizer", keras.optimizers.SGD(0.01))
    compile_kwargs.setdefault("loss", "mse")
    model.compile(**compile_kwargs)
    batch_size = batch_size or len(x)
    history = model.fit(
        x, y, batch_size=batch_size, epochs=1, steps_per_epoch=steps, verbose=0
    )
    return history.history["loss"][-1]


def sample_tolerance(std, n, sigmas=5.0):
    """Tolerance for a sample mean of `n` draws with standard deviation `std`."""
    return sigmas * std / np.sqrt(n)


def xla_compiled(fn):
    """`fn` compiled by XLA: `tf.function(jit_compile=True)` or `jax.jit`."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    pytest.skip(f"no XLA compilation on backend {BACKEND}")


def gradients(fn, *args, compiled=False):
    """Gradients of the scalar `fn(*args)` w.r.t. each NumPy argument.

    With `compiled=True` the value and gradients are computed inside one
    XLA-compiled function (`tf.function(jit_compile=True)`, `jax.jit`).
    """
    args = [np.asarray(a, "float32") for a in args]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        def value_and_gradients(*tensors):
            with tf.GradientTape() as tape:
                tape.watch(tensors)
                value = fn(*tensors)
            return tape.gradient(value, list(tensors))

        if compiled:
            value_and_gradients = xla_compiled(value_and_gradients)
        grads = value_and_gradients(*[tf.constant(a) for a in args])
        return [np.asarray(g) for g in grads]
    if BACKEND == "jax":
        import jax

        gradient = jax.grad(lambda *a: fn(*a), argnums=tuple(range(len(args))))
        grads = (xla_compiled(gradient) if compiled else gradient)(*args)
        return [np.asarray(g) for g in grads]
    pytest.skip(f"no gradient helper for backend {BACKEND}")
