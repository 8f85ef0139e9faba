"""Models saved by an earlier keras_stochastic still load, and behave the same.

The `.keras` files in `tests/fixtures/legacy` were saved (TensorFlow backend)
by the commit recorded in its `manifest.json`, with
`tests/fixtures/legacy/make_fixtures.py`; see that script for what each holds.
For every fixture, this test loads it with `safe_mode=True` and checks that
the mean-mode predictions, the public posterior views (`kernel_mean`,
`kernel_stddev`, `log_alpha`, ...), the layer classes and their key
arguments are those stored at save time; for the pruned model, that the
`GradientNoise` optimizer comes back with its pruning masks and flip counts.
"""

import contextlib
import functools
import json
import math
import pathlib
import warnings

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests import testing

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "legacy"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())["fixtures"]
with np.load(FIXTURES / "inputs_and_predictions.npz") as _npz:
    ARRAYS = dict(_npz)
NAMES = sorted(MANIFEST)
PRUNED = "pruned_mlp_gradient_noise"


def _load(name):
    with warnings.catch_warnings():
        # Variance layers warn when put in "mean" inference.
        warnings.simplefilter("ignore", UserWarning)
        return keras.saving.load_model(
            str(FIXTURES / MANIFEST[name]["file"]), safe_mode=True
        )


@functools.lru_cache(maxsize=None)
def load(name):
    """The reloaded fixture, shared by the read-only tests."""
    return _load(name)


def stochastic_layers(model):
    return [
        layer
        for layer in model.layers
        if type(layer).__module__.startswith("keras_stochastic")
    ]


def _uncompiled():
    """On JAX, runs `predict` op by op (see `mean_predictions`); elsewhere a no-op."""
    if testing.BACKEND == "jax":
        import jax

        return jax.disable_jit()
    return contextlib.nullcontext()


def mean_predictions(model, x, compiled=False):
    """`model.predict(x)` with every layer in "mean" inference; restores the modes.

    On JAX, compiling each fixture's predict function (both branches of the
    layers' inference `cond`) costs about a second of XLA time, most of this
    file's run time; unless `compiled`, predictions of models without
    recurrent layers (whose loop is slower op by op than compiled) run with
    `jax.disable_jit()`, which takes only the "mean" branch, op by op.
    `test_compiled_predict_matches` keeps the compiled path covered.
    """
    compiled = compiled or any(
        isinstance(layer, keras.layers.RNN) for layer in model.layers
    )
    layers = stochastic_layers(model)
    previous = [layer.inference for layer in layers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ks.set_inference(model, "mean")
        try:
            with contextlib.nullcontext() if compiled else _uncompiled():
                return model.predict(x, verbose=0)
        finally:
            for layer, mode in zip(layers, previous):
                layer.inference = mode


def get_attr(layer, dotted):
    for part in dotted.split("."):
        layer = getattr(layer, part)
    return layer


def assert_same(got, want, where):
    """Compares a reloaded value with its JSON record (tuples as lists, floats approx)."""
    if isinstance(want, dict) and "class_name" in want:
        # A serialized Keras object: its class and arguments, not Keras's envelope.
        assert isinstance(got, dict), (where, got)
        assert got["class_name"] == want["class_name"], where
        assert_same(got.get("config"), want.get("config"), where)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), (where, got, want)
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        got = list(got)
        assert len(got) == len(want), (where, got, want)
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert math.isclose(float(got), want, rel_tol=1e-6, abs_tol=1e-12), (
            where,
            got,
            want,
        )
    else:
        assert got == want and type(got) is type(want), (where, got, want)


def test_manifest_lists_every_fixture_file():
    on_disk = sorted(path.name for path in FIXTURES.glob("*.keras"))
    assert on_disk == sorted(entry["file"] for entry in MANIFEST.values())
    for name in NAMES:
        assert f"{name}/x" in ARRAYS and f"{name}/mean_predictions" in ARRAYS


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_mean_predictions_match(name):
    entry = MANIFEST[name]
    model = load(name)
    sample_layers = entry["sample_inference_layers"]
    for layer_name in sample_layers:
        assert model.get_layer(layer_name).inference == "sample"
    predictions = mean_predictions(model, ARRAYS[f"{name}/x"])
    np.testing.assert_allclose(
        np.asarray(predictions, "float32"),
        ARRAYS[f"{name}/mean_predictions"],
        rtol=entry["rtol"],
        atol=entry["atol"],
    )
    # The saved inference modes are back after the mean-mode prediction.
    for record in entry["layers"]:
        layer = model.get_layer(record["name"])
        want = "sample" if record["name"] in sample_layers else "mean"
        assert layer.inference == want


COMPILED = [
    "dense_flipout",
    "dense_variance_gaussian",
]  # (recurrent fixtures always compile)


@pytest.mark.parametrize("name", COMPILED, ids=COMPILED)
def test_compiled_predict_matches(name):
    entry = MANIFEST[name]
    model = _load(name)  # a fresh copy: its predict function is compiled
    np.testing.assert_allclose(
        np.asarray(
            mean_predictions(model, ARRAYS[f"{name}/x"], compiled=True), "float32"
        ),
        ARRAYS[f"{name}/mean_predictions"],
        rtol=entry["rtol"],
        atol=entry["atol"],
    )


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_layer_classes_and_arguments_survive(name):
    model = load(name)
    records = MANIFEST[name]["layers"]
    assert [layer.name for layer in stochastic_layers(model)] == [
        r["name"] for r in records
    ]
    for record in records:
        layer = model.get_layer(record["name"])
        where = f"{name}/{record['name']}"
        assert type(layer) is getattr(ks.layers, record["class_name"]), where
        assert layer.dtype_policy.name == record["dtype_policy"], where
        for attr, want in record["attrs"].items():
            assert_same(get_attr(layer, attr), want, f"{where}.{attr}")
        config = layer.get_config()
        for key, want in record["config"].items():
            assert_same(config[key], want, f"{where} config[{key!r}]")
        if record["prior"] is not None:
            prior = layer.cell.prior if record["kind"] == "rnn" else layer.prior
            assert type(prior) is getattr(ks.priors, record["prior"]["class_name"]), (
                where
            )
            assert_same(prior.get_config(), record["prior"]["config"], f"{where}.prior")


@pytest.mark.parametrize("name", NAMES, ids=NAMES)
def test_posterior_views_survive(name):
    model = load(name)
    views = [
        key.split("/")[1:]
        for key in ARRAYS
        if key.count("/") == 2 and key.startswith(name + "/")
    ]
    views = [(layer, view) for layer, view in views if layer != "optimizer"]
    assert views
    for layer_name, view in views:
        got = testing.to_numpy(getattr(model.get_layer(layer_name), view))
        np.testing.assert_allclose(
            got,
            ARRAYS[f"{name}/{layer_name}/{view}"],
            rtol=1e-5,
            atol=1e-6,
            err_msg=f"{name}/{layer_name}.{view}",
        )


def _pruning_arrays(kind):
    count = len(MANIFEST[PRUNED]["optimizer"]["pruned_variable_paths"])
    return [ARRAYS[f"{PRUNED}/optimizer/{kind}_{i}"] for i in range(count)]


def test_pruned_model_keeps_optimizer_state():
    want = MANIFEST[PRUNED]["optimizer"]
    model = load(PRUNED)
    optimizer = model.optimizer
    assert type(optimizer) is ks.optimizers.GradientNoise
    assert type(optimizer.inner_optimizer).__name__ == want["inner_class_name"]
    assert optimizer.scale == want["scale"] and optimizer.scale_by == want["scale_by"]
    assert optimizer.seed == want["seed"]
    assert math.isclose(
        float(testing.to_numpy(optimizer.learning_rate)),
        want["inner_learning_rate"],
        rel_tol=1e-6,
    )
    assert int(testing.to_numpy(optimizer.iterations)) == want["iterations"]
    assert int(testing.to_numpy(optimizer.pruning_events)) == want["pruning_events"]
    # The pruned variables are the Dense kernel and the DenseFlipout kernel mean.
    pruned = optimizer.pruned_variables
    assert pruned[0] is model.get_layer("hidden").kernel
    assert pruned[1] is model.get_layer("logits").kernel_mean
    slots = optimizer.pruning_slots()
    assert len(slots) == 2
    for (variable, mask, flips), want_mask, want_flips, want_weights in zip(
        slots,
        _pruning_arrays("mask"),
        _pruning_arrays("flips"),
        _pruning_arrays("weights"),
    ):
        mask = testing.to_numpy(mask)
        np.testing.assert_array_equal(mask, want_mask)
        np.testing.assert_array_equal(testing.to_numpy(flips), want_flips)
        np.testing.assert_array_equal(testing.to_numpy(variable), want_weights)
        assert np.all(testing.to_numpy(variable)[mask == 0] == 0.0)
    masks = [testing.to_numpy(mask) for _, mask, _ in slots]
    assert (
        1.0 - sum(m.sum() for m in masks) / sum(m.size for m in masks)
        == want["sparsity"]
    )
    assert [float(testing.to_numpy(f).sum()) for _, _, f in slots] == want[
        "flip_totals"
    ]


def test_pruned_model_keeps_pruning_when_training_resumes():
    model = _load(PRUNED)  # not the shared copy: this test trains it
    x = np.random.default_rng(0).normal(size=(8, 8)).astype("float32")
    y = x[:, :4].argmax(axis=1).astype("int32")
    flips_before = [
        testing.to_numpy(f).copy() for _, _, f in model.optimizer.pruning_slots()
    ]
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(testing.to_numpy(model.optimizer.iterations)) == (
        MANIFEST[PRUNED]["optimizer"]["iterations"] + 1
    )
    for (variable, mask, flips), before in zip(
        model.optimizer.pruning_slots(), flips_before
    ):
        mask = testing.to_numpy(mask)
        assert np.all(testing.to_numpy(variable)[mask == 0] == 0.0)
        assert np.all(testing.to_numpy(flips) >= before)
