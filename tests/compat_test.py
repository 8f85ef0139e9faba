"""keras_stochastic._compat is the only keras.src importer: fail loudly if Keras moves things."""

import pathlib

from keras_stochastic import _compat


def test_compat_helpers_work():
    assert _compat.standardize_tuple(3, 2, "kernel_size") == (3, 3)
    assert _compat.standardize_padding("SAME") == "same"
    assert _compat.standardize_data_format(None) in ("channels_last", "channels_first")
    shape = _compat.compute_conv_output_shape((None, 8, 8, 3), 4, (3, 3))
    assert tuple(shape) == (None, 6, 6, 4)
    # The recurrent cells draw their per-sequence noise in these hooks.
    for hook in ("get_dropout_mask", "get_recurrent_dropout_mask", "reset_dropout_mask"):
        assert callable(getattr(_compat.DropoutRNNCell, hook))


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
