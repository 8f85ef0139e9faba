"""Recurrent flipout and LRT layers and cells: API, Keras-twin options, serialization."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests import testing

ESTIMATORS = ["Flipout", "LocalReparameterization"]
TWINS = {
    "SimpleRNN": lambda units, **kw: keras.layers.SimpleRNN(units, **kw),
    "LSTM": lambda units, **kw: keras.layers.LSTM(units, use_cudnn=False, **kw),
    "GRU": lambda units, **kw: keras.layers.GRU(units, use_cudnn=False, **kw),
}
ALL_CASES = [(family, estimator) for family in TWINS for estimator in ESTIMATORS]
# JAX compiles a new `lax.scan` for every eager call of a recurrent layer
# (1-2 s each here), so its default run checks the eager options on one case
# per estimator and family group; `-m slow` runs them all. Every class still
# runs on JAX in `test_compiled_fit_predict_and_model_helpers`.
JAX_DEFAULT = {("LSTM", "Flipout"), ("GRU", "LocalReparameterization")}
CASES = [
    case
    if testing.BACKEND != "jax" or case in JAX_DEFAULT
    else pytest.param(*case, marks=pytest.mark.slow)
    for case in ALL_CASES
]
STATES = {"SimpleRNN": 1, "LSTM": 2, "GRU": 1}


def layer_class(family, estimator):
    return getattr(ks.layers, family + estimator)


def cell_class(family, estimator):
    return getattr(ks.layers, family + estimator + "Cell")


def sequences(batch=4, steps=5, features=3, seed=0):
    return (
        np.random.default_rng(seed)
        .normal(size=(batch, steps, features))
        .astype("float32")
    )


def twin_of(layer, family, **kwargs):
    """The Keras layer of `layer`'s shape holding its posterior means."""
    if family == "GRU":
        kwargs.setdefault("reset_after", layer.reset_after)
    twin = TWINS[family](layer.units, **kwargs)
    twin.build((None, None, layer.cell.kernel_mean.shape[0]))
    twin.set_weights(
        [
            testing.to_numpy(layer.kernel_mean),
            testing.to_numpy(layer.recurrent_kernel_mean),
            testing.to_numpy(layer.cell.bias),
        ]
    )
    return twin


def randomize_bias(layer, seed=0):
    bias = layer.cell.bias
    bias.assign(
        np.random.default_rng(seed).normal(size=bias.shape).astype("float32") * 0.5
    )


@pytest.mark.parametrize("family,estimator", CASES)
def test_config_roundtrip(family, estimator):
    kwargs = dict(
        activation="relu",
        kernel_stddev_initializer=0.03,
        recurrent_kernel_stddev_initializer=0.02,
        prior=ks.priors.ScaleMixtureNormal(0.25, 1.0, 0.01),
        kl_weight=0.5,
        inference="sample",
        seed=7,
        dropout=0.1,
        recurrent_dropout=0.2,
        kernel_regularizer="l2",
    )
    if family == "GRU":
        kwargs["reset_after"] = False
    if family == "LSTM":
        kwargs["unit_forget_bias"] = False
    layer = layer_class(family, estimator)(
        3, return_sequences=True, go_backwards=True, **kwargs
    )
    clone = testing.config_roundtrip(layer)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    assert (
        clone.kl_weight == 0.5 and clone.inference == "sample" and clone.cell.seed == 7
    )
    assert clone.return_sequences and clone.go_backwards and clone.dropout == 0.1
    assert clone.prior.get_config() == {"pi": 0.25, "stddev1": 1.0, "stddev2": 0.01}

    kwargs["recurrent_kernel_stddev_initializer"] = None
    cell = cell_class(family, estimator)(3, stochastic_recurrent_kernel=False, **kwargs)
    cell_clone = testing.config_roundtrip(cell)
    assert type(cell_clone) is type(cell)
    assert cell_clone.get_config() == cell.get_config()
    assert cell_clone.stochastic_recurrent_kernel is False


@pytest.mark.parametrize("family,estimator", CASES)
def test_weights_losses_shapes(family, estimator):
    layer = layer_class(family, estimator)(
        4,
        return_sequences=True,
        return_state=True,
        kernel_stddev_initializer=0.03,
        seed=1,
    )
    symbolic = layer(keras.KerasTensor((None, 5, 3)))
    outputs = layer(sequences(), training=True)
    assert len(outputs) == 1 + STATES[family]
    assert tuple(outputs[0].shape) == (4, 5, 4)
    assert all(tuple(state.shape) == (4, 4) for state in outputs[1:])
    assert [tuple(t.shape[1:]) for t in symbolic] == [
        tuple(t.shape[1:]) for t in outputs
    ]
    assert [w.name for w in layer.weights] == [
        "kernel_mean",
        "kernel_rho",
        "recurrent_kernel_mean",
        "recurrent_kernel_rho",
        "bias",
        "kl_weight",
        "sample_at_inference",
    ]
    assert len(layer.trainable_weights) == 5
    # One KL term per stochastic kernel, added once per call.
    assert len(layer.losses) == 2
    np.testing.assert_allclose(testing.to_numpy(layer.kernel_stddev), 0.03, rtol=1e-5)
    np.testing.assert_allclose(
        testing.to_numpy(layer.recurrent_kernel_stddev), 0.03, rtol=1e-5
    )
    assert layer.cell._prunable_variables() == [
        layer.kernel_mean,
        layer.recurrent_kernel_mean,
    ]

    point = layer_class(family, estimator)(
        4, use_bias=False, stochastic_recurrent_kernel=False, seed=1
    )
    point(sequences(), training=True)
    assert [w.name for w in point.trainable_weights] == [
        "kernel_mean",
        "kernel_rho",
        "recurrent_kernel",
    ]
    assert len(point.losses) == 1 and point.recurrent_kernel_stddev is None
    assert point.cell._prunable_variables() == [
        point.kernel_mean,
        point.cell.recurrent_kernel,
    ]


@pytest.mark.parametrize("family,estimator", CASES)
def test_kl_added_once_per_call_whatever_the_length(family, estimator):
    layer = layer_class(family, estimator)(3, kl_weight=0.25, seed=1)
    layer(sequences(steps=1))
    short = sum(testing.to_numpy(loss) for loss in layer.losses)
    layer(sequences(steps=9), training=True)
    long = sum(testing.to_numpy(loss) for loss in layer.losses)
    expected = 0.25 * testing.to_numpy(layer.kl_divergence())
    np.testing.assert_allclose([short, long], [expected, expected], rtol=1e-5)


@pytest.mark.parametrize("family,estimator", CASES)
def test_mean_inference_equals_keras_twin(family, estimator):
    """Masking, go_backwards, both GRU conventions; the layer and a bare cell in `RNN`."""
    x = sequences(steps=6)
    mask = np.ones((4, 6), bool)
    mask[1, 4:] = False
    mask[3, 2:] = False
    options = (
        [{}] if family != "GRU" else [{"reset_after": True}, {"reset_after": False}]
    )
    loop = dict(return_sequences=True, go_backwards=True)
    for extra in options:
        layer = layer_class(family, estimator)(5, seed=1, **loop, **extra)
        layer(x)
        randomize_bias(layer)
        twin = twin_of(layer, family, **loop)
        expected = testing.to_numpy(twin(x, mask=mask))
        np.testing.assert_allclose(
            testing.to_numpy(layer(x, mask=mask)), expected, atol=2e-6
        )
        rnn = keras.layers.RNN(
            cell_class(family, estimator)(5, seed=1, **extra), **loop
        )
        rnn(x)
        rnn.set_weights(layer.get_weights())
        np.testing.assert_allclose(
            testing.to_numpy(rnn(x, mask=mask)), expected, atol=2e-6
        )


@pytest.mark.parametrize("family,estimator", CASES)
def test_vanishing_stddev_samples_the_keras_twin(family, estimator):
    layer = layer_class(family, estimator)(
        5, kernel_stddev_initializer=1e-6, return_sequences=True, seed=1
    )
    x = sequences()
    layer(x)
    randomize_bias(layer)
    expected = testing.to_numpy(twin_of(layer, family, return_sequences=True)(x))
    sampled = testing.to_numpy(layer(x, training=True))
    np.testing.assert_allclose(sampled, expected, atol=1e-4)
    assert not np.array_equal(sampled, expected)


@pytest.mark.parametrize("family,estimator", CASES)
def test_same_seed_same_sample(family, estimator):
    x = sequences()
    first = layer_class(family, estimator)(4, kernel_stddev_initializer=0.1, seed=3)
    second = layer_class(family, estimator)(4, kernel_stddev_initializer=0.1, seed=3)
    other = layer_class(family, estimator)(4, kernel_stddev_initializer=0.1, seed=4)
    first(x), second(x), other(x)
    second.set_weights(first.get_weights())
    other.set_weights(first.get_weights())
    a = testing.to_numpy(first(x, training=True))
    np.testing.assert_array_equal(a, testing.to_numpy(second(x, training=True)))
    assert not np.allclose(a, testing.to_numpy(other(x, training=True)), atol=1e-4)
    # Mean inference is deterministic.
    np.testing.assert_array_equal(
        testing.to_numpy(first(x)), testing.to_numpy(first(x))
    )


@pytest.mark.parametrize("family,estimator", CASES)
def test_masked_steps_do_not_change_the_sample(family, estimator):
    """Padding a sequence with masked steps gives the same sample (same seed).

    Both calls pass a mask, so both run the same loop body: LRT keys its noise
    by the bits of the state, which another program may round differently.
    """
    x = sequences(steps=4)
    padded = np.concatenate([x, sequences(steps=3, seed=1)], axis=1)
    mask = np.concatenate([np.ones((4, 4), bool), np.zeros((4, 3), bool)], axis=1)
    short = layer_class(family, estimator)(4, kernel_stddev_initializer=0.1, seed=3)
    long = layer_class(family, estimator)(4, kernel_stddev_initializer=0.1, seed=3)
    short(x), long(padded)
    long.set_weights(short.get_weights())
    np.testing.assert_allclose(
        testing.to_numpy(long(padded, mask=mask, training=True)),
        testing.to_numpy(short(x, mask=mask[:, :4], training=True)),
        atol=1e-6,
    )


@pytest.mark.parametrize(
    "family",
    [
        family
        if testing.BACKEND != "jax" or family == "LSTM"
        else pytest.param(family, marks=pytest.mark.slow)
        for family in TWINS
    ],
)
def test_unroll_gives_the_same_flipout_sample(family):
    x = sequences()
    looped = layer_class(family, "Flipout")(4, kernel_stddev_initializer=0.1, seed=3)
    unrolled = layer_class(family, "Flipout")(
        4, kernel_stddev_initializer=0.1, seed=3, unroll=True
    )
    looped(x), unrolled(x)
    unrolled.set_weights(looped.get_weights())
    np.testing.assert_allclose(
        testing.to_numpy(unrolled(x, training=True)),
        testing.to_numpy(looped(x, training=True)),
        atol=1e-5,
    )
    twin = twin_of(looped, family, unroll=True)
    np.testing.assert_allclose(
        testing.to_numpy(unrolled(x)), testing.to_numpy(twin(x)), atol=2e-6
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_stateful_carries_state_like_keras(estimator):
    x = sequences(batch=2)
    layer = layer_class("LSTM", estimator)(3, stateful=True, seed=1)
    keras.Sequential([keras.Input((5, 3), batch_size=2), layer])
    twin = keras.layers.LSTM(3, use_cudnn=False, stateful=True)
    keras.Sequential([keras.Input((5, 3), batch_size=2), twin])
    twin.set_weights(twin_of(layer, "LSTM").get_weights())
    for _ in range(2):
        np.testing.assert_allclose(
            testing.to_numpy(layer(x)), testing.to_numpy(twin(x)), atol=2e-6
        )
    layer.reset_state()
    twin.reset_state()
    np.testing.assert_allclose(
        testing.to_numpy(layer(x)), testing.to_numpy(twin(x)), atol=2e-6
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_dropout_masks_are_shared_across_steps(estimator):
    """A linear cell without recurrence on a constant input: one mask per sequence."""
    layer = layer_class("SimpleRNN", estimator)(
        6,
        activation=None,
        use_bias=False,
        kernel_stddev_initializer=1e-6,
        recurrent_initializer="zeros",
        stochastic_recurrent_kernel=False,
        dropout=0.5,
        return_sequences=True,
        seed=2,
    )
    x = np.repeat(sequences(batch=8, steps=1, features=5), 4, axis=1)
    outputs = testing.to_numpy(layer(x, training=True))
    np.testing.assert_allclose(outputs, np.repeat(outputs[:, :1], 4, axis=1), atol=1e-4)
    assert np.abs(outputs - testing.to_numpy(layer(x))).max() > 0.1


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"units": 0}, ValueError, "Argument `units` must be a positive integer"),
        ({"dropout": 1.0}, ValueError, r"`dropout` must be a float in \[0, 1\)"),
        ({"recurrent_dropout": -0.1}, ValueError, "Received: recurrent_dropout=-0.1"),
        (
            {"stochastic_recurrent_kernel": 1},
            TypeError,
            "stochastic_recurrent_kernel=1",
        ),
        (
            {
                "stochastic_recurrent_kernel": False,
                "recurrent_kernel_stddev_initializer": 0.1,
            },
            ValueError,
            "Received: recurrent_kernel_stddev_initializer=0.1",
        ),
        (
            {"kernel_stddev_initializer": -1.0},
            ValueError,
            "kernel_stddev_initializer=-1.0",
        ),
        (
            {"recurrent_kernel_stddev_initializer": 0.0},
            ValueError,
            "recurrent_kernel_stddev_initializer=0.0",
        ),
        ({"kl_weight": -1.0}, ValueError, "kl_weight=-1.0"),
        ({"inference": "median"}, ValueError, "inference='median'"),
        ({"seed": "7"}, TypeError, "seed='7'"),
        ({"prior": "laplace"}, ValueError, "prior='laplace'"),
        ({"unit_forget_bias": None}, TypeError, "unit_forget_bias=None"),
        ({"use_bias": "yes"}, TypeError, "use_bias='yes'"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    kwargs = {"units": 3} | kwargs
    with pytest.raises(error, match=match):
        ks.layers.LSTMFlipout(**kwargs)
    with pytest.raises(error, match=match):
        ks.layers.LSTMLocalReparameterizationCell(**kwargs)


def test_bad_reset_after():
    with pytest.raises(TypeError, match="Received: reset_after=1"):
        ks.layers.GRUFlipout(3, reset_after=1)


def all_layers_model(estimators=ESTIMATORS, cases=ALL_CASES, dtype=None):
    """Every layer and every cell (in `keras.layers.RNN`) of `estimators`, side by side."""
    inputs = keras.Input((5, 3))
    branches = []
    for i, (family, estimator) in enumerate(ALL_CASES):
        if estimator not in estimators or (family, estimator) not in cases:
            continue
        kw = dict(kernel_stddev_initializer=0.05, kl_weight=1e-3, seed=i, dtype=dtype)
        branches.append(layer_class(family, estimator)(4, dropout=0.1, **kw)(inputs))
        cell = cell_class(family, estimator)(4, recurrent_dropout=0.1, **kw)
        branches.append(keras.layers.RNN(cell, dtype=dtype)(inputs))
    outputs = keras.layers.Dense(2, dtype=dtype)(keras.layers.Concatenate()(branches))
    return keras.Model(inputs, outputs)


# One model per estimator (3 layers and 3 cells each): compiling the train and
# predict functions of these loops dominates the suite's time, and two models
# let `pytest -n 2` compile them in parallel.
@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_compiled_fit_predict_and_model_helpers(estimator, tmp_path):
    model = all_layers_model([estimator])
    x, y = (
        sequences(batch=8),
        np.random.default_rng(1).normal(size=(8, 2)).astype("float32"),
    )
    cells = ks.inference.stochastic_layers(model)
    assert len(cells) == 6
    rho = [testing.to_numpy(cell.recurrent_posterior.rho) for cell in cells]
    loss = testing.fit_steps(model, x, y, steps=2, batch_size=4)
    assert np.isfinite(loss)
    # Gradients reach both standard deviations of every cell.
    assert all(
        not np.array_equal(before, testing.to_numpy(cell.recurrent_posterior.rho))
        for before, cell in zip(rho, cells)
    )

    mean = model.predict(x, verbose=0)
    np.testing.assert_array_equal(mean, model.predict(x, verbose=0))
    ks.set_inference(model, "sample")
    sampled = model.predict(x, verbose=0)
    assert not np.allclose(sampled, mean, atol=1e-5)
    ks.set_inference(model, "mean")
    np.testing.assert_array_equal(mean, model.predict(x, verbose=0))
    mc = ks.predict_mc(model, x, num_samples=3)
    assert mc.shape == mean.shape and not np.allclose(mc, mean, atol=1e-5)

    ks.set_kl_weight(model, 0.5)
    assert all(cell.kl_weight == 0.5 for cell in cells)
    kl = testing.to_numpy(ks.kl_divergence(model))
    np.testing.assert_allclose(
        kl, sum(testing.to_numpy(cell.kl_divergence()) for cell in cells), rtol=1e-6
    )

    reloaded = testing.save_and_reload(model, tmp_path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), mean, atol=1e-6)
    assert [c.inference for c in ks.inference.stochastic_layers(reloaded)] == [
        "mean"
    ] * 6


# Eager calls on JAX compile a `lax.scan` per recurrent layer and call, so
# JAX's default run checks the JAX_DEFAULT cases (a layer and a cell each);
# `-m slow` runs every class.
MIXED_CASES = [
    (estimator, "all")
    if testing.BACKEND != "jax"
    else pytest.param(estimator, "all", marks=pytest.mark.slow)
    for estimator in ESTIMATORS
]
if testing.BACKEND == "jax":
    MIXED_CASES += [(estimator, "default") for estimator in ESTIMATORS]


@pytest.mark.parametrize("estimator,cases", MIXED_CASES)
def test_mixed_float16(estimator, cases):
    keras.config.set_dtype_policy("mixed_float16")
    model = all_layers_model([estimator], ALL_CASES if cases == "all" else JAX_DEFAULT)
    x = sequences()
    for training in (True, False):
        outputs = model(x, training=training)
        assert outputs.dtype == "float16"
        assert np.isfinite(testing.to_numpy(outputs)).all()
    assert all(
        keras.backend.standardize_dtype(loss.dtype) == "float32"
        for loss in model.losses
    )
    assert all(
        cell.kernel_mean.dtype == "float32"
        for cell in ks.inference.stochastic_layers(model)
    )
