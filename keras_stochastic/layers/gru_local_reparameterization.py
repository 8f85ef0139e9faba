"""`GRULocalReparameterization`."""

import keras

from keras_stochastic.layers.base_gru import BaseGRU
from keras_stochastic.layers.gru_local_reparameterization_cell import GRULocalReparameterizationCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class GRULocalReparameterization(BaseGRU):
    """TODO."""

    cell_class = GRULocalReparameterizationCell
