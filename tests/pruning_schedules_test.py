"""tfmot-style step schedules for `FlipOutPruning` (`ks.pruning.ConstantSparsity`, `PolynomialDecay`)."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", name="hidden"),
            keras.layers.Dense(4, name="logits"),
        ]
    )
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.SGD(0.05), scale=0.5, seed=1),
        "sparse_categorical_crossentropy",
    )
    return model


def _data(n=160):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, x[:, :4].argmax(axis=1).astype("int32")


class _SparsityPerStep(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.values = {}

    def on_train_batch_end(self, batch, logs=None):
        optimizer = self.model.optimizer
        step = int(optimizer.iterations.numpy())
        self.values[step] = ks.callbacks.FlipOutPruning.sparsity(optimizer)


def test_polynomial_decay_follows_the_formula():
    schedule = ks.pruning.PolynomialDecay(0.2, 0.8, begin_step=10, end_step=30)
    for step in (10, 15, 20, 29, 30, 100):
        progress = min(max((step - 10) / 20, 0), 1)
        expected = 0.8 + (0.2 - 0.8) * (1 - progress) ** 3
        assert schedule.sparsity_at(step) == pytest.approx(expected)
    assert schedule(5) == (False, pytest.approx(0.2))
    assert schedule(30)[0]  # the end step prunes even off the frequency grid
    assert not schedule(130)[0]
    constant = ks.pruning.ConstantSparsity(0.5, begin_step=3, frequency=4)
    assert [constant(s)[0] for s in range(2, 9)] == [0, 1, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            dict(initial_sparsity=0.5, final_sparsity=0.2, begin_step=0, end_step=9),
            "at least",
        ),
        (
            dict(initial_sparsity=0.1, final_sparsity=0.2, begin_step=5, end_step=5),
            "end_step",
        ),
        (
            dict(initial_sparsity=0.1, final_sparsity=1.0, begin_step=0, end_step=9),
            "final_sparsity",
        ),
    ],
)
def test_polynomial_decay_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ks.pruning.PolynomialDecay(**kwargs)


def test_a_schedule_excludes_the_other_schedule_arguments():
    with pytest.raises(ValueError, match="without \\['target_sparsity'\\]"):
        ks.callbacks.FlipOutPruning(
            target_sparsity=0.5, schedule=ks.pruning.ConstantSparsity(0.5)
        )
    with pytest.raises(TypeError, match="PruningSchedule"):
        ks.callbacks.FlipOutPruning(schedule=0.5)
    with pytest.raises(ValueError, match="ranking"):
        ks.callbacks.FlipOutPruning(target_sparsity=0.5, ranking="local")


def test_polynomial_decay_reaches_each_sparsity_at_its_steps():
    model = _model()
    x, y = _data()  # 10 steps per epoch at batch 16
    schedule = ks.pruning.PolynomialDecay(
        0.2, 0.75, begin_step=4, end_step=24, frequency=5
    )
    spy = _SparsityPerStep()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=3,
        verbose=0,
        callbacks=[ks.callbacks.FlipOutPruning(schedule=schedule), spy],
    )
    total = 8 * 32 + 32 * 4
    for step, sparsity in spy.values.items():
        events = [s for s in (4, 9, 14, 19, 24) if s <= step]
        expected = 0.0 if not events else schedule.sparsity_at(events[-1])
        assert sparsity == pytest.approx(round(expected * total) / total), step
    assert spy.values[30] == pytest.approx(round(0.75 * total) / total)
    hidden, logits = (model.get_layer(n).kernel.numpy() for n in ("hidden", "logits"))
    assert (hidden == 0).sum() + (logits == 0).sum() == round(0.75 * total)


def test_layer_ranking_prunes_each_kernel_to_the_sparsity():
    model = _model()
    x, y = _data()
    callback = ks.callbacks.FlipOutPruning(
        schedule=ks.pruning.ConstantSparsity(0.6, begin_step=5, frequency=100),
        ranking="layer",
        criterion="magnitude",
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    for name, size in (("hidden", 256), ("logits", 128)):
        kernel = model.get_layer(name).kernel.numpy()
        assert (kernel == 0).sum() == round(0.6 * size)
    # Global ranking of the same magnitudes prunes the kernels unevenly.
    model = _model()
    callback = ks.callbacks.FlipOutPruning(
        schedule=ks.pruning.ConstantSparsity(0.6, begin_step=5, frequency=100),
        criterion="magnitude",
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    zeros = [
        (model.get_layer(n).kernel.numpy() == 0).sum() for n in ("hidden", "logits")
    ]
    assert sum(zeros) == round(0.6 * 384)
    assert zeros != [round(0.6 * 256), round(0.6 * 128)]


def test_the_callback_config_round_trips_its_schedule():
    callback = ks.callbacks.FlipOutPruning(
        schedule=ks.pruning.PolynomialDecay(0.1, 0.9, 0, 100, power=2, frequency=10),
        ranking="layer",
    )
    config = callback.get_config()
    restored = ks.callbacks.FlipOutPruning.from_config(config)
    assert restored.schedule.get_config() == callback.schedule.get_config()
    assert isinstance(restored.schedule, ks.pruning.PolynomialDecay)
    assert restored.ranking == "layer"
    assert "PolynomialDecay(initial_sparsity=0.1" in repr(restored.schedule)
