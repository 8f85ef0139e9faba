"""The kernel inventory: which variables of a layer are its kernels.

One table for the whole package: pruning (`ks.callbacks.FlipOutPruning`),
`ks.sparsity` and model conversion read it. A kernel is a weight matrix (or
convolution filter bank) that multiplies the layer's inputs or state; biases,
embeddings and normalization parameters are never kernels.

- Keras layers: `Dense`, `EinsumDense`, `Conv1D/2D/3D` and their transposes,
  `DepthwiseConv1D/2D` (Keras 3 names their depthwise weight `kernel`),
  `SeparableConv1D/2D` (`depthwise_kernel`, `pointwise_kernel`) and the
  `SimpleRNN`/`LSTM`/`GRU` cells (`kernel`, `recurrent_kernel`).
- keras_stochastic layers: the variables their posterior holds in the
  kernel's place (`_prunable_variables()`): the posterior means of Gaussian
  and variational dropout kernels, the scales of zero-mean kernels, and a
  point-estimate recurrent kernel. `VariationalGaussianDropout` has none.
"""

import keras
from keras import ops

from keras_stochastic import _compat
from keras_stochastic.layers.base_stochastic import StochasticLayer
from keras_stochastic.posteriors.dropout import VariationalDropoutPosterior

_KERAS_KERNELS = (
    ((keras.layers.Dense, keras.layers.EinsumDense), ("kernel",)),
    (
        (
            keras.layers.Conv1D,
            keras.layers.Conv2D,
            keras.layers.Conv3D,
            keras.layers.Conv1DTranspose,
            keras.layers.Conv2DTranspose,
            keras.layers.Conv3DTranspose,
            keras.layers.DepthwiseConv1D,
            keras.layers.DepthwiseConv2D,
        ),
        ("kernel",),
    ),
    (
        (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D),
        ("depthwise_kernel", "pointwise_kernel"),
    ),
    (
        (keras.layers.SimpleRNNCell, keras.layers.LSTMCell, keras.layers.GRUCell),
        ("kernel", "recurrent_kernel"),
    ),
)


def has_kernels(layer):
    """Whether `layer` itself (not a sublayer) is a layer with kernels."""
    if isinstance(layer, StochasticLayer):
        return layer._has_kernel
    return any(isinstance(layer, classes) for classes, _ in _KERAS_KERNELS)


def kernel_variables(layer):
    """The kernel variables of `layer` itself, in weight order ([] if it has none)."""
    if isinstance(layer, StochasticLayer):
        return list(layer._prunable_variables())
    for classes, names in _KERAS_KERNELS:
        if isinstance(layer, classes):
            return [getattr(layer, name) for name in names]
    return []


def inference_kernels(layer):
    """The kernels of `layer` as mean-mode inference uses them (tensors or variables).

    The kernel variables, except for variational dropout layers, whose
    inference kernel is `theta` masked where `log alpha >= threshold`.
    """
    posterior = getattr(layer, "posterior", None)
    if isinstance(layer, StochasticLayer) and isinstance(
        posterior, VariationalDropoutPosterior
    ):
        return [posterior("float32").inference_kernel]
    return kernel_variables(layer)


def layers_with_kernels(model):
    """Every layer of `model` that has kernels, nested models and cells included."""
    return [layer for layer in _compat.flatten_layers(model) if has_kernels(layer)]


def zero_count(kernel):
    """`(zeros, total)`: how many entries of `kernel` are exactly zero."""
    values = ops.convert_to_numpy(kernel)
    return int((values == 0).sum()), int(values.size)
