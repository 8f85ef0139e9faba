"""`SimpleRNNFlipout`."""

import keras

from keras_stochastic.layers.base_simple_rnn import BaseSimpleRNN
from keras_stochastic.layers.simple_rnn_flipout_cell import SimpleRNNFlipoutCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class SimpleRNNFlipout(BaseSimpleRNN):
    """TODO."""

    cell_class = SimpleRNNFlipoutCell
