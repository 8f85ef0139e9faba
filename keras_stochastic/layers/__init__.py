"""Layers with random weights."""

from keras_stochastic.layers.convolutional.conv1d_flipout import Conv1DFlipout
from keras_stochastic.layers.convolutional.conv1d_local_reparameterization import (
    Conv1DLocalReparameterization,
)
from keras_stochastic.layers.convolutional.conv1d_reparameterization import (
    Conv1DReparameterization,
)
from keras_stochastic.layers.convolutional.conv1d_variance import Conv1DVariance
from keras_stochastic.layers.convolutional.conv1d_variational_dropout import (
    Conv1DVariationalDropout,
)
from keras_stochastic.layers.convolutional.conv2d_flipout import Conv2DFlipout
from keras_stochastic.layers.convolutional.conv2d_local_reparameterization import (
    Conv2DLocalReparameterization,
)
from keras_stochastic.layers.convolutional.conv2d_reparameterization import (
    Conv2DReparameterization,
)
from keras_stochastic.layers.convolutional.conv2d_variance import Conv2DVariance
from keras_stochastic.layers.convolutional.conv2d_variational_dropout import (
    Conv2DVariationalDropout,
)
from keras_stochastic.layers.convolutional.conv3d_flipout import Conv3DFlipout
from keras_stochastic.layers.convolutional.conv3d_local_reparameterization import (
    Conv3DLocalReparameterization,
)
from keras_stochastic.layers.convolutional.conv3d_reparameterization import (
    Conv3DReparameterization,
)
from keras_stochastic.layers.convolutional.conv3d_variance import Conv3DVariance
from keras_stochastic.layers.convolutional.conv3d_variational_dropout import (
    Conv3DVariationalDropout,
)
from keras_stochastic.layers.core.dense_flipout import DenseFlipout
from keras_stochastic.layers.core.dense_local_reparameterization import (
    DenseLocalReparameterization,
)
from keras_stochastic.layers.core.dense_per_example import DensePerExample
from keras_stochastic.layers.core.dense_reparameterization import (
    DenseReparameterization,
)
from keras_stochastic.layers.core.dense_variance import DenseVariance
from keras_stochastic.layers.core.dense_variational_dropout import (
    DenseVariationalDropout,
)
from keras_stochastic.layers.regularization.variational_gaussian_dropout import (
    VariationalGaussianDropout,
)
from keras_stochastic.layers.rnn.gru_flipout import GRUFlipout
from keras_stochastic.layers.rnn.gru_flipout_cell import GRUFlipoutCell
from keras_stochastic.layers.rnn.gru_local_reparameterization import (
    GRULocalReparameterization,
)
from keras_stochastic.layers.rnn.gru_local_reparameterization_cell import (
    GRULocalReparameterizationCell,
)
from keras_stochastic.layers.rnn.lstm_flipout import LSTMFlipout
from keras_stochastic.layers.rnn.lstm_flipout_cell import LSTMFlipoutCell
from keras_stochastic.layers.rnn.lstm_local_reparameterization import (
    LSTMLocalReparameterization,
)
from keras_stochastic.layers.rnn.lstm_local_reparameterization_cell import (
    LSTMLocalReparameterizationCell,
)
from keras_stochastic.layers.rnn.simple_rnn_flipout import SimpleRNNFlipout
from keras_stochastic.layers.rnn.simple_rnn_flipout_cell import SimpleRNNFlipoutCell
from keras_stochastic.layers.rnn.simple_rnn_local_reparameterization import (
    SimpleRNNLocalReparameterization,
)
from keras_stochastic.layers.rnn.simple_rnn_local_reparameterization_cell import (
    SimpleRNNLocalReparameterizationCell,
)

__all__ = [
    "Conv1DFlipout",
    "Conv1DLocalReparameterization",
    "Conv1DReparameterization",
    "Conv1DVariance",
    "Conv1DVariationalDropout",
    "Conv2DFlipout",
    "Conv2DLocalReparameterization",
    "Conv2DReparameterization",
    "Conv2DVariance",
    "Conv2DVariationalDropout",
    "Conv3DFlipout",
    "Conv3DLocalReparameterization",
    "Conv3DReparameterization",
    "Conv3DVariance",
    "Conv3DVariationalDropout",
    "DenseFlipout",
    "DenseLocalReparameterization",
    "DensePerExample",
    "DenseReparameterization",
    "DenseVariance",
    "DenseVariationalDropout",
    "GRUFlipout",
    "GRUFlipoutCell",
    "GRULocalReparameterization",
    "GRULocalReparameterizationCell",
    "LSTMFlipout",
    "LSTMFlipoutCell",
    "LSTMLocalReparameterization",
    "LSTMLocalReparameterizationCell",
    "SimpleRNNFlipout",
    "SimpleRNNFlipoutCell",
    "SimpleRNNLocalReparameterization",
    "SimpleRNNLocalReparameterizationCell",
    "VariationalGaussianDropout",
]
