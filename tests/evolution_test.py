"""ks.evolution.FlipoutES: the ES estimate, the flipout population, fit / evolve, state."""

import keras
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import keras_stochastic as ks
from keras_stochastic import evolution

IN, OUT = 3, 2


def _linear_model(seed=0, use_bias=True):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((IN,)), keras.layers.Dense(OUT, use_bias=use_bias)]
    )


def _probe(population):
    """Each member's (kernel, bias), read from its outputs on the identity and a zero row."""
    rows = np.concatenate([np.eye(IN), np.zeros((1, IN))]).astype("float32")
    size = population.size
    outputs = population(np.tile(rows, (size, 1))).reshape(size, IN + 1, OUT)
    bias = outputs[:, IN]
    return outputs[:, :IN] - bias[:, None], bias


class _Record(keras.callbacks.Callback):
    def __init__(self, es):
        super().__init__()
        self.es = es
        self.values = [self._values()]

    def _values(self):
        return [np.array(v.numpy()) for v in self.es.evolved_variables]

    def on_epoch_end(self, epoch, logs=None):
        self.values.append(self._values())


@pytest.mark.parametrize("antithetic", [True, False])
def test_linear_fitness_gradient_estimate_is_unbiased(antithetic):
    # F(theta) = <C, W> + <c, b>: grad J = (C, c) exactly. With SGD(lr) and
    # raw fitness, each generation moves theta by lr times the ES estimate
    # (lr small: without antithetic pairs the estimate's variance grows with
    # F(theta) itself).
    rs = np.random.RandomState(1)
    c_kernel = rs.normal(size=(IN, OUT)).astype("float32")
    c_bias = rs.normal(size=(OUT,)).astype("float32")
    model = _linear_model()
    es = ks.evolution.FlipoutES(
        model,
        population_size=8,
        noise_stddev=0.1,
        optimizer=keras.optimizers.SGD(1e-3),
        antithetic=antithetic,
        fitness_shaping=None,
        seed=3,
    )

    def fitness(population):
        kernel, bias = _probe(population)
        return (kernel * c_kernel).sum((1, 2)) + (bias * c_bias).sum(1)

    record = _Record(es)
    generations = 400
    es.evolve(fitness, generations, callbacks=[record], verbose=0)
    steps = np.stack(
        [
            np.concatenate([(b - a).ravel() / 1e-3 for a, b in zip(before, after)])
            for before, after in zip(record.values[:-1], record.values[1:])
        ]
    )
    exact = np.concatenate([c_kernel.ravel(), c_bias])
    z = (steps.mean(0) - exact) / (steps.std(0, ddof=1) / np.sqrt(generations))
    assert np.all(np.abs(z) < 4.5), z
    # Not a vacuous test: the estimate is noisy, but its mean is the gradient.
    assert np.all(steps.std(0) > 0.05)


@pytest.mark.parametrize("shaping", ["centered_ranks", "standardized", None])
def test_antithetic_pairs_cancel_exactly_for_a_constant_fitness(shaping):
    model = _linear_model()
    before = [v.numpy().copy() for v in model.weights]
    es = ks.evolution.FlipoutES(
        model,
        population_size=16,
        noise_stddev=0.5,
        optimizer=keras.optimizers.SGD(10.0),
        fitness_shaping=shaping,
        seed=0,
    )
    es.evolve(lambda population: np.full(16, 3.0), 3, verbose=0)
    for a, b in zip(before, model.weights):
        np.testing.assert_array_equal(a, b.numpy())


def test_members_are_pseudo_independent_with_the_flipout_structure():
    model = _linear_model()
    sigma = 0.2
    es = ks.evolution.FlipoutES(
        model,
        population_size=8,
        noise_stddev=sigma,
        optimizer=keras.optimizers.SGD(0.0),
        seed=5,
    )
    kernel0 = model.layers[0].kernel.numpy()
    bias0 = model.layers[0].bias.numpy()
    deltas = []

    def fitness(population):
        kernel, bias = _probe(population)
        delta = (kernel - kernel0) / sigma
        # Flipout: every member sees the same |E|, with its own signs s r^T.
        np.testing.assert_allclose(
            np.abs(delta), np.abs(delta[:1]).repeat(8, 0), atol=1e-4
        )
        flips = np.sign(delta) * np.sign(delta[:1])
        for p in range(8):
            outer = np.outer(flips[p][:, 0], flips[p][0]) * flips[p][0, 0]
            np.testing.assert_array_equal(flips[p], outer)
        # Antithetic partners (p, p + 4) are exact negatives.
        np.testing.assert_allclose(delta[4:], -delta[:4], atol=1e-4)
        np.testing.assert_allclose(
            (bias[4:] - bias0) / sigma, -(bias[:4] - bias0) / sigma, atol=1e-4
        )
        deltas.append(delta)
        return np.zeros(8)

    es.evolve(fitness, 500, verbose=0)
    deltas = np.stack(deltas)  # (G, P, IN, OUT)
    # Each member's perturbation is N(0, 1) per weight...
    n = deltas[:, 0].size
    assert abs(np.mean(deltas[:, 0] ** 2) - 1.0) < 4 * np.sqrt(2.0 / n)
    # ...and two members that are not partners are uncorrelated.
    for p, q in [(0, 1), (1, 2), (0, 3)]:
        corr = np.corrcoef(deltas[:, p].ravel(), deltas[:, q].ravel())[0, 1]
        assert abs(corr) < 4.0 / np.sqrt(n), (p, q, corr)


def test_update_equals_a_hand_computed_one():
    model = _linear_model(seed=2)
    sigma, lr, size = 0.3, 0.5, 6
    es = ks.evolution.FlipoutES(
        model,
        population_size=size,
        noise_stddev=sigma,
        optimizer=keras.optimizers.SGD(lr),
        seed=11,
    )
    kernel0 = model.layers[0].kernel.numpy()
    bias0 = model.layers[0].bias.numpy()
    target = np.array([[1.0, -1.0], [0.5, 0.0], [0.0, 2.0]], "float32")
    seen = {}

    def fitness(population):
        kernel, bias = _probe(population)
        seen["kernel"], seen["bias"] = kernel, bias
        return -((kernel - target) ** 2).sum((1, 2)) - (bias**2).sum(1)

    es.evolve(fitness, 1, verbose=0)
    f = fitness_values = -((seen["kernel"] - target) ** 2).sum((1, 2))
    f = fitness_values - (seen["bias"] ** 2).sum(1)
    ranks = np.argsort(np.argsort(f)) / (size - 1) - 0.5
    eps_kernel = (seen["kernel"] - kernel0) / sigma
    eps_bias = (seen["bias"] - bias0) / sigma
    grad_kernel = np.einsum("p,pio->io", ranks, eps_kernel) / (size * sigma)
    grad_bias = np.einsum("p,po->o", ranks, eps_bias) / (size * sigma)
    np.testing.assert_allclose(
        model.layers[0].kernel.numpy(), kernel0 + lr * grad_kernel, atol=1e-5
    )
    np.testing.assert_allclose(
        model.layers[0].bias.numpy(), bias0 + lr * grad_bias, atol=1e-5
    )


def test_centered_ranks_share_ties():
    ranks = evolution.centered_ranks(np.array([3.0, 1.0, 3.0, 2.0, 0.0], "float32"))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(ranks), [0.375, -0.25, 0.375, 0.0, -0.5]
    )


def _conv_model(data_format):
    keras.utils.set_random_seed(4)
    shape = (8, 8, 2) if data_format == "channels_last" else (2, 8, 8)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(3, 3, data_format=data_format, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(data_format=data_format)(x)
    x = keras.layers.Conv1D(4, 2, padding="causal")(keras.layers.Reshape((-1, 3))(x))
    x = keras.layers.Flatten()(x)
    outputs = ks.layers.DenseFlipout(5, kl_weight=0.0)(x)
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_population_rows_run_under_each_members_explicit_weights(data_format):
    model = _conv_model(data_format)
    es = ks.evolution.FlipoutES(model, population_size=4, noise_stddev=0.1, seed=1)
    rs = np.random.RandomState(0)
    x = rs.normal(size=(3,) + model.input_shape[1:]).astype("float32")
    draws = es._draw()
    outputs = keras.ops.convert_to_numpy(
        es._population_outputs(np.tile(x, (4, 1, 1, 1)), draws)
    )
    twin = keras.models.clone_model(model)
    for p in range(4):
        values = []
        for target, (noise, s, r, b) in zip(es._targets, draws):
            noise, s, r, b = (keras.ops.convert_to_numpy(t) for t in (noise, s, r, b))
            kernel = target.kernel.numpy() + 0.1 * noise * np.outer(s[p], r[p])
            values += [kernel, target.bias.numpy() + 0.1 * b[p]]
        for variable, value in zip(es.evolved_variables, values):
            twin_variable = next(v for v in twin.weights if v.path == variable.path)
            twin_variable.assign(value)
        for variable in model.weights:
            if all(variable is not v for v in es.evolved_variables):
                next(v for v in twin.weights if v.path == variable.path).assign(
                    variable
                )
        expected = keras.ops.convert_to_numpy(twin(x, training=False))
        np.testing.assert_allclose(outputs[3 * p : 3 * p + 3], expected, atol=1e-4)
    # The hooks are gone: the layers run their own code again.
    for target in es._targets:
        assert not {"call", "convolution_op", "_stochastic_linear"} & set(
            vars(target.layer)
        )


def test_what_is_evolved_and_what_is_refused():
    keras.utils.set_random_seed(0)
    flipout = ks.layers.DenseFlipout(4, kl_weight=0.0)
    frozen = keras.layers.Dense(4)
    model = keras.Sequential(
        [keras.Input((6,)), flipout, keras.layers.BatchNormalization(), frozen]
    )
    frozen.trainable = False
    es = ks.evolution.FlipoutES(model, population_size=4, noise_stddev=0.1)
    assert es.evolved_variables == [flipout.kernel_mean, flipout.bias]
    assert es.trainable_variables == es.evolved_variables
    stddev = keras.ops.convert_to_numpy(flipout.kernel_stddev)
    es.compile(loss="mse")
    es.fit(np.ones((8, 6)), np.zeros((8, 4)), epochs=1, verbose=0)
    np.testing.assert_array_equal(
        stddev, keras.ops.convert_to_numpy(flipout.kernel_stddev)
    )

    lstm = keras.Sequential(
        [keras.Input((5, 2)), keras.layers.LSTM(3), keras.layers.Dense(1)]
    )
    with pytest.raises(ValueError, match="LSTMCell"):
        ks.evolution.FlipoutES(lstm, population_size=4, noise_stddev=0.1)
    lstm.layers[0].trainable = False
    assert (
        len(
            ks.evolution.FlipoutES(
                lstm, population_size=4, noise_stddev=0.1
            ).evolved_variables
        )
        == 2
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"population_size": 5}, "must be even. Received: population_size=5"),
        ({"population_size": 0}, "population_size"),
        ({"noise_stddev": 0.0}, "noise_stddev"),
        ({"fitness_shaping": "ranks"}, "fitness_shaping"),
        ({"antithetic": "yes"}, "antithetic"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    arguments = {"population_size": 4, "noise_stddev": 0.1, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        ks.evolution.FlipoutES(_linear_model(), **arguments)


def test_bad_models_losses_and_fitness_are_refused():
    with pytest.raises(ValueError, match="built model"):
        ks.evolution.FlipoutES(
            keras.Sequential([keras.layers.Dense(2)]),
            population_size=4,
            noise_stddev=0.1,
        )
    es = ks.evolution.FlipoutES(_linear_model(), population_size=4, noise_stddev=0.1)
    with pytest.raises(ValueError, match="one loss"):
        es.compile(loss={"out": "mse"})
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        es.evolve(lambda population: np.zeros(3), 1, verbose=0)
    with pytest.raises(ValueError, match="multiple of the population size"):
        es.evolve(lambda population: population(np.zeros((6, IN))), 1, verbose=0)


def _digits():
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    x, x_test, y, y_test = train_test_split(
        x, y, test_size=360, stratify=y, random_state=0
    )
    return x, y, x_test, y_test


def _digits_es(seed=0, population_size=256, hidden=64):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    es = ks.evolution.FlipoutES(
        model,
        population_size=population_size,
        noise_stddev=0.05,
        optimizer=keras.optimizers.Adam(0.01),
        seed=seed,
    )
    es.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, es


def test_fit_trains_a_digits_mlp_to_90_percent_without_backpropagation():
    # The tutorial's digits set-up (a stratified 360-digit test split).
    x, y, x_test, y_test = _digits()
    model, es = _digits_es()
    history = es.fit(
        x, y, epochs=15, batch_size=64, validation_data=(x_test, y_test), verbose=0
    )
    assert set(history.history) >= {"loss", "accuracy", "population_loss", "val_loss"}
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    # The members are perturbed copies: their mean loss is above the centre's.
    assert history.history["population_loss"][-1] > history.history["loss"][-1]
    accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)
    assert accuracy >= 0.90
    assert "population_loss" not in es.evaluate(
        x_test, y_test, verbose=0, return_dict=True
    )


def test_same_seed_same_result_and_exact_resume(tmp_path):
    x, y, _, _ = _digits()
    x, y = x[:256], y[:256]

    def run(epochs):
        model, es = _digits_es(population_size=32, hidden=16)
        es.fit(x, y, epochs=epochs, batch_size=64, shuffle=False, verbose=0)
        return model, es

    model_a, _ = run(3)
    _, es_b = run(2)
    path = str(tmp_path / "es.keras")
    es_b.save(path)
    restored = keras.saving.load_model(path)
    assert restored.seed == es_b.seed and restored.population_size == 32
    assert int(restored.optimizer.iterations.numpy()) == 8
    restored.fit(x, y, epochs=1, batch_size=64, shuffle=False, verbose=0)
    # Same seed, same generations: the interrupted run ends where the other does.
    for a, b in zip(model_a.weights, restored.model.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
