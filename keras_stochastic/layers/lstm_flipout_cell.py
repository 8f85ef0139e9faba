"""`LSTMFlipoutCell`."""

import keras

from keras_stochastic.layers.base_lstm import BaseLSTMCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class LSTMFlipoutCell(BaseLSTMCell):
    """TODO."""

    estimator = "flipout"
