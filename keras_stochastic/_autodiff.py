"""Gradients of a model's loss for the diagnostics, on TensorFlow and JAX.

Keras has no backend-neutral gradient API, so this module holds the two
backend branches; layers never use it. The returned function advances the
model's random state (seed generators) on every call, as training would.
"""

import keras
import numpy as np


def loss_gradient_fn(model, loss_fn, variables):
    """Returns `f(x, y) -> [np.ndarray]`, gradients of `loss_fn(y, model(x, training=True))`.

    Only the data loss is differentiated: layer losses (KL terms) are left
    out. Loss functions that return per-example values (e.g. `"mse"`) are
    averaged over the batch, as `fit` does.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_gradient_fn(model, loss_fn, variables)
    if backend == "jax":
        return _jax_gradient_fn(model, loss_fn, variables)
    raise NotImplementedError(
        "keras_stochastic.diagnostics supports the TensorFlow and JAX backends. "
        f"Received: backend={backend!r}"
    )


def _tensorflow_gradient_fn(model, loss_fn, variables):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def gradients(x, y):
        with tf.GradientTape() as tape:
            loss = keras.ops.mean(loss_fn(y, model(x, training=True)))
        return tape.gradient(loss, [v.value for v in variables])

    def call(x, y):
        return [np.asarray(g) for g in gradients(x, y)]

    return call


def _jax_gradient_fn(model, loss_fn, variables):
    import jax

    trainable = model.trainable_variables
    non_trainable = model.non_trainable_variables
    positions = [
        next(i for i, v in enumerate(trainable) if v is variable)
        for variable in variables
    ]

    def loss_and_state(trainable_values, non_trainable_values, x, y):
        outputs, new_state = model.stateless_call(
            trainable_values, non_trainable_values, x, training=True
        )
        return keras.ops.mean(loss_fn(y, outputs)), new_state

    grad_fn = jax.jit(jax.grad(loss_and_state, has_aux=True))

    def call(x, y):
        grads, new_state = grad_fn(
            [v.value for v in trainable], [v.value for v in non_trainable], x, y
        )
        for variable, value in zip(non_trainable, new_state):
            variable.assign(value)
        return [np.asarray(grads[i]) for i in positions]

    return call
