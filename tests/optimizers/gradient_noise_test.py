import keras
import numpy as np
import pytest
from keras import ops

import keras_stochastic as ks
from tests import testing


def _apply_once(optimizer, grads, values):
    """Runs one eager `apply` and returns the updated values (numpy)."""
    variables = [keras.Variable(v) for v in values]
    optimizer.apply([ops.convert_to_tensor(g) for g in grads], variables)
    return [testing.to_numpy(v) for v in variables]


@pytest.mark.parametrize("scale_by", ["gradient", "parameter"])
def test_noise_variance_matches_layer_norm(scale_by):
    # SGD(1) without momentum: new = old - (g + eps), so eps = old - new - g.
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(200, 200)).astype("float32")
    grad = (0.01 * rng.normal(size=(200, 200))).astype("float32")
    bias, bias_grad = np.ones(7, "float32"), np.full(7, 0.5, "float32")
    scale = 0.3
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(1.0), scale=scale, scale_by=scale_by, seed=3
    )
    new, new_bias = _apply_once(optimizer, [grad, bias_grad], [theta, bias])
    eps = (theta - new - grad).ravel().astype("float64")
    target = grad if scale_by == "gradient" else theta
    expected = scale**2 * np.sum(target.astype("float64") ** 2) / target.size
    n = eps.size
    assert abs(eps.mean()) < testing.sample_tolerance(np.sqrt(expected), n)
    # The sample variance of n Gaussians has standard error var * sqrt(2 / n).
    assert abs(eps.var() - expected) < 5 * expected * np.sqrt(2.0 / n)
    # Biases get noise too, scaled by their own norm (7 draws: a loose check).
    bias_target = bias_grad if scale_by == "gradient" else bias
    bias_eps = bias - new_bias - bias_grad
    assert np.all(bias_eps != 0)
    assert np.all(np.abs(bias_eps) < 6 * scale * np.sqrt(np.mean(bias_target**2)))


@pytest.mark.parametrize("scale_by", ["gradient", "parameter"])
def test_rademacher_noise_is_plus_or_minus_the_same_stddev(scale_by):
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(300, 300)).astype("float32")
    grad = (0.01 * rng.normal(size=(300, 300))).astype("float32")
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(1.0),
        scale=0.3,
        scale_by=scale_by,
        seed=3,
        distribution="rademacher",
    )
    (new,) = _apply_once(optimizer, [grad], [theta])
    eps = (theta.astype("float64") - new - grad).ravel()
    target = grad if scale_by == "gradient" else theta
    std = 0.3 * np.sqrt(np.mean(target.astype("float64") ** 2))
    # Every value is +-std (float32 rounding of theta - new aside)...
    np.testing.assert_allclose(np.abs(eps), std, rtol=0, atol=1e-6 + 1e-6 * std)
    # ...with balanced signs: the fraction of + is 1/2 within 5 standard errors.
    assert abs(np.mean(eps > 0) - 0.5) < 5 * 0.5 / np.sqrt(eps.size)


def test_noise_anneals_as_weights_are_pruned():
    rng = np.random.default_rng(1)
    theta = keras.Variable(rng.normal(size=(300, 300)).astype("float32"))
    grad = ops.convert_to_tensor(rng.normal(size=(300, 300)).astype("float32"))
    optimizer = ks.optimizers.GradientNoise(keras.optimizers.SGD(1.0), seed=5)
    optimizer.build([theta])
    optimizer.enable_pruning([theta])
    _, mask, _ = optimizer.pruning_slots()[0]
    keep = rng.random((300, 300)) < 0.25
    mask.assign(keep.astype("float32"))
    theta.assign(np.where(keep, testing.to_numpy(theta), 0.0))
    old = testing.to_numpy(theta)
    optimizer.apply([grad], [theta])
    new = testing.to_numpy(theta)
    g = testing.to_numpy(grad)
    # Pruned weights stay exactly zero: no gradient and no noise reaches them.
    assert np.all(new[~keep] == 0.0)
    eps = (old - new - g)[keep].astype("float64")
    # d counts every entry, pruned ones included, so the variance shrinks with
    # the masked gradient norm: about a quarter of the unpruned value here.
    expected = np.sum((g * keep).astype("float64") ** 2) / g.size
    assert abs(eps.var() - expected) < 5 * expected * np.sqrt(2.0 / eps.size)
    assert expected < 0.3 * np.mean(g.astype("float64") ** 2)


def test_scale_zero_is_the_inner_optimizer():
    rng = np.random.default_rng(2)
    values = [rng.normal(size=(5, 4)).astype("float32"), np.zeros(4, "float32")]
    grads = [rng.normal(size=(5, 4)).astype("float32"), np.ones(4, "float32")]
    wrapped = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(0.1, momentum=0.9), scale=0.0
    )
    plain = keras.optimizers.SGD(0.1, momentum=0.9)
    for got, want in zip(
        _apply_once(wrapped, grads, values), _apply_once(plain, grads, values)
    ):
        np.testing.assert_array_equal(got, want)


def test_skips_none_and_overwrite_with_gradient():
    kernel = keras.Variable(np.ones((3, 3), "float32"))
    frozen = keras.Variable(np.ones(3, "float32"))
    counter = keras.Variable(np.zeros(2, "float32"))
    counter.overwrite_with_gradient = True
    optimizer = ks.optimizers.GradientNoise(keras.optimizers.SGD(0.1), seed=1)
    grads = [ops.ones((3, 3)), None, ops.convert_to_tensor([4.0, 5.0])]
    optimizer.apply(grads, [kernel, frozen, counter])
    np.testing.assert_array_equal(testing.to_numpy(frozen), np.ones(3))
    np.testing.assert_array_equal(testing.to_numpy(counter), [4.0, 5.0])
    assert np.all(testing.to_numpy(kernel) != 0.9)


def test_equal_seeds_equal_noise():
    grads = [np.ones((4, 4), "float32")]
    values = [np.zeros((4, 4), "float32")]
    runs = [
        _apply_once(
            ks.optimizers.GradientNoise(keras.optimizers.SGD(1.0), seed=seed),
            grads,
            values,
        )[0]
        for seed in (7, 7, 8)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def _constant_gradient_model():
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(50, use_bias=False, kernel_initializer="zeros"),
        ]
    )
    # d loss / d kernel = x^T 1 / batch = 1 for every entry, whatever the kernel.
    return model, (lambda y_true, y_pred: ops.sum(y_pred, axis=-1))


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.kernels = []

    def on_train_batch_end(self, batch, logs=None):
        self.kernels.append(testing.to_numpy(self.model.layers[0].kernel))


def test_fresh_noise_every_compiled_step():
    # On JAX an untracked SeedGenerator would repeat the same noise at every
    # step of a jit-compiled fit; here the seed state is an optimizer variable.
    model, loss = _constant_gradient_model()
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(1.0), scale=0.5, seed=4
    )
    model.compile(optimizer, loss, jit_compile=True)
    recorder = _Recorder()
    x, y = np.ones((6, 6), "float32"), np.zeros((6, 50), "float32")
    model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[recorder])
    kernels = [np.zeros((6, 50), "float32")] + recorder.kernels
    noise = [before - after - 1.0 for before, after in zip(kernels, kernels[1:])]
    assert len(noise) == 6
    for i in range(6):
        # Entries are N(0, 0.5**2): the sample std of 300 draws is close.
        assert 0.4 < noise[i].std() < 0.6
        for j in range(i):
            assert not np.allclose(noise[i], noise[j])
    assert int(testing.to_numpy(optimizer.iterations)) == 6


def test_forwards_learning_rate_and_iterations():
    inner = keras.optimizers.SGD(0.1, momentum=0.9)
    optimizer = ks.optimizers.GradientNoise(inner)
    assert float(testing.to_numpy(optimizer.learning_rate)) == pytest.approx(0.1)
    optimizer.learning_rate = 0.05
    assert float(testing.to_numpy(inner.learning_rate)) == pytest.approx(0.05)
    variable = keras.Variable(np.ones(3, "float32"))
    optimizer.apply([ops.ones(3)], [variable])
    optimizer.apply([ops.ones(3)], [variable])
    assert optimizer.iterations is inner.iterations
    assert int(testing.to_numpy(optimizer.iterations)) == 2
    own = {id(v) for v in optimizer.variables} - {id(v) for v in inner.variables}
    names = {v.name for v in optimizer.variables if id(v) in own}
    assert "seed_generator_state" in names


def test_config_roundtrip():
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.Adam(0.003, beta_1=0.8),
        scale=0.01,
        scale_by="parameter",
        seed=9,
        name="noisy",
        distribution="rademacher",
    )
    restored = testing.config_roundtrip(optimizer)
    assert isinstance(restored, ks.optimizers.GradientNoise)
    assert restored.get_config() == optimizer.get_config()
    assert isinstance(restored.inner_optimizer, keras.optimizers.Adam)
    assert restored.inner_optimizer.beta_1 == 0.8


def test_save_and_reload_keeps_optimizer_state(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(0.1, momentum=0.9), scale=0.5, seed=2
    )
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    testing.fit_steps(
        model, x, np.zeros((8, 2), "float32"), steps=1, optimizer=optimizer
    )
    restored = testing.save_and_reload(model, tmp_path)
    assert isinstance(restored.optimizer, ks.optimizers.GradientNoise)
    assert restored.optimizer.get_config() == optimizer.get_config()
    for a, b in zip(restored.optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(testing.to_numpy(a), testing.to_numpy(b))
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_mixed_float16_fit():
    keras.config.set_dtype_policy("mixed_float16")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    optimizer = ks.optimizers.GradientNoise(keras.optimizers.SGD(0.01), seed=0)
    x = np.ones((4, 4), "float32")
    loss = testing.fit_steps(
        model, x, np.zeros((4, 3), "float32"), steps=1, optimizer=optimizer
    )
    assert np.isfinite(loss)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"inner_optimizer": "not_an_optimizer"}, ValueError, "not_an_optimizer"),
        ({"inner_optimizer": 3}, TypeError, "Received: inner_optimizer=3"),
        ({"scale": -1.0}, ValueError, "Received: scale=-1.0"),
        ({"scale": float("nan")}, ValueError, "Received: scale=nan"),
        ({"scale": True}, TypeError, "Received: scale=True"),
        ({"scale_by": "weights"}, ValueError, "Received: scale_by='weights'"),
        ({"seed": 1.5}, TypeError, "Received: seed=1.5"),
        ({"distribution": "uniform"}, ValueError, "Received: distribution='uniform'"),
        ({"jit_compile": "yes"}, ValueError, "Received: jit_compile='yes'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    kwargs.setdefault("inner_optimizer", keras.optimizers.SGD())
    with pytest.raises(error, match=message.replace("(", r"\(").replace("[", r"\[")):
        ks.optimizers.GradientNoise(**kwargs)


def _pruning_fit(jit_compile, distribution, epochs=3):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(0.05, momentum=0.9),
        seed=3,
        distribution=distribution,
        jit_compile=jit_compile,
    )
    model.compile(optimizer, "sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8)).astype("float32")
    y = x[:, :4].argmax(axis=1).astype("int32")
    callback = ks.callbacks.FlipOutPruning(target_sparsity=0.75, prune_every=1)
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[callback])
    flips = [f.numpy() for _, _, f in optimizer.pruning_slots()]
    return model.get_weights(), flips, optimizer


def test_the_xla_fused_update_equals_the_unfused_one():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("jit_compile fuses the TensorFlow update; JAX compiles it whole")
    fused, fused_flips, optimizer = _pruning_fit(True, "rademacher")
    assert optimizer._fused_functions  # the fused path ran
    plain, plain_flips, optimizer = _pruning_fit(False, "rademacher")
    assert not optimizer._fused_functions
    # The same draws; XLA only rounds differently (fused multiply-adds,
    # reduction order), which momentum carries over the steps.
    for a, b in zip(fused, plain, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=2e-3)
        np.testing.assert_array_equal(a == 0, b == 0)  # the same weights pruned
    for a, b in zip(fused_flips, plain_flips, strict=True):
        assert np.abs(a - b).sum() <= 0.01 * b.sum() + 2
    assert sum(float(f.sum()) for f in plain_flips) > 0


def test_the_xla_fused_gaussian_update_prunes_alike():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("jit_compile fuses the TensorFlow update; JAX compiles it whole")
    fused, fused_flips, optimizer = _pruning_fit(True, "gaussian")
    assert optimizer._fused_functions
    plain, plain_flips, _ = _pruning_fit(False, "gaussian")
    # Under XLA the Gaussian noise is the table draw, without XLA Box-Muller
    # (`keras_stochastic.rng`): other numbers of the same distribution, so
    # the runs agree in what the schedule fixes, not weight for weight.
    assert all(np.all(np.isfinite(a)) for a in fused)
    # Global ranking prunes the same number of kernel weights in all.
    pruned = [
        sum(int(np.sum(w == 0)) for w in run if w.ndim == 2) for run in (fused, plain)
    ]
    assert pruned[0] == pruned[1] >= 0.75 * sum(w.size for w in plain if w.ndim == 2)
    assert sum(float(f.sum()) for f in fused_flips) > 0
    assert not np.allclose(fused[0], plain[0])


def test_auto_fuses_both_distributions():
    rademacher = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(), distribution="rademacher"
    )
    gaussian = ks.optimizers.GradientNoise(keras.optimizers.SGD())
    on_tensorflow = keras.backend.backend() == "tensorflow"
    assert rademacher._fuses() == on_tensorflow
    assert gaussian._fuses() == on_tensorflow


def test_the_fused_update_is_traced_without_autograph(monkeypatch):
    # Autograph converted the inner optimizer's code call by call (about
    # 130,000 conversions for SGD on one variable): the first fused train
    # step took half a minute.
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the fused update is TensorFlow's")
    from tensorflow.python.autograph.impl import api

    converted = []
    original = api.converted_call

    def counting(function, *args, **kwargs):
        converted.append(function)
        return original(function, *args, **kwargs)

    monkeypatch.setattr(api, "converted_call", counting)
    optimizer = ks.optimizers.GradientNoise(
        keras.optimizers.SGD(0.1, momentum=0.9), seed=1
    )
    variables = [keras.Variable(np.ones((4, 3), "float32"))]
    optimizer.apply([ops.ones((4, 3))], variables)
    assert optimizer._fused_functions  # the fused path ran
    assert converted == []
