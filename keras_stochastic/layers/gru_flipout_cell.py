"""`GRUFlipoutCell`."""

import keras

from keras_stochastic.layers.base_gru import BaseGRUCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class GRUFlipoutCell(BaseGRUCell):
    """TODO."""

    estimator = "flipout"
