"""`GRUFlipout`."""

import keras

from keras_stochastic.layers.base_gru import BaseGRU
from keras_stochastic.layers.gru_flipout_cell import GRUFlipoutCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class GRUFlipout(BaseGRU):
    """TODO."""

    cell_class = GRUFlipoutCell
