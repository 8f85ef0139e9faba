"""Run by tests/distribute_test.py: MultiWorkerMirroredStrategy, one of two local workers (TF_CONFIG)."""

import json

import keras
import numpy as np
import tensorflow as tf

import keras_stochastic as ks

# Keras 3's `fit` fails under MultiWorkerMirroredStrategy whatever the model
# (keras-team/keras#20585), so this is a custom training loop.
strategy = tf.distribute.MultiWorkerMirroredStrategy()
assert strategy.num_replicas_in_sync == 2
data = np.random.default_rng(2).normal(size=(256, 6)).astype("float32")
labels = (data[:, 0] > 0).astype("int32")
with strategy.scope():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            ks.layers.DenseFlipout(16, activation="relu", kl_weight=1 / 256, seed=1),
            keras.layers.Dense(2),
        ]
    )
    optimizer = ks.optimizers.GradientNoise(keras.optimizers.Adam(0.02), seed=2)
    optimizer.build(model.trainable_variables)
    kernel = model.layers[0].kernel_mean
    optimizer.enable_pruning([kernel])
    ((_, mask, _),) = optimizer.pruning_slots()
    mask.assign((np.arange(6 * 16).reshape(6, 16) % 4 == 0).astype("float32"))
loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
dataset = strategy.experimental_distribute_dataset(
    tf.data.Dataset.from_tensor_slices((data, labels)).repeat().batch(64)
)


@tf.function
def step(iterator):
    def replica_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True)) / 64 + sum(model.losses) / 2
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return strategy.reduce("SUM", strategy.run(replica_step, args=next(iterator)), None)


@tf.function
def draw():
    return strategy.run(lambda: model.layers[0](tf.constant(data[:4]), training=True))


noise = strategy.experimental_local_results(draw())[0].numpy()
iterator = iter(dataset)
losses = [float(step(iterator)) for _ in range(60)]
print(
    "RESULT "
    + json.dumps(
        {
            "noise": noise.ravel().tolist(),
            "weights": [w.ravel().tolist() for w in model.get_weights()],
            "kept": float(np.mean(kernel.numpy() != 0)),
            "losses": [np.mean(losses[:5]), np.mean(losses[-5:])],
        }
    )
)
