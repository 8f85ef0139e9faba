"""keras_stochastic: probabilistic (stochastic-weight) layers for Keras 3."""

from keras_stochastic import calibration
from keras_stochastic import callbacks
from keras_stochastic import conversion
from keras_stochastic import diagnostics
from keras_stochastic import evolution
from keras_stochastic import kl
from keras_stochastic import layers
from keras_stochastic import metrics
from keras_stochastic import optimizers
from keras_stochastic import plot
from keras_stochastic import priors
from keras_stochastic import pruning
from keras_stochastic import regularizers
from keras_stochastic.conversion import to_bayesian
from keras_stochastic.conversion import to_deterministic
from keras_stochastic.inference import kl_divergence
from keras_stochastic.inference import predict_mc
from keras_stochastic.inference import set_inference
from keras_stochastic.inference import set_kl_weight
from keras_stochastic.sparsity import sparsity
from keras_stochastic.version import __version__

__all__ = [
    "__version__",
    "calibration",
    "callbacks",
    "conversion",
    "diagnostics",
    "evolution",
    "kl",
    "kl_divergence",
    "layers",
    "metrics",
    "optimizers",
    "plot",
    "predict_mc",
    "priors",
    "pruning",
    "regularizers",
    "set_inference",
    "set_kl_weight",
    "sparsity",
    "to_bayesian",
    "to_deterministic",
]
