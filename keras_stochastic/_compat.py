"""The one place that uses Keras's private API (`keras.src`, private methods).

These helpers are not exported by Keras's public API but are what Keras's own
layers use to normalise arguments; reusing them keeps our argument handling and
error messages identical to the Keras twins. Recurrent cells also subclass
`DropoutRNNCell`, whose methods `keras.layers.RNN` calls before its time loop:
that hook is where our cells draw their per-sequence noise.
`optimizer_variables` and `variable_index` read an optimizer's own
bookkeeping, which `GradientNoise` shares with the optimizer it wraps.
`flatten_layers` walks a model's layers (nested models, wrappers and cells
included) with `Layer._flatten_layers`, which Keras has no public twin of.
`loss_tracker` is the metric behind a compiled model's `loss` log, which a
custom `train_step` (`ks.evolution.FlipoutES`) updates as Keras's own does.
`output_layers` reads which layers produce a graph model's outputs from the
outputs' `_keras_history`.
`is_graph_model` tells the models `keras.models.clone_model` can rebuild
layer by layer (`Sequential` and `Functional`, the class of functional
models, which Keras does not export) from subclassed ones.
`unlocked_state` lets pruning add a mask weight to a built layer, whose
variable tracker Keras locks after `build` (`Layer._tracker`), and
`own_variables` lists the variables a layer saves itself
(`Layer._trainable_variables` and `_non_trainable_variables`).
`xla_compiles` reads TensorFlow's private XLA context, which tells
`keras_stochastic.rng`, `keras_stochastic.kl` and `_reductions` whether the
ops they build will be compiled by XLA (elementwise work and reductions are
costed differently there).
`tests/compat_test.py` fails loudly if a Keras release moves any of them.
"""

import contextlib

from keras.src.backend.config import standardize_data_format
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
from keras.src.models.functional import Functional
from keras.src.models.sequential import Sequential
from keras.src.ops.operation_utils import compute_conv_output_shape
from keras.src.utils.argument_validation import standardize_padding
from keras.src.utils.argument_validation import standardize_tuple


def flatten_layers(layer, include_self=True, recursive=True):
    """`layer` and the layers it contains, depth first (Keras's own traversal)."""
    return list(layer._flatten_layers(include_self=include_self, recursive=recursive))


def is_graph_model(layer):
    """Whether `layer` is a `Sequential` or functional model (a graph of layers)."""
    return isinstance(layer, (Sequential, Functional))


def output_layers(model):
    """The layers whose outputs are a graph model's outputs (`_keras_history`)."""
    import keras

    return [t._keras_history.operation for t in keras.tree.flatten(model.outputs)]


def loss_tracker(model):
    """The `Mean` metric behind a compiled model's `loss` log (`_loss_tracker`)."""
    return model._loss_tracker


def optimizer_variables(optimizer):
    """The variables an optimizer was built for, in its index order (`_trainable_variables`)."""
    return optimizer._trainable_variables


def variable_index(optimizer, variable):
    """The index of `variable` among `optimizer_variables(optimizer)` (`_get_variable_index`)."""
    return optimizer._get_variable_index(variable)


@contextlib.contextmanager
def unlocked_state(layer):
    """Lets a built `layer` create weights (Keras locks its tracker after `build`)."""
    tracker = layer._tracker
    locked = tracker.locked
    tracker.unlock()
    try:
        yield
    finally:
        if locked:
            tracker.lock()


def own_variables(layer):
    """The variables `layer.load_own_variables` loads, in its order."""
    return layer._trainable_variables + layer._non_trainable_variables


__all__ = [
    "DropoutRNNCell",
    "compute_conv_output_shape",
    "flatten_layers",
    "is_graph_model",
    "loss_tracker",
    "output_layers",
    "optimizer_variables",
    "own_variables",
    "unlocked_state",
    "standardize_data_format",
    "standardize_padding",
    "standardize_tuple",
    "variable_index",
]


def xla_compiles():
    """Whether the ops being built now will be compiled by XLA.

    Always on JAX. On TensorFlow, inside functions traced for XLA
    (`jit_compile=True`, Keras's default on a GPU): read from the XLA context
    TensorFlow sets on the graphs it compiles
    (`control_flow_util.GraphOrParentsInXlaContext`); False eagerly and in
    plain `tf.function` graphs. False on other backends.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        return True
    if backend != "tensorflow":
        return False
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_util

    if tf.executing_eagerly():
        return False
    return control_flow_util.GraphOrParentsInXlaContext(
        tf.compat.v1.get_default_graph()
    )
