"""`SimpleRNNLocalReparameterization`."""

import keras

from keras_stochastic.layers.base_simple_rnn import BaseSimpleRNN
from keras_stochastic.layers.simple_rnn_local_reparameterization_cell import SimpleRNNLocalReparameterizationCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class SimpleRNNLocalReparameterization(BaseSimpleRNN):
    """TODO."""

    cell_class = SimpleRNNLocalReparameterizationCell
