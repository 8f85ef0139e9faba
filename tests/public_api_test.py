"""Every name of the public API resolves, and every public Keras object serializes.

The public API is `keras_stochastic.__all__` and, recursively, the `__all__`
of each public module named there (`ks.layers`, `ks.callbacks`, ...). A
public module without `__all__` (e.g. `ks.kl`) contributes the classes and
functions defined in it whose names do not start with an underscore.

For every public class with a `get_config` (layers, priors, callbacks,
optimizers):

- it is registered as `"keras_stochastic>" + cls.__name__` (that string is
  written into users' `.keras` files);
- its config rebuilds an equal object, and names every constructor
  argument;
- layers (cells inside `keras.layers.RNN`) also save to `.keras` in a tiny
  `keras.Sequential` and reload with `safe_mode=True` to the same weights,
  in the same order, and the same mean-mode predictions.

Layer constructor arguments come from `LAYER_FAMILIES` (by class-name
prefix), the other objects' from `OBJECT_ARGS`: a new public class must be
added there, and the tests say so.
"""

import inspect
import types
import warnings

import keras
import numpy as np
import pytest

import keras_stochastic as ks

PACKAGE = "keras_stochastic"


def _walk_public_modules():
    """`[(qualified name, module)]`: the package, then modules named in `__all__`s."""
    found = {}
    queue = [ks]
    while queue:
        module = queue.pop(0)
        if module.__name__ in found:
            continue
        found[module.__name__] = module
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name, None)
            if isinstance(value, types.ModuleType) and value.__name__.startswith(
                PACKAGE
            ):
                queue.append(value)
    return list(found.items())


PUBLIC_MODULES = _walk_public_modules()


def _public_names(module):
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    )


# (module name, name) for every entry of every public `__all__`.
ALL_ENTRIES = [
    (module_name, name)
    for module_name, module in PUBLIC_MODULES
    if hasattr(module, "__all__")
    for name in module.__all__
]


def _public_classes():
    classes = {}
    for _, module in PUBLIC_MODULES:
        for name in _public_names(module):
            value = getattr(module, name, None)
            if inspect.isclass(value) and value.__module__.startswith(PACKAGE):
                classes.setdefault(value, None)
    return sorted(classes, key=lambda cls: cls.__name__)


PUBLIC_CLASSES = _public_classes()
SERIALIZABLE = [cls for cls in PUBLIC_CLASSES if hasattr(cls, "get_config")]
# Models (`ks.evolution.FlipoutES`, which wraps a model) are tested as objects.
LAYERS = [
    cls
    for cls in SERIALIZABLE
    if issubclass(cls, keras.layers.Layer) and not issubclass(cls, keras.Model)
]
OBJECTS = [cls for cls in SERIALIZABLE if cls not in LAYERS]

# Known gaps, as strict xfails: a fix makes the test pass and the entry must go.
NOT_REGISTERED = {}
NOT_DESERIALIZABLE = {}

# Layer family (class-name prefix): minimal constructor arguments and an input
# shape without the batch axis (recurrent: steps, features).
LAYER_FAMILIES = {
    "Dense": ({"units": 3}, (5,)),
    "Conv1D": ({"filters": 2, "kernel_size": 3}, (6, 2)),
    "Conv2D": ({"filters": 2, "kernel_size": 3}, (5, 5, 2)),
    "Conv3D": ({"filters": 2, "kernel_size": 3}, (4, 4, 4, 2)),
    "SimpleRNN": ({"units": 3}, (3, 2)),
    "LSTM": ({"units": 3}, (3, 2)),
    "GRU": ({"units": 3}, (3, 2)),
    "TemperatureScaling": ({"temperature": 2.5}, (5,)),
    "VariationalGaussianDropout": ({"parameterization": "neuron"}, (5,)),
}


def _validation_data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 5)).astype("float32"), np.arange(4) % 2


# Non-default constructor arguments, so that a config missing one shows.
OBJECT_ARGS = {
    "Prior": {},
    "GaussianPrior": {},
    "DropoutPrior": {},
    "Normal": {"stddev": 0.3},
    "CenteredNormal": {"stddev": 0.2},
    "ScaleMixtureNormal": {"pi": 0.25, "stddev1": 2.0, "stddev2": 0.01},
    "LogUniform": {"approximation": "kingma"},
    "StudentT": {"df": 0.5},
    "ARD": {},
    "FlipOutPruning": {
        "target_sparsity": 0.75,
        "prune_rate": 0.5,
        "criterion": "magnitude",
        "exclude": ["dense_1"],
        "seed": 3,
    },
    "KLAnnealing": {"warmup_epochs": 3, "initial_factor": 0.1},
    "ExpectedCalibrationError": {"num_bins": 7, "from_logits": True, "name": "ece"},
    "MaximumCalibrationError": {"num_bins": 5, "from_logits": True, "name": "mce"},
    "BrierScore": {"from_logits": True, "name": "brier"},
    "PhaseTransitionMonitor": {
        "validation_data": _validation_data,
        "num_samples": 2,
        "from_logits": True,
    },
    "FlipoutES": {
        "model": lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]),
        "population_size": 6,
        "noise_stddev": 0.3,
        "optimizer": lambda: keras.optimizers.SGD(0.1),
        "antithetic": False,
        "fitness_shaping": "standardized",
        "seed": 4,
    },
    "HoyerSquare": {"strength": 3e-3},
    "PruningSchedule": {"begin_step": 2, "end_step": 50, "frequency": 7},
    "ConstantSparsity": {"target_sparsity": 0.6, "begin_step": 3, "frequency": 9},
    "PolynomialDecay": {
        "initial_sparsity": 0.1,
        "final_sparsity": 0.7,
        "begin_step": 5,
        "end_step": 40,
        "power": 2.0,
        "frequency": 4,
    },
    "GradientNoise": {
        "inner_optimizer": lambda: keras.optimizers.SGD(0.1, momentum=0.9),
        "scale": 0.5,
        "scale_by": "parameter",
        "seed": 1,
        "jit_compile": False,
    },
}
# Keras's `Layer.get_config` writes these only when they are set.
OMITTED_WHEN_UNSET = {"activity_regularizer"}
# Arguments that are data, not configuration: left out of the config by
# design and passed again when rebuilding.
DATA_ARGS = {"PhaseTransitionMonitor": ("validation_data",)}


def _ids(classes):
    return [cls.__name__ for cls in classes]


def _known_gap(cls, gaps, raises):
    if cls.__name__ in gaps:
        mark = pytest.mark.xfail(strict=True, raises=raises, reason=gaps[cls.__name__])
        return pytest.param(cls, marks=mark)
    return cls


def _family(cls):
    for prefix in sorted(LAYER_FAMILIES, key=len, reverse=True):
        if cls.__name__.startswith(prefix):
            args, shape = LAYER_FAMILIES[prefix]
            if "seed" in _constructor_parameters(cls):
                args = {**args, "seed": 0}
            return args, shape
    pytest.fail(f"no minimal constructor arguments for {cls.__name__}: add its family")


def _is_cell(cls):
    return cls.__name__.endswith("Cell")


def _object_args(cls):
    if cls.__name__ not in OBJECT_ARGS:
        pytest.fail(
            f"no constructor arguments for {cls.__name__}: add it to OBJECT_ARGS"
        )
    return {
        key: value() if callable(value) else value
        for key, value in OBJECT_ARGS[cls.__name__].items()
    }


def _constructor_parameters(cls):
    return [
        parameter.name
        for parameter in inspect.signature(cls.__init__).parameters.values()
        if parameter.name != "self"
        and parameter.kind
        not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def _built_model(cls):
    args, shape = _family(cls)
    layer = cls(**args)
    wrapped = keras.layers.RNN(layer) if _is_cell(cls) else layer
    model = keras.Sequential([keras.Input(shape), wrapped])
    x = np.random.default_rng(1).normal(size=(2,) + shape).astype("float32")
    return layer, model, x


def _mean_outputs(model, x):
    with warnings.catch_warnings():
        # Variance layers warn that their mean-mode output ignores the input.
        warnings.filterwarnings(
            "ignore", message=".*has inference='mean'", category=UserWarning
        )
        # TemperatureScaling is a public layer without random weights.
        if not isinstance(model.layers[0], ks.calibration.TemperatureScaling):
            ks.set_inference(model, "mean")
    return keras.ops.convert_to_numpy(model(x, training=False))


def _load(path):
    with warnings.catch_warnings():
        # Variables that do not match the file are skipped with a warning.
        warnings.filterwarnings("error", message="Skipping variable loading")
        # Variance layers reloaded in "mean" mode warn again, by design.
        warnings.filterwarnings(
            "ignore", message=".*has inference='mean'", category=UserWarning
        )
        return keras.saving.load_model(path, safe_mode=True)


def test_public_modules_are_found():
    names = [name for name, _ in PUBLIC_MODULES]
    for expected in ("layers", "callbacks", "optimizers", "priors"):
        assert f"{PACKAGE}.{expected}" in names
    assert LAYERS and OBJECTS


@pytest.mark.parametrize(
    "module_name,name", ALL_ENTRIES, ids=[f"{m}.{n}" for m, n in ALL_ENTRIES]
)
def test_all_entry_resolves(module_name, name):
    module = dict(PUBLIC_MODULES)[module_name]
    assert module.__all__.count(name) == 1, f"{name} listed twice in {module_name}"
    value = getattr(module, name)
    if not isinstance(value, (types.ModuleType, str)):
        assert callable(value), f"{module_name}.{name} is not callable"


@pytest.mark.parametrize(
    "cls",
    [_known_gap(cls, NOT_REGISTERED, AssertionError) for cls in SERIALIZABLE],
    ids=_ids(SERIALIZABLE),
)
def test_registered(cls):
    registered_name = f"{PACKAGE}>{cls.__name__}"
    assert keras.saving.get_registered_name(cls) == registered_name
    assert keras.saving.get_registered_object(registered_name) is cls


@pytest.mark.parametrize("cls", LAYERS, ids=_ids(LAYERS))
def test_layer_config_roundtrip(cls):
    args, shape = _family(cls)
    layer = cls(**args)
    # A cell sees one step: (batch, features).
    layer.build((None, shape[-1]) if _is_cell(cls) else (None,) + shape)
    assert layer.built and layer.weights
    config = layer.get_config()
    missing = set(_constructor_parameters(cls)) - set(config) - OMITTED_WHEN_UNSET
    assert not missing, "config misses arguments"
    assert cls.from_config(config).get_config() == config


@pytest.mark.parametrize("cls", LAYERS, ids=_ids(LAYERS))
def test_layer_keras_file_roundtrip(cls, tmp_path):
    layer, model, x = _built_model(cls)
    expected = _mean_outputs(model, x)
    path = str(tmp_path / f"{cls.__name__}.keras")
    model.save(path)
    reloaded = _load(path)

    reloaded_layer = reloaded.layers[0]
    if _is_cell(cls):
        reloaded_layer = reloaded_layer.cell
    assert type(reloaded_layer) is cls
    assert reloaded_layer.get_config() == layer.get_config()
    # Weight creation order is the on-disk format.
    assert [(w.name, w.shape) for w in reloaded.weights] == [
        (w.name, w.shape) for w in model.weights
    ]
    for original, restored in zip(model.weights, reloaded.weights, strict=True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(restored), keras.ops.convert_to_numpy(original)
        )
    np.testing.assert_array_equal(_mean_outputs(reloaded, x), expected)


def _rebuild(cls, obj, args):
    data = {key: args[key] for key in DATA_ARGS.get(cls.__name__, ())}
    if data:
        return cls(**data, **obj.get_config())
    serialized = keras.saving.serialize_keras_object(obj)
    return keras.saving.deserialize_keras_object(serialized, safe_mode=True)


@pytest.mark.parametrize(
    "cls",
    # An unregistered class cannot be deserialized either.
    [
        _known_gap(cls, {**NOT_REGISTERED, **NOT_DESERIALIZABLE}, TypeError)
        for cls in OBJECTS
    ],
    ids=_ids(OBJECTS),
)
def test_object_config_roundtrip(cls):
    args = _object_args(cls)
    obj = cls(**args)
    config = obj.get_config()
    data_args = set(DATA_ARGS.get(cls.__name__, ()))
    assert set(_constructor_parameters(cls)) - data_args <= set(config), (
        "config misses arguments"
    )
    for key, value in args.items():
        if key not in data_args and isinstance(value, (bool, int, float, str, list)):
            assert config[key] == value, key

    rebuilt = _rebuild(cls, obj, args)
    assert type(rebuilt) is cls
    assert rebuilt.get_config() == config


@pytest.mark.parametrize(
    "cls",
    [cls for cls in OBJECTS if issubclass(cls, keras.optimizers.Optimizer)],
    ids=_ids([cls for cls in OBJECTS if issubclass(cls, keras.optimizers.Optimizer)]),
)
def test_optimizer_keras_file_roundtrip(cls, tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=cls(**_object_args(cls)), loss="mse")
    # One step builds the optimizer, so its variables (and RNG state) are saved.
    x = np.ones((2, 4), "float32")
    model.fit(x, np.zeros((2, 2), "float32"), epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = _load(path)
    assert type(reloaded.optimizer) is cls
    assert reloaded.optimizer.get_config() == model.optimizer.get_config()
    restored = [keras.ops.convert_to_numpy(v) for v in reloaded.optimizer.variables]
    saved = [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables]
    assert len(restored) == len(saved)
    for original, value in zip(saved, restored, strict=True):
        np.testing.assert_array_equal(value, original)
