"""Leaving `kl_weight` unset trains with 1.0, and says so once per layer."""

import warnings

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests.testing import config_roundtrip

MESSAGE = "training with `kl_weight` not set"


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 6, 4)).astype("float32"), rng.integers(0, 3, n)


def _fit(model, epochs=1):
    x, y = _data()
    if len(model.inputs[0].shape) == 2:
        x = x[:, 0]
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, batch_size=8, epochs=epochs, verbose=0)
    return [w for w in caught if MESSAGE in str(w.message)]


def _dense_model(**kwargs):
    return keras.Sequential(
        [
            keras.Input((4,)),
            ks.layers.DenseFlipout(5, seed=0, name="hidden", **kwargs),
            ks.layers.DenseLocalReparameterization(3, seed=1, name="head", **kwargs),
        ]
    )


def test_each_layer_warns_once_naming_itself_and_the_remedy():
    model = _dense_model()
    caught = _fit(model, epochs=2)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert "'head'" in messages[0] and "'hidden'" in messages[1]
    assert "kl_weight=1 / num_train_examples" in messages[0]
    assert "ks.set_kl_weight" in messages[0]
    # The unset value is still 1.0 and stays unset in the config.
    layer = model.get_layer("hidden")
    assert layer.kl_weight == 1.0
    assert layer.get_config()["kl_weight"] is None
    assert config_roundtrip(layer).get_config()["kl_weight"] is None


@pytest.mark.parametrize(
    "setting",
    ["explicit", "explicit_one", "set_kl_weight"],
)
def test_any_explicit_value_silences_it(setting):
    if setting == "explicit":
        model = _dense_model(kl_weight=1 / 32)
    elif setting == "explicit_one":
        model = _dense_model(kl_weight=1.0)
    else:
        model = _dense_model()
        ks.set_kl_weight(model, 1 / 32)
    assert _fit(model) == []
    assert model.get_layer("hidden").get_config()["kl_weight"] is not None


def test_recurrent_layers_warn_and_variance_layers_do_not():
    recurrent = keras.Sequential(
        [keras.Input((6, 4)), ks.layers.LSTMFlipout(3, seed=0, name="lstm")]
    )
    caught = _fit(recurrent)
    assert len(caught) == 1 and "'lstm'" in str(caught[0].message)
    variance = keras.Sequential(
        [keras.Input((4,)), ks.layers.DenseVariance(3, inference="sample", seed=0)]
    )
    assert _fit(variance) == []


def test_inference_does_not_warn_and_annealing_an_unset_target_does():
    model = _dense_model()
    x, _ = _data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(x[:, 0], verbose=0)
        ks.predict_mc(model, x[:, 0], num_samples=2)
    assert not [w for w in caught if MESSAGE in str(w.message)]
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    annealing = ks.callbacks.KLAnnealing(warmup_epochs=2)
    annealing.set_model(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        annealing.on_train_begin()
    assert len([w for w in caught if MESSAGE in str(w.message)]) == 2
