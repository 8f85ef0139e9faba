"""Gradients and Hessian-vector products of a model's loss for the diagnostics.

Keras has no backend-neutral gradient API, so this module holds the
TensorFlow and JAX branches; layers never use it. The gradient function
advances the model's random state (seed generators) on every call, as training
would; the Hessian-vector product evaluates the model in inference mode and
leaves the random state as it is.
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


def hessian_vector_product_fn(model, loss_fn, perturbation, shape):
    """Returns `f(x, y, z) -> np.ndarray`: `H z`, H the Hessian of a loss in an offset.

    `perturbation(offset)` is a context manager under which calling `model`
    adds `offset` (a tensor of `shape`) to some weight tensor; `H` is the
    Hessian of `loss_fn(y, model(x, training=False))` with respect to that
    offset, at offset zero. Computed without materializing `H`: double
    backpropagation on TensorFlow, forward-over-reverse (`jvp` of `grad`) on
    JAX, each about the cost of two gradient evaluations.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        return _tensorflow_hvp_fn(model, loss_fn, perturbation, shape)
    if backend == "jax":
        return _jax_hvp_fn(model, loss_fn, perturbation, shape)
    raise NotImplementedError(
        "keras_stochastic.diagnostics supports the TensorFlow and JAX backends. "
        f"Received: backend={backend!r}"
    )


def _tensorflow_hvp_fn(model, loss_fn, perturbation, shape):
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def hvp(x, y, z):
        offset = tf.zeros(shape, "float32")
        with tf.GradientTape() as outer:
            outer.watch(offset)
            with tf.GradientTape() as inner:
                inner.watch(offset)
                with perturbation(offset):
                    loss = loss_fn(y, model(x, training=False))
            projection = tf.reduce_sum(inner.gradient(loss, offset) * z)
        return outer.gradient(projection, offset)

    def call(x, y, z):
        return np.asarray(hvp(x, y, z))

    return call


def _jax_hvp_fn(model, loss_fn, perturbation, shape):
    import jax
    import jax.numpy as jnp

    trainable = model.trainable_variables
    non_trainable = model.non_trainable_variables

    def loss(offset, trainable_values, non_trainable_values, x, y):
        with perturbation(offset):
            outputs, _ = model.stateless_call(
                trainable_values, non_trainable_values, x, training=False
            )
        return loss_fn(y, outputs)

    @jax.jit
    def hvp(trainable_values, non_trainable_values, x, y, z):
        def gradient(offset):
            return jax.grad(loss)(offset, trainable_values, non_trainable_values, x, y)

        return jax.jvp(gradient, (jnp.zeros(shape, "float32"),), (z,))[1]

    def call(x, y, z):
        return np.asarray(
            hvp(
                [v.value for v in trainable],
                [v.value for v in non_trainable],
                x,
                y,
                z,
            )
        )

    return call
