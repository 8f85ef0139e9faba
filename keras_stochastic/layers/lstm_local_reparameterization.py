"""`LSTMLocalReparameterization`."""

import keras

from keras_stochastic.layers.base_lstm import BaseLSTM
from keras_stochastic.layers.lstm_local_reparameterization_cell import LSTMLocalReparameterizationCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class LSTMLocalReparameterization(BaseLSTM):
    """TODO."""

    cell_class = LSTMLocalReparameterizationCell
