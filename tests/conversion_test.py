"""`ks.to_bayesian` and `ks.to_deterministic`.

A converted model must predict, in "mean" inference, what the trained model
predicted (float tolerance), for every supported layer kind and estimator;
keep the layers' options; fit, save and reload; and come back to plain Keras.
The "trained" weights of the small models are random draws (biases included),
which is all the conversion sees; the functional CNN is really trained.
"""

import json
import math
import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from keras_stochastic import conversion
from keras_stochastic.layers.base_stochastic import StochasticLayer
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNN
from tests import testing

ESTIMATORS = conversion.ESTIMATORS
RECURRENT = conversion.RECURRENT_ESTIMATORS
ATOL = 1e-5


def _randomize(model, seed=0, scale=0.5):
    """Gives every weight random values: stands in for training (biases too)."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(0.0, scale, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    return model


def _dense():
    return keras.Sequential(
        [
            keras.Input((5,)),
            keras.layers.Dense(4, activation="relu"),
            keras.layers.Dense(3, use_bias=False),
        ]
    ), (5,)


def _conv2d():
    return keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh"),
            keras.layers.Conv2D(2, 2, groups=2),
        ]
    ), (6, 6, 2)


BATCH = 4
# (name, shape without the batch axis) of the inputs of `_every_kind`.
INPUTS = {
    "vector": (5,),
    "sequence": (4, 3),
    "image": (6, 6, 2),
    "volume": (4, 4, 4, 2),
}
RECURRENT_OPTIONS = (
    "units",
    "return_sequences",
    "return_state",
    "go_backwards",
    "stateful",
    "unroll",
)


def _every_kind():
    """One functional model with every kind of layer that converts.

    Compiling a stochastic model costs seconds on JAX, so the kinds share one
    model (one compilation per estimator). The recurrent layers use
    non-default options; the stateful one fixes the batch size.
    """
    inputs = {
        name: keras.Input(shape, batch_size=BATCH, name=name)
        for name, shape in INPUTS.items()
    }
    outputs = []
    x = keras.layers.Dense(4, activation="relu")(inputs["vector"])
    outputs.append(keras.layers.Dense(3, use_bias=False)(x))
    x = keras.layers.Conv1D(4, 3, padding="causal", dilation_rate=2)(inputs["sequence"])
    outputs.append(keras.layers.Flatten()(x))
    x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="tanh")(
        inputs["image"]
    )
    outputs.append(keras.layers.Flatten()(keras.layers.Conv2D(2, 2, groups=2)(x)))
    x = keras.layers.Conv3D(3, 2, activation="relu")(inputs["volume"])
    outputs.append(keras.layers.Flatten()(x))

    sequence = inputs["sequence"]
    x = keras.layers.LSTM(
        4,
        return_sequences=True,
        go_backwards=True,
        dropout=0.2,
        recurrent_dropout=0.1,
        unit_forget_bias=False,
        recurrent_activation="hard_sigmoid",
        name="lstm",
    )(sequence)
    x, state = keras.layers.GRU(3, reset_after=False, return_state=True, name="gru")(x)
    outputs += [x, state]
    rnn = keras.layers.SimpleRNN(
        2, stateful=True, unroll=True, activation="relu", name="simple_rnn"
    )
    outputs.append(rnn(sequence))
    # Cells in keras.layers.RNN (GRUCell: reset_after=True, the default).
    x = keras.layers.RNN(keras.layers.LSTMCell(3), return_sequences=True)(sequence)
    outputs.append(keras.layers.RNN(keras.layers.GRUCell(2))(x))
    return keras.Model(inputs, outputs, name="every_kind")


def _data(shape, n=BATCH, seed=1):
    return np.random.default_rng(seed).normal(size=(n,) + shape).astype("float32")


def _reset_states(model):
    for layer in ks._compat.flatten_layers(model):
        if getattr(layer, "stateful", False):
            layer.reset_states()


def _predict(model, x):
    """Mean-mode predictions, from reset states.

    Eager on TensorFlow (cheaper than tracing `predict`); compiled on JAX,
    where an eager call compiles each stochastic layer's `ops.cond` anew,
    which costs more than compiling one function.
    """
    _reset_states(model)
    stochastic = any(
        isinstance(layer, StochasticLayer) for layer in ks._compat.flatten_layers(model)
    )
    if testing.BACKEND == "jax" and stochastic:
        outputs = model.predict(x, batch_size=BATCH, verbose=0)
    else:
        outputs = keras.tree.map_structure(testing.to_numpy, model(x, training=False))
    _reset_states(model)
    return outputs


def _assert_same_outputs(actual, expected):
    if not isinstance(expected, (list, tuple)):
        actual, expected = [actual], [expected]
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, atol=ATOL)


def _is_plain_keras(model):
    return all(
        type(layer).__module__.startswith("keras.")
        for layer in ks._compat.flatten_layers(model)
    )


@pytest.fixture(scope="module")
def every_kind():
    keras.utils.set_random_seed(3)
    model = _randomize(_every_kind(), scale=0.4)
    x = {name: _data(shape, seed=i) for i, (name, shape) in enumerate(INPUTS.items())}
    return model, x, _predict(model, x)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_every_layer_kind_predicts_the_trained_model(every_kind, estimator):
    model, x, expected = every_kind
    recurrent = estimator in RECURRENT
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bayesian, report = ks.to_bayesian(model, estimator, seed=3, return_report=True)
    left_warning = [w for w in caught if "left layers with kernels" in str(w.message)]
    assert bool(left_warning) is not recurrent

    sources = ks.kernels.layers_with_kernels(model)
    twins = ks.kernels.layers_with_kernels(bayesian)
    stochastic = [t for t in twins if isinstance(t, StochasticLayer)]
    # Dense x2, Conv1D, Conv2D x2, Conv3D; 5 recurrent layers (cells).
    assert len(stochastic) == (11 if recurrent else 6)
    assert len(report.converted) == len(stochastic)
    # The kernels are the posterior means (or copied, when left), exactly.
    for source, twin in zip(sources, twins, strict=True):
        for kernel, mean in zip(
            ks.kernels.kernel_variables(source),
            ks.kernels.kernel_variables(twin),
            strict=True,
        ):
            np.testing.assert_array_equal(
                testing.to_numpy(mean), testing.to_numpy(kernel)
            )
    _assert_same_outputs(_predict(bayesian, x), expected)
    # Sampling perturbs the outputs: the twins are really stochastic (the
    # switch reaches the compiled predict function).
    ks.set_inference(bayesian, "sample")
    sampled = _predict(bayesian, x)
    assert max(np.abs(s - e).max() for s, e in zip(sampled, expected)) > 1e-6
    ks.set_inference(bayesian, "mean")

    for name in ("lstm", "gru", "simple_rnn"):
        source, twin = model.get_layer(name), bayesian.get_layer(name)
        assert isinstance(twin, BaseStochasticRNN) is recurrent
        for option in RECURRENT_OPTIONS:
            assert getattr(twin, option) == getattr(source, option), (name, option)
        for option in ("dropout", "recurrent_dropout", "activation", "use_bias"):
            assert getattr(twin.cell, option) == getattr(source.cell, option)
    if recurrent:
        assert type(bayesian.get_layer("lstm")).__name__.startswith("LSTM")
        assert bayesian.get_layer("gru").reset_after is False
        cells = [t for t in stochastic if isinstance(t, ks.layers.GRUFlipoutCell)]
        cells += [
            t
            for t in stochastic
            if isinstance(t, ks.layers.GRULocalReparameterizationCell)
        ]
        assert [cell.reset_after for cell in cells] == [False, True]
        assert bayesian.get_layer("lstm").unit_forget_bias is False
        assert bayesian.get_layer("lstm").recurrent_activation is (
            keras.activations.hard_sigmoid
        )
        # Distinct seeds per converted layer.
        seeds = [t.seed for t in stochastic]
        assert len(set(seeds)) == len(seeds)
    else:
        notes = {r.name: r.note for r in report.left}
        assert f"no {estimator} twin" in notes["lstm"]

    plain = ks.to_deterministic(bayesian)
    assert _is_plain_keras(plain)
    assert [type(layer) for layer in plain.layers] == [
        type(layer) for layer in model.layers
    ]
    for name in ("lstm", "gru", "simple_rnn"):
        for option in RECURRENT_OPTIONS:
            assert getattr(plain.get_layer(name), option) == getattr(
                model.get_layer(name), option
            )
    _assert_same_outputs(_predict(plain, x), expected)


def _functional_cnn():
    inputs = keras.Input((8, 8, 2))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    y = keras.layers.BatchNormalization()(x)
    y = keras.layers.Conv2D(4, 3, padding="same")(y)
    x = keras.layers.Add()([x, y])  # the skip connection
    x = keras.layers.Dropout(0.3)(x)
    pooled = keras.layers.GlobalAveragePooling2D()(x)
    maxed = keras.layers.GlobalMaxPooling2D()(x)
    x = keras.layers.Concatenate()([pooled, maxed])
    outputs = keras.layers.Dense(3)(x)
    return keras.Model(inputs, outputs, name="cnn")


@pytest.fixture(scope="module")
def trained_cnn():
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(32, 8, 8, 2)).astype("float32")
    y = (x[..., 0].mean(axis=(1, 2)) > 0).astype("int32") + (
        x[..., 1].mean(axis=(1, 2)) > 0
    )
    model = _functional_cnn()
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    return model, x, y


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_trained_functional_cnn_round_trip(trained_cnn, estimator, tmp_path):
    model, x, y = trained_cnn
    original = [testing.to_numpy(w).copy() for w in model.weights]
    expected = model.predict(x, verbose=0)
    bayesian = ks.to_bayesian(model, estimator, kl_weight=1 / len(x), moped_delta=0.1)
    assert bayesian is not model
    np.testing.assert_allclose(bayesian.predict(x, verbose=0), expected, atol=ATOL)
    names = {type(layer).__name__ for layer in bayesian.layers}
    assert {"BatchNormalization", "Dropout", "Add", "Concatenate"} <= names
    assert sum(isinstance(layer, StochasticLayer) for layer in bayesian.layers) == 3
    # BatchNormalization's statistics came along.
    (bn,) = [
        lay
        for lay in bayesian.layers
        if isinstance(lay, keras.layers.BatchNormalization)
    ]
    (source_bn,) = [
        lay for lay in model.layers if isinstance(lay, keras.layers.BatchNormalization)
    ]
    np.testing.assert_array_equal(
        testing.to_numpy(bn.moving_variance),
        testing.to_numpy(source_bn.moving_variance),
    )

    # Fine-tunes (compiled like the source), with the KL in the loss.
    assert bayesian.compiled
    first = bayesian.layers[1]
    before = testing.to_numpy(first.kernel_mean).copy()
    history = bayesian.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
    assert not np.allclose(testing.to_numpy(first.kernel_mean), before)
    # The source model is untouched.
    for value, weight in zip(original, model.weights, strict=True):
        np.testing.assert_array_equal(testing.to_numpy(weight), value)

    tuned = bayesian.predict(x, verbose=0)
    assert not np.allclose(tuned, expected)
    reloaded = testing.save_and_reload(bayesian, tmp_path)
    assert [type(lay) for lay in reloaded.layers] == [
        type(lay) for lay in bayesian.layers
    ]
    for saved, restored in zip(bayesian.weights, reloaded.weights, strict=True):
        assert saved.path == restored.path
        np.testing.assert_array_equal(
            testing.to_numpy(restored), testing.to_numpy(saved)
        )

    # Back to plain Keras, from the reloaded model: the fine-tuned means.
    plain = ks.to_deterministic(reloaded)
    assert _is_plain_keras(plain)
    np.testing.assert_allclose(plain.predict(x, verbose=0), tuned, atol=ATOL)


def test_nested_models_and_shared_layers():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(4, activation="relu", name="in_dense")],
        name="inner",
    )
    shared = keras.layers.Dense(4, name="shared")
    inputs = keras.Input((4,))
    x = inner(inputs)
    x = keras.layers.Add()([shared(x), shared(inputs)])
    outputs = keras.layers.Dense(2, name="head")(x)
    model = _randomize(keras.Model(inputs, outputs))
    x = _data((4,))
    expected = _predict(model, x)

    bayesian = ks.to_bayesian(model, "local_reparameterization")
    np.testing.assert_allclose(_predict(bayesian, x), expected, atol=ATOL)
    nested = bayesian.get_layer("inner")
    assert isinstance(nested, keras.Sequential)
    assert isinstance(nested.layers[0], ks.layers.DenseLocalReparameterization)
    # The shared layer stays one layer.
    twins = [lay for lay in bayesian.layers if lay.name == "shared"]
    assert len(twins) == 1 and isinstance(
        twins[0], ks.layers.DenseLocalReparameterization
    )

    # Naming the sub-model selects its layers only.
    partial, report = ks.to_bayesian(model, layers="inner", return_report=True)
    assert [r.name for r in report.converted] == ["inner/in_dense"]
    assert isinstance(partial.get_layer("inner").layers[0], ks.layers.DenseFlipout)
    assert type(partial.get_layer("head")) is keras.layers.Dense
    np.testing.assert_allclose(_predict(partial, x), expected, atol=ATOL)


def test_layer_selection():
    model, shape = _dense()
    _randomize(model)
    last = model.layers[-1].name
    x = _data(shape)
    expected = _predict(model, x)

    by_name = ks.to_bayesian(model, layers=last)
    assert type(by_name.layers[0]) is keras.layers.Dense
    assert isinstance(by_name.layers[-1], ks.layers.DenseFlipout)
    np.testing.assert_allclose(_predict(by_name, x), expected, atol=ATOL)

    by_predicate = ks.to_bayesian(model, layers=lambda layer: layer.name == last)
    assert [type(lay) for lay in by_predicate.layers] == [
        type(lay) for lay in by_name.layers
    ]

    by_class = ks.to_bayesian(model, "reparameterization", layers=[keras.layers.Dense])
    assert all(
        isinstance(lay, ks.layers.DenseReparameterization) for lay in by_class.layers
    )
    with pytest.raises(ValueError, match="`layers`.*not in the model.*'nope'"):
        ks.to_bayesian(model, layers=["nope"])
    with pytest.raises(TypeError, match="`layers`"):
        ks.to_bayesian(model, layers=3)


def test_selected_layers_that_cannot_be_converted_raise():
    inputs = keras.Input((5, 3))
    x = keras.layers.LSTM(4, name="lstm")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2, name="head")(x)
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="`layers`.*'lstm'.*no reparameterization"):
        ks.to_bayesian(model, "reparameterization", layers=["lstm", "head"])
    with pytest.raises(ValueError, match="`layers`.*'bn'.*BatchNormalization"):
        ks.to_bayesian(model, layers="bn")

    # Unselected, the LSTM is left, which the warning and the report say.
    with pytest.warns(UserWarning, match="left layers with kernels.*'lstm'"):
        bayesian, report = ks.to_bayesian(
            model, "variational_dropout", return_report=True
        )
    assert type(bayesian.get_layer("lstm")) is keras.layers.LSTM
    assert isinstance(bayesian.get_layer("head"), ks.layers.DenseVariationalDropout)
    left = {r.name: r.note for r in report.left}
    assert "no variational_dropout twin" in left["lstm"]
    assert [r.name for r in report.converted] == ["head"]


def test_report_and_verbose(capsys):
    model, _ = _dense()
    ks.to_bayesian(model)
    assert capsys.readouterr().out == ""
    bayesian = ks.to_bayesian(model, layers=model.layers[0].name, verbose=1)
    printed = capsys.readouterr().out
    assert "to_bayesian: 1 layer(s) converted" in printed
    assert "-> DenseFlipout" in printed and "not selected" in printed
    _, report = ks.to_bayesian(model, return_report=True)
    assert [(r.source, r.target) for r in report.converted] == [
        ("Dense", "DenseFlipout"),
        ("Dense", "DenseFlipout"),
    ]
    assert str(report).splitlines()[0] == "to_bayesian: 2 layer(s) converted, 0 left"
    _, back = ks.to_deterministic(bayesian, return_report=True, verbose=1)
    assert "to_deterministic: 1 layer(s) converted" in capsys.readouterr().out
    assert [r.target for r in back.converted] == ["Dense"]


def _softplus_inverse_check(layer, expected):
    np.testing.assert_allclose(
        testing.to_numpy(layer.kernel_stddev), expected, rtol=1e-5, atol=1e-9
    )


def test_kernel_stddev_constant_and_moped():
    model, shape = _dense()
    _randomize(model)
    kernel = model.layers[0].kernel
    values = testing.to_numpy(kernel).copy()
    values[0, 0] = 0.0  # a pruned weight: MOPED's floor keeps it positive
    kernel.assign(values)

    constant = ks.to_bayesian(model, kernel_stddev=0.05)
    _softplus_inverse_check(constant.layers[0], np.full(values.shape, 0.05))
    assert constant.layers[0].get_config()["kernel_stddev_initializer"]["config"] == {
        "value": 0.05
    }

    moped = ks.to_bayesian(model, "reparameterization", moped_delta=0.1)
    expected = np.maximum(0.1 * np.abs(values), conversion.MOPED_STDDEV_FLOOR)
    _softplus_inverse_check(moped.layers[0], expected)
    assert testing.to_numpy(moped.layers[0].kernel_stddev)[0, 0] > 0

    default = ks.to_bayesian(model)
    _softplus_inverse_check(default.layers[0], np.full(values.shape, 0.01))


def test_variational_dropout_starts_with_small_noise_and_no_mask():
    model, shape = _dense()
    _randomize(model)
    kernel = model.layers[0].kernel
    values = testing.to_numpy(kernel).copy()
    values[0, :] = [1e-6, -1e-4, 0.0, 3e-3]  # tiny weights: must stay unmasked
    kernel.assign(values)
    x = _data(shape)
    expected = _predict(model, x)

    moped = ks.to_bayesian(model, "variational_dropout", moped_delta=0.1)
    layer = moped.layers[0]
    log_alpha = testing.to_numpy(layer.log_alpha)
    large = np.abs(values) > 1e-2
    np.testing.assert_allclose(log_alpha[large], 2 * math.log(0.1), atol=1e-4)
    assert log_alpha.max() < layer.threshold
    np.testing.assert_allclose(_predict(moped, x), expected, atol=ATOL)

    constant = ks.to_bayesian(model, "variational_dropout", kernel_stddev=0.01)
    layer = constant.layers[0]
    log_alpha = testing.to_numpy(layer.log_alpha)
    # sigma^2 = 0.01^2 where that keeps log alpha below threshold - 1.
    theta_squared = np.square(values.astype("float64")) + 1e-8
    wanted = np.clip(2 * math.log(0.01) - np.log(theta_squared), -8.0, 2.0)
    np.testing.assert_allclose(log_alpha, wanted, atol=1e-3)
    assert log_alpha.max() <= layer.threshold - conversion.VD_LOG_ALPHA_MARGIN + 1e-4
    np.testing.assert_allclose(_predict(constant, x), expected, atol=ATOL)

    for parameterization in ("weight", "neuron", "layer"):
        other = ks.to_bayesian(
            model,
            "variational_dropout",
            moped_delta=0.2,
            layer_kwargs={"parameterization": parameterization},
        )
        np.testing.assert_allclose(
            testing.to_numpy(other.layers[0].log_alpha), 2 * math.log(0.2), atol=1e-5
        )
        np.testing.assert_allclose(_predict(other, x), expected, atol=ATOL)


def test_centered_prior_kl_and_saving(tmp_path):
    model, shape = _dense()
    _randomize(model)
    trained = testing.to_numpy(model.layers[0].kernel)
    bayesian = ks.to_bayesian(
        model, prior=ks.priors.CenteredNormal(0.2), moped_delta=0.1, kl_weight=0.5
    )
    layer = bayesian.layers[0]
    assert layer.kl_weight == 0.5
    np.testing.assert_array_equal(testing.to_numpy(layer.posterior.prior_mean), trained)
    # At the start the posterior mean is the centre: KL from the stddevs alone.
    stddev = np.maximum(0.1 * np.abs(trained.astype("float64")), 1e-5)
    closed_form = np.sum(np.log(0.2 / stddev) + stddev**2 / (2 * 0.2**2) - 0.5)
    np.testing.assert_allclose(
        float(testing.to_numpy(layer.kl_divergence())), closed_form, rtol=1e-4
    )

    x = _data(shape, n=16)
    testing.fit_steps(bayesian, x, np.zeros((16, 3), "float32"), steps=3, batch_size=4)
    mean = testing.to_numpy(layer.kernel_mean).astype("float64")
    assert not np.allclose(mean, trained)
    # The centre is not trained.
    np.testing.assert_array_equal(testing.to_numpy(layer.posterior.prior_mean), trained)
    stddev = testing.to_numpy(layer.kernel_stddev).astype("float64")
    closed_form = np.sum(
        np.log(0.2 / stddev) + (stddev**2 + (mean - trained) ** 2) / (2 * 0.04) - 0.5
    )
    kl = float(testing.to_numpy(layer.kl_divergence()))
    np.testing.assert_allclose(kl, closed_form, rtol=1e-4)

    reloaded = testing.save_and_reload(bayesian, tmp_path)
    restored = reloaded.layers[0]
    assert isinstance(restored.prior, ks.priors.CenteredNormal)
    np.testing.assert_array_equal(
        testing.to_numpy(restored.posterior.prior_mean), trained
    )
    np.testing.assert_allclose(
        float(testing.to_numpy(restored.kl_divergence())), kl, rtol=1e-6
    )


def test_bad_arguments():
    model, _ = _dense()
    with pytest.raises(ValueError, match="`estimator`.*Received: estimator='mc'"):
        ks.to_bayesian(model, "mc")
    with pytest.raises(ValueError, match="`kernel_stddev`.*`moped_delta`"):
        ks.to_bayesian(model, kernel_stddev=0.1, moped_delta=0.1)
    with pytest.raises(ValueError, match="`moped_delta`"):
        ks.to_bayesian(model, moped_delta=-1.0)
    with pytest.raises(ValueError, match="variational dropout prior"):
        ks.to_bayesian(model, "variational_dropout", prior=ks.priors.Normal(1.0))
    with pytest.raises(ValueError, match="GaussianPrior"):
        ks.to_bayesian(model, prior="log_uniform")

    nothing = keras.Sequential(
        [
            keras.Input((4, 4, 1)),
            keras.layers.BatchNormalization(),
            keras.layers.Flatten(),
        ]
    )
    with pytest.raises(ValueError, match="no layer that `to_bayesian` can convert"):
        ks.to_bayesian(nothing)
    with pytest.raises(ValueError, match="no layer that `to_bayesian` can convert"):
        ks.to_bayesian(_dense()[0], layers=[])
    with pytest.raises(ValueError, match="no keras_stochastic layer"):
        ks.to_deterministic(nothing)
    with pytest.raises(ValueError, match="built"):
        ks.to_bayesian(keras.Sequential([keras.layers.Dense(2)]))
    with pytest.raises(TypeError, match="Keras model"):
        ks.to_bayesian(keras.layers.Dense(2))


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def test_subclassed_models_are_refused():
    model = _Subclassed()
    model(np.zeros((1, 3), "float32"))
    for function in (ks.to_bayesian, ks.to_deterministic):
        with pytest.raises(ValueError, match="subclassed model.*_Subclassed"):
            function(model)


def test_to_deterministic_masks_variational_dropout_and_refuses_variance_layers():
    layer = ks.layers.DenseVariationalDropout(3, seed=0)
    model = keras.Sequential([keras.Input((4,)), layer])
    rng = np.random.default_rng(0)
    layer.kernel_mean.assign(rng.normal(0.0, 0.5, (4, 3)).astype("float32"))
    layer.bias.assign(rng.normal(0.0, 0.5, (3,)).astype("float32"))
    log_sigma2 = np.full((4, 3), -10.0, "float32")
    log_sigma2[1] = 5.0  # log alpha above the threshold: masked
    layer.posterior.log_variance.assign(log_sigma2)
    x = _data((4,))
    expected = _predict(model, x)
    plain = ks.to_deterministic(model)
    kernel = testing.to_numpy(plain.layers[0].kernel)
    assert np.all(kernel[1] == 0) and np.all(kernel[0] != 0)
    np.testing.assert_allclose(_predict(plain, x), expected, atol=ATOL)

    variance = keras.Sequential(
        [keras.Input((4,)), ks.layers.DenseVariance(3), keras.layers.Dense(2)]
    )
    with pytest.raises(ValueError, match="variance layer.*posterior mean is zero"):
        ks.to_deterministic(variance)
    # to_bayesian keeps already stochastic layers as they are.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        again, report = ks.to_bayesian(variance, return_report=True)
    assert type(again.layers[0]) is ks.layers.DenseVariance
    assert {r.name: r.note for r in report.left}[variance.layers[0].name] == (
        "already stochastic"
    )


_LOAD_WITHOUT_PACKAGE = """
import sys, json
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1], safe_mode=True)
x = np.load(sys.argv[2])
print(json.dumps({
    "outputs": keras.ops.convert_to_numpy(model(x, training=False)).tolist(),
    "imported": any(name.startswith("keras_stochastic") for name in sys.modules),
}))
"""


def test_deterministic_keras_file_loads_without_the_package(tmp_path):
    model, shape = _conv2d()
    _randomize(model)
    bayesian = ks.to_bayesian(model, "variational_dropout")
    plain = ks.to_deterministic(bayesian)
    x = _data(shape)
    path = tmp_path / "plain.keras"
    plain.save(path)
    np.save(tmp_path / "x.npy", x)
    assert "keras_stochastic" not in (tmp_path / "plain.keras").read_bytes().decode(
        "latin-1"
    )
    env = dict(os.environ, KERAS_BACKEND=testing.BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_WITHOUT_PACKAGE,
            str(path),
            str(tmp_path / "x.npy"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        check=True,
        timeout=120,
    )
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["imported"] is False
    np.testing.assert_allclose(
        np.asarray(loaded["outputs"]), _predict(model, x), atol=ATOL
    )


def test_deterministic_model_quantizes_to_int8():
    model = keras.Sequential(
        [
            keras.Input((16,)),
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(4),
        ]
    )
    _randomize(model, scale=0.3)
    x = _data((16,), n=8)
    bayesian = ks.to_bayesian(model, "flipout")
    plain = ks.to_deterministic(bayesian)
    expected = _predict(plain, x)
    plain.quantize("int8")
    assert [layer.quantization_mode for layer in plain.layers] == ["int8", "int8"]
    quantized = _predict(plain, x)
    assert not np.array_equal(quantized, expected)  # really quantized
    # int8 weights and activations: about 1% of the output scale.
    np.testing.assert_allclose(quantized, expected, atol=0.03 * np.abs(expected).max())


def test_deterministic_model_exports(tmp_path):
    tf = pytest.importorskip("tensorflow")
    model, shape = _dense()
    _randomize(model)
    plain = ks.to_deterministic(ks.to_bayesian(model, "local_reparameterization"))
    path = str(tmp_path / "exported")
    plain.export(path, verbose=False)
    x = _data(shape)
    loaded = tf.saved_model.load(path)
    served = loaded.serve(tf.constant(x))
    np.testing.assert_allclose(np.asarray(served), _predict(model, x), atol=ATOL)


def test_unset_kl_weight_stays_unset_and_warns_when_training():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    bayesian = ks.to_bayesian(model, seed=0)
    (layer,) = [l_ for l_ in bayesian.layers if isinstance(l_, ks.layers.DenseFlipout)]
    assert layer.get_config()["kl_weight"] is None and layer.kl_weight == 1.0
    bayesian.compile("sgd", "mse")
    x = np.zeros((8, 4), "float32")
    with pytest.warns(UserWarning, match="training with `kl_weight` not set"):
        bayesian.fit(x, np.zeros((8, 3)), verbose=0)
