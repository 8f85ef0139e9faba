"""The one place that imports from `keras.src`.

These helpers are not exported by Keras's public API but are what Keras's own
layers use to normalise arguments; reusing them keeps our argument handling and
error messages identical to the Keras twins. Recurrent cells also subclass
`DropoutRNNCell`, whose methods `keras.layers.RNN` calls before its time loop:
that hook is where our cells draw their per-sequence noise.
`tests/compat_test.py` fails loudly if a Keras release moves them.
"""

from keras.src.backend.config import standardize_data_format
from keras.src.layers.rnn.dropout_rnn_cell import DropoutRNNCell
from keras.src.ops.operation_utils import compute_conv_output_shape
from keras.src.utils.argument_validation import standardize_padding
from keras.src.utils.argument_validation import standardize_tuple

__all__ = [
    "DropoutRNNCell",
    "compute_conv_output_shape",
    "standardize_data_format",
    "standardize_padding",
    "standardize_tuple",
]
