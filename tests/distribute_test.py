"""Multi-device training: tf.distribute on two logical CPUs or two local workers, JAX on two host devices.

The scripts in `distribute_scripts/` run in their own processes (devices
must be configured before TensorFlow or JAX starts).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np

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


SCRIPTS = os.path.join(os.path.dirname(__file__), "distribute_scripts")


def _run(script, env=None, timeout=600):
    env = dict(
        os.environ, PYTHONPATH=os.getcwd(), TF_CPP_MIN_LOG_LEVEL="3", **(env or {})
    )
    return subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@testing.tensorflow_only
def test_mirrored_replicas_draw_independent_noise_and_pruning_stays_in_sync():
    # On two logical CPUs: replicas fed identical inputs draw different
    # flipout / LRT noise (replica 0 what one device draws); the global
    # gradient's variance halves with two replicas; GradientNoise gives the
    # global step the same noise variance with one and two replicas
    # (scale_by "gradient" and "parameter"); FlipOutPruning with `fit`
    # outside `strategy.scope()` keeps every mirrored variable in sync.
    result = _run("mirrored_noise.py")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout, result.stdout


@testing.tensorflow_only
def test_multi_worker_mirrored_strategy_with_two_local_workers():
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("localhost", 0))
            ports.append(s.getsockname()[1])
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    processes = []
    for index in range(2):
        config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = dict(
            os.environ,
            PYTHONPATH=os.getcwd(),
            TF_CPP_MIN_LOG_LEVEL="3",
            TF_CONFIG=json.dumps(config),
        )
        processes.append(
            subprocess.Popen(
                [sys.executable, os.path.join(SCRIPTS, "multi_worker.py")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in processes:
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    first, second = results
    # Each worker's replica draws its own noise for the same inputs...
    assert not np.allclose(first["noise"], second["noise"])
    # ...and the workers end with the same weights, masks applied.
    for a, b in zip(first["weights"], second["weights"], strict=True):
        np.testing.assert_array_equal(a, b)
    assert first["kept"] == 0.25
    assert first["losses"][1] < first["losses"][0]


# The script sets KERAS_BACKEND=jax itself: it runs once, in the TensorFlow
# pass of the suite (the JAX pass is the longer one).
@testing.tensorflow_only
def test_jax_data_parallel_on_two_host_devices():
    result = _run("jax_data_parallel.py", env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout, result.stdout
