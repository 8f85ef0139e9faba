"""Run by tests/distribute_test.py: MirroredStrategy on two logical CPUs."""

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras

import keras_stochastic as ks

strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")

# A. identical inputs on two replicas get different noise; replica 0 = one device.
for cls in (ks.layers.DenseFlipout, ks.layers.DenseLocalReparameterization):
    single = cls(3, kl_weight=0.0, seed=7)
    expected = single(x, training=True).numpy()
    with strategy.scope():
        layer = cls(3, kl_weight=0.0, seed=7)
        layer.build((None, 6))
    layer.set_weights(single.get_weights())  # same posterior; seeds equal by seed=7

    @tf.function
    def run(layer=layer):
        return strategy.run(lambda: layer(tf.constant(x), training=True))

    out = run()
    a, b = [v.numpy() for v in out.values]
    assert not np.allclose(a, b), cls.__name__
    print(cls.__name__, "replica0 vs single max diff", np.abs(a - expected).max())


# B. The global gradient's variance falls with the number of replicas, as with
# the global batch size: identical inputs on both replicas, M draws each way.
def flipout_model():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [keras.Input((6,)), ks.layers.DenseFlipout(3, kl_weight=0.0, seed=3)]
    )


M = 300
y = np.zeros((4, 3), "float32")
single = flipout_model()


@tf.function
def single_grad():
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.square(single(tf.constant(x), training=True) - 1.0))
    return tape.gradient(loss, single.trainable_variables[0])


g1 = np.stack([single_grad().numpy() for _ in range(M)])
with strategy.scope():
    mirrored = flipout_model()
mirrored.set_weights(single.get_weights())


@tf.function
def global_grad():
    def replica_fn():
        with tf.GradientTape() as tape:
            loss = (
                tf.reduce_mean(tf.square(mirrored(tf.constant(x), training=True) - 1.0))
                / 2
            )
        return tape.gradient(loss, mirrored.trainable_variables[0])

    return strategy.reduce("SUM", strategy.run(replica_fn), axis=None)


g2 = np.stack([global_grad().numpy() for _ in range(M)])
ratio = g2.var(0).sum() / g1.var(0).sum()
print("gradient variance ratio R=2 / R=1 (identical inputs):", ratio)
# Independent replicas halve it (2x the examples); shared noise would keep 1.
assert 0.35 < ratio < 0.7, ratio

# C. GradientNoise: the global step carries the same noise with R = 1 and R = 2.
d, steps = 1000, 20
rs = np.random.default_rng(1)
theta0 = rs.normal(size=(d,)).astype("float32")
c = (0.1 * rs.normal(size=(d,))).astype("float32")
for mode, target in (("gradient", c), ("parameter", theta0)):
    expected = 0.5**2 * np.mean(target**2)
    measured = {}
    for replicas in (1, 2):
        scope = (
            strategy.scope()
            if replicas == 2
            else __import__("contextlib").nullcontext()
        )
        with scope:
            v = keras.Variable(theta0)
            opt = ks.optimizers.GradientNoise(
                keras.optimizers.SGD(1.0), scale=0.5, scale_by=mode, seed=0
            )
            opt.build([v])

        def apply(opt=opt, v=v, replicas=replicas):
            opt.apply([tf.constant(c / replicas)], [v])

        step = tf.function(strategy.run if replicas == 2 else lambda fn: fn())
        noise = []
        for _ in range(steps):
            v.assign(theta0)
            step(apply)
            noise.append(theta0 - v.numpy() - c)
        measured[replicas] = np.var(np.concatenate(noise))
    print(
        mode,
        "noise variance / expected: R=1",
        measured[1] / expected,
        "R=2",
        measured[2] / expected,
    )
    for replicas in (1, 2):
        assert abs(measured[replicas] / expected - 1) < 0.05, (mode, measured)

# D. FlipOutPruning with `fit` outside the scope; mirrored state stays in sync.
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
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.Adam(0.01), seed=2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
model.fit(
    data,
    labels,
    batch_size=64,
    epochs=4,
    verbose=0,
    callbacks=[ks.callbacks.FlipOutPruning(target_sparsity=0.75)],
)
checked = 0
for variable in model.variables + model.optimizer.variables:
    values = getattr(variable.value, "values", None)
    if values is None:
        continue
    np.testing.assert_array_equal(
        values[0].numpy(), values[1].numpy(), err_msg=variable.path
    )
    checked += 1
assert checked > 10, checked
kernels = [model.layers[0].kernel_mean, model.layers[1].kernel]
zeros = sum(int(np.sum(k.numpy() == 0)) for k in kernels)
total = sum(k.numpy().size for k in kernels)
assert abs(zeros / total - 0.75) < 0.01, zeros / total
print("pruned", zeros / total, "mirrored variables in sync:", checked)
print("OK")
