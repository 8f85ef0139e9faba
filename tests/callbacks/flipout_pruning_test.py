import keras
import numpy as np
import pytest
from keras import ops

import keras_stochastic as ks
from keras_stochastic.callbacks import flipout_pruning
from tests import testing


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(4, name="logits"),
        ]
    )


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, :4].argmax(axis=1)).astype("int32")
    return x, y


def _compile(model, inner=None, scale=0.5, seed=1):
    inner = inner or keras.optimizers.SGD(0.05, momentum=0.9)
    optimizer = ks.optimizers.GradientNoise(inner, scale=scale, seed=seed)
    model.compile(
        optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return optimizer


def _masks(optimizer):
    return [testing.to_numpy(mask) for _, mask, _ in optimizer.pruning_slots()]


class _MaskHistory(keras.callbacks.Callback):
    """Records masks and kernels at each epoch end (after the pruning callback)."""

    def __init__(self):
        super().__init__()
        self.masks, self.kernels = [], []

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self.model.optimizer
        self.masks.append(_masks(optimizer))
        self.kernels.append(
            [testing.to_numpy(v) for v, _, _ in optimizer.pruning_slots()]
        )


def test_schedule_exact_sparsity_and_zeros_stay_zero():
    model = _mlp()
    optimizer = _compile(model, keras.optimizers.SGD(0.05, momentum=0.9))
    x, y = _data()
    history_cb = _MaskHistory()
    # 0.875 = 1 - 0.5**3: three events; 8 epochs -> every round(8 / 4) = 2.
    pruning = ks.callbacks.FlipOutPruning(target_sparsity=0.875)
    history = model.fit(
        x, y, batch_size=16, epochs=8, verbose=0, callbacks=[pruning, history_cb]
    )
    total = 8 * 16 + 16 * 4
    expected = [0, 0.5, 0.5, 0.75, 0.75, 0.875, 0.875, 0.875]
    for got, want, events in zip(
        history.history["sparsity"], expected, [0, 1, 1, 2, 2, 3, 3, 3]
    ):
        assert abs(got - want) * total <= max(events, 1)
    assert int(testing.to_numpy(optimizer.pruning_events)) == 3
    final = history_cb.masks[-1]
    assert sum(int((m == 0).sum()) for m in final) == round(0.875 * total)
    # Masks only ever lose entries, and masked weights are exactly zero after
    # every epoch, whatever the optimizer's momentum or moments.
    for before, after in zip(history_cb.masks, history_cb.masks[1:]):
        for b, a in zip(before, after):
            assert np.all(a <= b)
    for masks, kernels in zip(history_cb.masks, history_cb.kernels):
        for mask, kernel in zip(masks, kernels):
            assert np.all(kernel[mask == 0] == 0.0)
    # Biases are never pruned.
    assert [v.path.split("/", 1)[1] for v in optimizer.pruned_variables] == [
        "hidden/kernel",
        "logits/kernel",
    ]
    assert np.all(testing.to_numpy(model.layers[0].bias) != 0.0)


def test_flips_are_counted_inside_the_compiled_step():
    # d loss / d w_i = x_i = 1 for a batch of ones, so SGD(0.25) without noise
    # moves every weight by exactly -0.25 per step (dyadic: no rounding).
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign(np.array([[0.5], [0.375], [-1.0], [2.0]], "float32"))
    optimizer = ks.optimizers.GradientNoise(keras.optimizers.SGD(0.25), scale=0.0)
    model.compile(optimizer, lambda y_true, y_pred: ops.sum(y_pred, axis=-1))
    pruning = ks.callbacks.FlipOutPruning(prune_every=100)
    x, y = np.ones((3, 4), "float32"), np.zeros((3, 1), "float32")
    model.fit(x, y, batch_size=1, epochs=1, verbose=0, callbacks=[pruning])
    # 0.5 -> 0.25 -> 0 -> -0.25: two flips (sign(0) = 0); 0.375 -> 0.125 ->
    # -0.125 -> -0.375: one; -1 and 2 keep their signs.
    ((_, _, flips),) = optimizer.pruning_slots()
    np.testing.assert_array_equal(testing.to_numpy(flips).ravel(), [2, 1, 0, 0])


def _callback_at_train_begin(model, epochs=10, **kwargs):
    callback = ks.callbacks.FlipOutPruning(**kwargs)
    callback.set_model(model)
    callback.set_params({"epochs": epochs, "steps": 1, "verbose": 0})
    callback.on_train_begin()
    return callback


def _set_state(optimizer, weights, flips):
    ((variable, _, flip),) = optimizer.pruning_slots()
    variable.assign(np.asarray(weights, "float32").reshape(variable.shape))
    flip.assign(np.asarray(flips, "float32").reshape(variable.shape))


@pytest.mark.parametrize(
    "criterion, exponent, weights, pruned",
    [
        # tau = w^2 / (f + 1) = [1, .25, .1, .36, 4, .4, 9, .05]
        ("flipout", 2, [1.0, -1.0, 1.0, 0.6, -2.0, 2.0, 3.0, 1.0], [1, 2, 3, 7]),
        # tau = |w| / (f + 1) = [1, .25, .1, .6, 2, .2, 3, .05]: -2.0 is kept,
        # since the saliency uses |theta| (a signed theta would prune it first)
        ("flipout", 1, [1.0, -1.0, 1.0, 0.6, -2.0, 2.0, 3.0, 1.0], [1, 2, 5, 7]),
        # |w| ranks ignore the flips (flipout would prune [0, 1, 2, 7] here)
        ("magnitude", 2, [0.1, -0.2, 0.3, -0.4, 0.5, 0.6, -0.7, 0.8], [0, 1, 2, 3]),
    ],
)
def test_saliency_ordering_on_hand_made_flip_histories(
    criterion, exponent, weights, pruned
):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1, use_bias=False)])
    optimizer = _compile(model, scale=0.0)
    callback = _callback_at_train_begin(
        model, prune_every=1, criterion=criterion, exponent=exponent
    )
    _set_state(optimizer, weights, [0, 3, 9, 0, 0, 9, 0, 19])
    callback.on_epoch_end(0, logs={})
    mask = _masks(optimizer)[0].ravel()
    np.testing.assert_array_equal(np.flatnonzero(mask == 0), pruned)
    kernel = testing.to_numpy(model.layers[0].kernel).ravel()
    np.testing.assert_array_equal(kernel[pruned], 0.0)
    np.testing.assert_array_equal(
        testing.to_numpy(optimizer.pruning_slots()[0][2]).ravel()[pruned], 0.0
    )
    # The next event ranks only the remaining weights: 2 of the 4 left.
    callback.on_epoch_end(1, logs={})
    assert int((_masks(optimizer)[0] == 0).sum()) == 6


def test_saliency_function():
    np.testing.assert_allclose(
        flipout_pruning.saliency([-2.0, 0.5, 3.0], [1, 0, 8], exponent=2),
        [2.0, 0.25, 1.0],
    )


def test_random_criterion_is_seeded():
    pruned = []
    for seed in (3, 3, 4):
        keras.utils.clear_session()
        model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(5)])
        _compile(model, scale=0.0)
        callback = _callback_at_train_begin(
            model, prune_every=1, criterion="random", seed=seed
        )
        callback.on_epoch_end(0, logs={})
        pruned.append(_masks(model.optimizer)[0])
    np.testing.assert_array_equal(pruned[0], pruned[1])
    assert not np.array_equal(pruned[0], pruned[2])
    assert int((pruned[0] == 0).sum()) == 50


def test_prunable_variables_of_keras_and_keras_stochastic_layers():
    inputs = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Reshape((4, 12))(h)
    h = keras.layers.LSTM(5, name="lstm")(h)
    h = ks.layers.DenseFlipout(4, name="flipout")(h)
    outputs = keras.layers.Dense(2, name="head")(h)
    model = keras.Model(inputs, outputs)
    paths = [v.path for v in flipout_pruning.prunable_variables(model)]
    assert paths == [
        "conv/kernel",
        "lstm/lstm_cell/kernel",
        "lstm/lstm_cell/recurrent_kernel",
        "flipout/kernel_mean",
        "head/kernel",
    ]
    paths = [
        v.path
        for v in flipout_pruning.prunable_variables(model, exclude=["lstm", "head"])
    ]
    assert paths == ["conv/kernel", "flipout/kernel_mean"]
    paths = [
        v.path for v in flipout_pruning.prunable_variables(model, include=["lstm"])
    ]
    assert paths == ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel"]
    # keras_stochastic recurrent layers: the cell's two posterior means.
    recurrent = keras.Sequential(
        [keras.Input((3, 2)), ks.layers.GRUFlipout(4, name="gru")]
    )
    paths = [
        v.path.split("/", 1)[1] for v in flipout_pruning.prunable_variables(recurrent)
    ]
    assert paths == [
        "gru/gru_flipout_cell/kernel_mean",
        "gru/gru_flipout_cell/recurrent_kernel_mean",
    ]
    with pytest.raises(ValueError, match="does not have: \\['nope'\\]"):
        flipout_pruning.prunable_variables(model, exclude=["nope"])


def test_pruning_keras_stochastic_layers_in_a_compiled_fit():
    # Gaussian layers prune their posterior mean (never rho or the bias),
    # variance layers their scale (a zero scale is an exactly-zero weight).
    model = keras.Sequential(
        [
            keras.Input((8,)),
            ks.layers.DenseFlipout(8, activation="relu", seed=1, name="gauss"),
            ks.layers.DenseVariance(4, seed=2, name="variance"),
        ]
    )
    optimizer = _compile(model, keras.optimizers.Adam(0.01))
    x, y = _data(32)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[ks.callbacks.FlipOutPruning(target_sparsity=0.75)],
    )
    assert [v.path.split("/", 1)[1] for v in optimizer.pruned_variables] == [
        "gauss/kernel_mean",
        "variance/kernel_scale",
    ]
    assert history.history["sparsity"][-1] == 0.75
    for variable, mask, _ in optimizer.pruning_slots():
        assert np.all(testing.to_numpy(variable)[testing.to_numpy(mask) == 0] == 0.0)
    (rho,) = [v for v in model.trainable_variables if v.path.endswith("kernel_rho")]
    assert np.all(testing.to_numpy(rho) != 0.0)


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_pruning(tmp_path):
    x, y = _data()

    def run(callbacks):
        model = _mlp(seed=5)
        optimizer = _compile(model, seed=2)
        pruning = ks.callbacks.FlipOutPruning(target_sparsity=0.875)
        model.fit(
            x,
            y,
            batch_size=16,
            epochs=8,
            shuffle=False,
            verbose=0,
            callbacks=callbacks(pruning),
        )
        return model, optimizer

    _, reference = run(lambda pruning: [pruning])
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    # The backup of epoch 4 is written before that epoch's pruning event, so
    # the resumed fit must catch the event up.
    with pytest.raises(RuntimeError, match="interrupted"):
        run(lambda pruning: [backup, pruning, _Interrupt(epoch=4)])
    # A fresh model and optimizer, as in a new process: the restore recreates
    # the pruning state (masks, flips, events) from the backup.
    model, resumed = run(lambda pruning: [backup, pruning])
    assert int(testing.to_numpy(resumed.pruning_events)) == 3
    for got, want in zip(_masks(resumed), _masks(reference)):
        np.testing.assert_array_equal(got, want)
    for (_, _, got), (_, _, want) in zip(
        resumed.pruning_slots(), reference.pruning_slots()
    ):
        np.testing.assert_allclose(testing.to_numpy(got), testing.to_numpy(want))


def test_save_and_reload_keeps_pruning_state(tmp_path):
    model = _mlp()
    optimizer = _compile(model)
    x, y = _data()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[ks.callbacks.FlipOutPruning(prune_every=1)],
    )
    restored = testing.save_and_reload(model, tmp_path)
    assert [v.path[-13:] for v in restored.optimizer.pruned_variables] == [
        "hidden/kernel",
        "logits/kernel",
    ]
    assert int(testing.to_numpy(restored.optimizer.pruning_events)) == 2
    for got, want in zip(restored.optimizer.variables, optimizer.variables):
        np.testing.assert_array_equal(testing.to_numpy(got), testing.to_numpy(want))
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6
    )
    # Training the reloaded model, even without the callback, keeps the
    # pruned weights at zero: the masks are applied inside the train step.
    restored.fit(x, y, batch_size=16, epochs=1, verbose=0)
    for variable, mask, _ in restored.optimizer.pruning_slots():
        assert np.all(testing.to_numpy(variable)[testing.to_numpy(mask) == 0] == 0.0)


def test_mixed_float16_fit_with_adam():
    keras.config.set_dtype_policy("mixed_float16")
    model = _mlp()
    optimizer = _compile(model, keras.optimizers.Adam(0.01))
    x, y = _data(32)
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        callbacks=[ks.callbacks.FlipOutPruning(prune_every=1)],
    )
    assert history.history["sparsity"] == [0.5, 0.5]
    assert np.isfinite(history.history["loss"]).all()
    # A second epoch of Adam (whose moments of pruned weights are not zero)
    # leaves the weights pruned after the first one exactly zero.
    for variable, mask, _ in optimizer.pruning_slots():
        assert np.all(testing.to_numpy(variable)[testing.to_numpy(mask) == 0] == 0.0)


def test_fails_at_once_without_gradient_noise():
    model = _mlp()
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    x, y = _data(8)
    with pytest.raises(
        ValueError, match="GradientNoise.*scale=0.0.*Received: optimizer="
    ):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[ks.callbacks.FlipOutPruning(prune_every=1)],
        )


def test_fails_without_prunable_weights():
    model = _mlp()
    _compile(model)
    x, y = _data(8)
    with pytest.raises(ValueError, match="no prunable weights"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[
                ks.callbacks.FlipOutPruning(prune_every=1, exclude=["hidden", "logits"])
            ],
        )


def test_fails_when_fit_is_too_short_for_the_target():
    model = _mlp()
    _compile(model)
    x, y = _data(8)
    with pytest.raises(
        ValueError,
        match="needs 10 pruning events.*at least 11 epochs.*prune_every_steps",
    ):
        model.fit(
            x,
            y,
            epochs=5,
            verbose=0,
            callbacks=[ks.callbacks.FlipOutPruning(target_sparsity=0.999)],
        )


class _StepMasks(keras.callbacks.Callback):
    """Records (optimizer step, sparsity) after every batch."""

    def __init__(self):
        super().__init__()
        self.records = []

    def on_train_batch_end(self, batch, logs=None):
        optimizer = self.model.optimizer
        sparsity = flipout_pruning.FlipOutPruning.sparsity(optimizer)
        self.records.append((int(optimizer.iterations.numpy()), sparsity))


def test_a_two_epoch_fit_reaches_its_target_by_step_schedule():
    model = _mlp()
    optimizer = _compile(model)
    x, y = _data(64)
    # 2 epochs of 8 steps: events at steps 4, 7, 10 (begin 1, every 3).
    pruning = ks.callbacks.FlipOutPruning(
        target_sparsity=0.875, prune_every_steps=3, begin_step=1
    )
    record = _StepMasks()
    history = model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, callbacks=[pruning, record]
    )
    assert history.history["sparsity"][-1] == 0.875
    steps = {step: round(sparsity, 4) for step, sparsity in record.records}
    assert steps[3] == 0.0 and steps[4] == 0.5 and steps[7] == 0.75
    assert steps[10] == 0.875 and steps[16] == 0.875
    assert int(optimizer.pruning_events.numpy()) == 3
    # The masked weights are zero in the model, after the last step too.
    for kernel, mask in zip(
        [v for v, _, _ in optimizer.pruning_slots()], _masks(optimizer)
    ):
        assert np.all(testing.to_numpy(kernel)[mask == 0] == 0)


def test_step_schedule_that_does_not_fit_is_refused():
    model = _mlp()
    _compile(model)
    x, y = _data(64)
    pruning = ks.callbacks.FlipOutPruning(target_sparsity=0.875, prune_every_steps=6)
    with pytest.raises(
        ValueError, match="the last falls at step 18, after the 16 steps"
    ):
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[pruning])


def test_derived_schedule_matches_the_paper():
    # 350 epochs, prune_rate 0.5: 99.9% -> 10 events every 32 epochs, and the
    # README's other rows (75%: 117, 93.75%: 70, 98.44%: 50, 99.61%: 39).
    model = _mlp()
    _compile(model)
    for target, events, interval in [
        (0.999, 10, 32),
        (0.75, 2, 117),
        (0.9375, 4, 70),
        (0.984375, 6, 50),
        (0.99609375, 8, 39),
    ]:
        callback = _callback_at_train_begin(model, epochs=350, target_sparsity=target)
        assert callback.num_events() == events
        assert callback._interval == interval


def test_config_roundtrip():
    callback = ks.callbacks.FlipOutPruning(
        target_sparsity=0.9,
        prune_rate=0.3,
        exponent=1,
        criterion="magnitude",
        exclude=["head"],
        seed=4,
        prune_every_steps=100,
        begin_step=50,
    )
    restored = testing.config_roundtrip(callback)
    assert restored.get_config() == callback.get_config()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"target_sparsity": 1.0},
            ValueError,
            r"in \[0, 1\). Received: target_sparsity=1.0",
        ),
        ({"target_sparsity": -0.1}, ValueError, "Received: target_sparsity=-0.1"),
        ({"target_sparsity": "high"}, TypeError, "Received: target_sparsity='high'"),
        ({"prune_rate": 0.0}, ValueError, r"in \(0, 1\). Received: prune_rate=0.0"),
        ({"prune_rate": 1.0}, ValueError, "Received: prune_rate=1.0"),
        ({"prune_every": 0}, ValueError, "Received: prune_every=0"),
        (
            {"target_sparsity": None},
            ValueError,
            "Received: target_sparsity=None, prune_every=None",
        ),
        ({"exponent": -1}, ValueError, "Received: exponent=-1"),
        ({"criterion": "snip"}, ValueError, "Received: criterion='snip'"),
        ({"exclude": "head"}, TypeError, "Received: exclude='head'"),
        ({"seed": "a"}, TypeError, "Received: seed='a'"),
        ({"verbose": 2}, ValueError, "Received: verbose=2"),
        ({"prune_every_steps": 0}, ValueError, "Received: prune_every_steps=0"),
        ({"structure": "filters"}, ValueError, "Received: structure='filters'"),
        (
            {"prune_every": 2, "prune_every_steps": 5},
            ValueError,
            "not both. Received: prune_every=2, prune_every_steps=5",
        ),
        ({"begin_step": 10}, ValueError, "pass `prune_every_steps` too"),
        (
            {"prune_every_steps": 5, "begin_step": -1},
            ValueError,
            "Received: begin_step=-1",
        ),
    ],
)
def test_bad_arguments(kwargs, error, message):
    kwargs.setdefault("target_sparsity", 0.9)
    with pytest.raises(error, match=message):
        ks.callbacks.FlipOutPruning(**kwargs)


def test_prunes_depthwise_convolutions():
    # Keras 3 names the depthwise kernel of DepthwiseConv1D/2D `kernel` (only
    # SeparableConv has a `depthwise_kernel`): it must be ranked and pruned.
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 4)),
            keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="depthwise"),
            keras.layers.Conv2D(4, 3, name="conv"),
            keras.layers.Flatten(),
            keras.layers.Dense(4, name="logits"),
        ]
    )
    kernels = {
        "depthwise": 3 * 3 * 4 * 2,
        "conv": 3 * 3 * 8 * 4,
        "logits": 4 * 4 * 4 * 4,
    }
    # Every kernel i.i.d. N(0, 1), so that global magnitude ranking prunes
    # each layer by about the target fraction (initializers scale layers
    # differently, which would make the per-layer split arbitrary).
    rng = np.random.default_rng(0)
    for name in kernels:
        kernel = model.get_layer(name).kernel
        kernel.assign(rng.normal(size=kernel.shape).astype("float32"))
    # scale=0 and a tiny learning rate: plain global magnitude pruning of
    # weights that barely move during the three epochs.
    optimizer = _compile(model, keras.optimizers.SGD(1e-3), scale=0.0)
    x = rng.normal(size=(32, 8, 8, 4)).astype("float32")
    y = rng.integers(0, 4, size=32).astype("int32")
    pruning = ks.callbacks.FlipOutPruning(target_sparsity=0.75, criterion="magnitude")
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[pruning])

    assert [v.path.split("/", 1)[1] for v in optimizer.pruned_variables] == [
        "depthwise/kernel",
        "conv/kernel",
        "logits/kernel",
    ]
    report = ks.sparsity(model)
    # 72 weights each pruned with probability ~0.75: binomial standard error
    # 0.05, so 0.5 is five standard errors below the expectation.
    assert report["depthwise"]["fraction"] > 0.5, (
        f"depthwise kernel not pruned: {report['depthwise']}"
    )
    total = sum(kernels.values())
    assert report["global"]["total"] == total
    assert report["global"]["zeros"] == round(0.75 * total)
    assert history.history["sparsity"][-1] == pytest.approx(0.75, abs=1 / total)
    for variable, mask, _ in optimizer.pruning_slots():
        assert np.all(testing.to_numpy(variable)[testing.to_numpy(mask) == 0] == 0.0)


def _bayesian_mlp(layer_class, **kwargs):
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8,)),
            layer_class(16, activation="relu", kl_weight=1e-3, name="hidden", **kwargs),
            layer_class(4, kl_weight=1e-3, name="logits", **kwargs),
        ]
    )


def test_snr_criterion_prunes_the_lowest_signal_to_noise_weights():
    model = _bayesian_mlp(ks.layers.DenseFlipout)
    optimizer = _compile(model, scale=0.0)
    callback = _callback_at_train_begin(
        model, epochs=2, target_sparsity=0.5, criterion="snr"
    )
    layers = [model.get_layer("hidden"), model.get_layer("logits")]
    snr = np.concatenate(
        [
            (
                np.abs(testing.to_numpy(layer.kernel_mean))
                / testing.to_numpy(layer.kernel_stddev)
            ).ravel()
            for layer in layers
        ]
    )
    callback._prune(optimizer, "test")
    pruned = np.concatenate([m.ravel() for m in _masks(optimizer)]) == 0
    assert pruned.mean() == 0.5
    # Every pruned weight has a lower SNR than every kept one.
    assert snr[pruned].max() <= snr[~pruned].min()


def test_log_alpha_criterion_prunes_the_noisiest_dropout_weights():
    model = _bayesian_mlp(ks.layers.DenseVariationalDropout)
    optimizer = _compile(model, scale=0.0)
    callback = _callback_at_train_begin(
        model, epochs=2, target_sparsity=0.5, criterion="log_alpha"
    )
    log_alpha = np.concatenate(
        [
            np.broadcast_to(
                testing.to_numpy(layer.log_alpha), layer.kernel_mean.shape
            ).ravel()
            for layer in model.layers
        ]
    )
    callback._prune(optimizer, "test")
    pruned = np.concatenate([m.ravel() for m in _masks(optimizer)]) == 0
    assert pruned.mean() == 0.5
    assert log_alpha[pruned].min() >= log_alpha[~pruned].max()


def test_bayesian_criteria_refuse_kernels_without_that_layer():
    model = _mlp()
    _compile(model)
    x, y = _data(16)
    with pytest.raises(
        ValueError, match="criterion='snr' scores the kernels of Gaussian"
    ):
        model.fit(
            x,
            y,
            epochs=2,
            verbose=0,
            callbacks=[ks.callbacks.FlipOutPruning(prune_every=1, criterion="snr")],
        )
