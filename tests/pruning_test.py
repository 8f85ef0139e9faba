"""ks.pruning.strip: a pruned model without its optimizer state, disconnected units removed."""

import gzip

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits

import keras_stochastic as ks
from keras_stochastic import _autodiff


def _digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int32")


def _pruned_mlp(target_sparsity=0.95, epochs=3):
    x, y = _digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu", name="h1"),
            keras.layers.Dense(64, activation="relu", name="h2"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.Adam(0.01), seed=1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(
        x,
        y,
        batch_size=64,
        epochs=epochs,
        verbose=0,
        callbacks=[
            ks.callbacks.FlipOutPruning(
                target_sparsity=target_sparsity, prune_every_steps=12
            )
        ],
    )
    return model, x, y


def _gzip_size(model, path):
    model.save(path)
    with open(path, "rb") as f:
        return len(gzip.compress(f.read()))


def test_strip_removes_disconnected_units_and_keeps_predictions(tmp_path):
    model, x, _ = _pruned_mlp()
    stripped = ks.pruning.strip(model)
    assert getattr(stripped, "optimizer", None) is None and not stripped.compiled
    units = [layer.units for layer in stripped.layers]
    assert units[-1] == 10 and units[0] < 64 and units[1] < 64
    assert stripped.count_params() < model.count_params()
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4
    )
    # A smaller file, which loads with plain Keras (no optimizer wrapper).
    before = _gzip_size(model, str(tmp_path / "pruned.keras"))
    after = _gzip_size(stripped, str(tmp_path / "stripped.keras"))
    assert after < before
    reloaded = keras.saving.load_model(str(tmp_path / "stripped.keras"))
    np.testing.assert_allclose(
        reloaded.predict(x[:50], verbose=0), stripped.predict(x[:50], verbose=0)
    )


def test_units_with_no_inputs_fold_their_constant_into_the_next_bias():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, activation="sigmoid"),
            keras.layers.Dense(3, activation="tanh"),
            keras.layers.Dense(2),
        ]
    )
    first, second, _ = model.layers
    kernel, bias = first.get_weights()
    kernel[:, 1] = 0.0  # unit 1 outputs sigmoid(bias_1) whatever the input
    bias[1] = 0.7
    first.set_weights([kernel, bias])
    next_kernel, next_bias = second.get_weights()
    next_kernel[3] = 0.0  # unit 3 feeds nothing
    second.set_weights([next_kernel, next_bias])
    stripped = ks.pruning.strip(model)
    assert [layer.units for layer in stripped.layers] == [2, 3, 2]
    x = np.random.default_rng(0).normal(size=(32, 5)).astype("float32")
    np.testing.assert_allclose(stripped(x), model(x), atol=1e-5)
    # The original is untouched.
    assert first.units == 4


def test_strip_copies_other_models_and_refuses_subclassed_ones():
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2)(keras.layers.Dense(4, use_bias=False)(inputs))
    functional = keras.Model(inputs, outputs)
    copy = ks.pruning.strip(functional)
    assert copy is not functional and copy.count_params() == functional.count_params()

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed model"):
        ks.pruning.strip(Subclassed())
    with pytest.raises(ValueError, match="built model"):
        ks.pruning.strip(keras.Sequential([keras.layers.Dense(2)]))


def test_snip_prunes_the_least_sensitive_connections_once():
    x, y = _digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.Adam(0.01), scale=0.0),
        loss,
        metrics=["accuracy"],
    )
    kernels = [layer.kernel for layer in model.layers]
    before = [np.array(k.numpy()) for k in kernels]
    gradients = _autodiff.loss_gradient_fn(model, loss, kernels)(x[:256], y[:256])
    scores = np.concatenate(
        [np.abs(g * b).ravel() for g, b in zip(gradients, before, strict=True)]
    )
    sparsity = ks.pruning.snip(model, x[:256], y[:256], target_sparsity=0.9)
    assert abs(sparsity - 0.9) < 1e-3
    mask = np.concatenate([(k.numpy() != 0).ravel() for k in kernels])
    assert abs(1 - mask.mean() - 0.9) < 1e-3
    # Global ranking by |g * w|: every pruned weight scores below every kept one.
    assert scores[~mask].max() <= scores[mask].min()
    history = model.fit(x, y, batch_size=64, epochs=5, verbose=0)
    after = np.concatenate([(k.numpy() != 0).ravel() for k in kernels])
    # The pruned connections stay exactly zero while the rest train.
    assert not np.any(after & ~mask)
    assert history.history["accuracy"][-1] > 0.8
    assert any(np.any(k.numpy() != b) for k, b in zip(kernels, before))


def test_snip_needs_gradient_noise_and_one_loss():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    with pytest.raises(ValueError, match="GradientNoise"):
        ks.pruning.snip(model, np.ones((2, 4)), np.ones((2, 2)), 0.5)


def test_unit_pruning_then_strip_gives_a_smaller_model_with_the_same_predictions(
    tmp_path,
):
    x, y = _digits()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(64, activation="relu", name="h1"),
            keras.layers.Dense(32, activation="relu", name="h2"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.Adam(0.01), seed=1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    pruning = ks.callbacks.FlipOutPruning(
        target_sparsity=0.75, structure="units", prune_every_steps=15
    )
    model.fit(x, y, batch_size=64, epochs=3, verbose=0, callbacks=[pruning])
    accuracy = np.mean(np.argmax(model.predict(x, verbose=0), -1) == y)
    assert accuracy > 0.8
    h1, h2, logits = (model.get_layer(n).kernel.numpy() for n in ("h1", "h2", "logits"))
    dead = [np.all(k == 0, axis=0) for k in (h1, h2)]
    # 75% of the 96 hidden units are pruned whole; the output layer is untouched.
    assert sum(int(d.sum()) for d in dead) == 72
    assert np.all(logits != 0)
    stripped = ks.pruning.strip(model)
    assert [layer.units for layer in stripped.layers] == [
        64 - int(dead[0].sum()),
        32 - int(dead[1].sum()),
        10,
    ]
    np.testing.assert_allclose(
        stripped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4
    )
    assert stripped.count_params() < 0.5 * model.count_params()


def test_unit_pruning_refuses_recurrent_kernels():
    model = keras.Sequential(
        [keras.Input((5, 3)), keras.layers.SimpleRNN(4), keras.layers.Dense(2)]
    )
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.SGD(0.1), scale=0.0), "mse"
    )
    pruning = ks.callbacks.FlipOutPruning(prune_every=1, structure="units")
    with pytest.raises(ValueError, match="structure='units' prunes whole units"):
        model.fit(
            np.ones((4, 5, 3)),
            np.ones((4, 2)),
            epochs=2,
            verbose=0,
            callbacks=[pruning],
        )
