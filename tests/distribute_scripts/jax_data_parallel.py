"""Run by tests/distribute_test.py: keras.distribution.DataParallel on two JAX host devices."""

import os

os.environ["KERAS_BACKEND"] = "jax"
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
import jax
import keras
import numpy as np

import keras_stochastic as ks

devices = jax.devices()
assert len(devices) == 2, devices
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
rng = np.random.default_rng(0)
x = rng.normal(size=(256, 8)).astype("float32")
y = (x[:, 0] > 0).astype("int32")
same = np.repeat(x[:1], 4, axis=0)
for cls in (
    ks.layers.DenseFlipout,
    ks.layers.DenseLocalReparameterization,
    ks.layers.DenseVariationalDropout,
):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            cls(16, activation="relu", kl_weight=1 / 256, seed=1),
            cls(2, kl_weight=1 / 256, seed=2),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.02),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=64, epochs=6, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0], (
        cls.__name__,
        history.history,
    )
    # Identical examples, two on each device, each with its own noise.
    outputs = model.layers[0](
        jax.device_put(
            same,
            keras.distribution.distribution()
            .get_data_layout(same.shape)
            .backend_layout,
        ),
        training=True,
    )
    assert len(outputs.sharding.device_set) == 2, outputs.sharding
    rows = np.asarray(outputs)
    assert not np.allclose(rows[0], rows[2]) and not np.allclose(rows[1], rows[3]), (
        cls.__name__
    )
    print(
        cls.__name__,
        history.history["loss"][0],
        history.history["loss"][-1],
        history.history["accuracy"][-1],
    )
print("OK")
