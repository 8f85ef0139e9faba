"""Multi-device training (TensorFlow MirroredStrategy on two logical CPUs)."""

import os
import subprocess
import sys
import textwrap

from tests import testing

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import keras
    import keras_stochastic as ks

    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    y = (x[:, :1] > 0).astype("int32")[:, 0]
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((8,)),
            ks.layers.DenseFlipout(16, activation="relu", kl_weight=1 / 256, seed=1),
            ks.layers.DenseFlipout(2, kl_weight=1 / 256, seed=2),
        ])
        model.compile(keras.optimizers.Adam(0.02),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
    history = model.fit(x, y, batch_size=64, epochs=8, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < loss[0], loss
    assert history.history["accuracy"][-1] > 0.9, history.history
    # The KL is counted once, not once per replica: with a zero data loss the
    # evaluated loss is the weighted KL of the model.
    with strategy.scope():
        model.compile(loss=lambda y_true, y_pred: 0.0 * keras.ops.mean(y_pred))
    kl = float(ks.kl_divergence(model))
    kl_loss = model.evaluate(x, y, batch_size=64, verbose=0, return_dict=True)["loss"]
    assert abs(kl_loss - kl / 256) < 1e-4 * kl / 256, (kl_loss, kl / 256)
    print("OK", loss[0], loss[-1], kl_loss, kl / 256)
    """
)


@testing.tensorflow_only
def test_mirrored_strategy_trains_a_flipout_model():
    env = dict(os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout
