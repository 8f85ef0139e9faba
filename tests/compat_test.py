"""keras_stochastic._compat is the only keras.src importer: fail loudly if Keras moves things."""

import pathlib

from keras_stochastic import _compat
from tests import testing


def test_compat_helpers_work():
    assert _compat.standardize_tuple(3, 2, "kernel_size") == (3, 3)
    assert _compat.standardize_padding("SAME") == "same"
    assert _compat.standardize_data_format(None) in ("channels_last", "channels_first")
    shape = _compat.compute_conv_output_shape((None, 8, 8, 3), 4, (3, 3))
    assert tuple(shape) == (None, 6, 6, 4)
    # The recurrent cells draw their per-sequence noise in these hooks.
    for hook in (
        "get_dropout_mask",
        "get_recurrent_dropout_mask",
        "reset_dropout_mask",
    ):
        assert callable(getattr(_compat.DropoutRNNCell, hook))


def test_xla_compiles_tells_compiled_functions():
    if testing.BACKEND == "jax":
        assert _compat.xla_compiles()
        return
    if testing.BACKEND != "tensorflow":
        assert not _compat.xla_compiles()
        return
    import tensorflow as tf

    def seen():
        return tf.constant(_compat.xla_compiles())

    assert not _compat.xla_compiles()
    assert not bool(tf.function(seen)())
    assert bool(tf.function(seen, jit_compile=True)())


def test_no_other_module_imports_keras_src():
    package = pathlib.Path(_compat.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "_compat.py" and "keras.src" in path.read_text()
    ]
    assert offenders == []


def test_layers_do_not_import_tensorflow():
    package = pathlib.Path(_compat.__file__).parent
    offenders = [
        str(path.relative_to(package))
        for path in (package / "layers").rglob("*.py")
        if "import tensorflow" in path.read_text() or "tf." in path.read_text()
    ]
    assert offenders == []


def test_private_keras_methods_exist():
    import keras

    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)]
    )
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    flattened = _compat.flatten_layers(model)
    assert flattened[0] is model and all(layer in flattened for layer in dense)
    direct = _compat.flatten_layers(model, include_self=False, recursive=False)
    assert model not in direct and all(layer in direct for layer in dense)
    optimizer = keras.optimizers.SGD()
    optimizer.build(model.trainable_variables)
    variables = _compat.optimizer_variables(optimizer)
    assert [v.path for v in variables] == [v.path for v in model.trainable_variables]
    last = model.trainable_variables[-1]
    assert _compat.variable_index(optimizer, last) == len(variables) - 1


def test_no_other_module_uses_private_keras_methods():
    package = pathlib.Path(_compat.__file__).parent
    private = ("._flatten_layers(", "._trainable_variables", "._get_variable_index(")
    offenders = [
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if path.name != "_compat.py" and any(p in path.read_text() for p in private)
    ]
    assert offenders == []


def test_no_estimator_name_dispatch_outside_the_estimators_module():
    package = pathlib.Path(_compat.__file__).parent
    names = ('"flipout"', '"local_reparameterization"', '"reparameterization"')
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        if path.name != "estimators.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "estimator" in line
        and ("==" in line or "!=" in line)
        and any(n in line for n in names)
    ]
    assert offenders == []


def test_is_graph_model():
    import keras

    inputs = keras.Input((3,))
    functional = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    assert _compat.is_graph_model(functional)
    assert _compat.is_graph_model(sequential)
    assert not _compat.is_graph_model(Subclassed())
    assert not _compat.is_graph_model(keras.layers.Dense(2))


def test_unlocked_state_lets_a_built_layer_add_a_weight():
    import keras

    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with _compat.unlocked_state(layer):
        extra = layer.add_weight(name="extra", shape=(), trainable=False)
    assert layer._tracker.locked
    assert _compat.own_variables(layer)[-1] is extra
    assert len(_compat.own_variables(layer)) == 3
