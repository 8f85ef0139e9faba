"""`SimpleRNNFlipoutCell`."""

import keras

from keras_stochastic.layers.base_simple_rnn import BaseSimpleRNNCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class SimpleRNNFlipoutCell(BaseSimpleRNNCell):
    """TODO."""

    estimator = "flipout"
