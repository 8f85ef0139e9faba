"""`LSTMFlipout`."""

import keras

from keras_stochastic.layers.base_lstm import BaseLSTM
from keras_stochastic.layers.lstm_flipout_cell import LSTMFlipoutCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class LSTMFlipout(BaseLSTM):
    """TODO."""

    cell_class = LSTMFlipoutCell
