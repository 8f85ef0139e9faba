"""Weight posteriors: the variables of `q(w)` and per-call views of it.

A posterior object is owned by a layer. `build(layer, shape, initializer,
regularizer, constraint)` creates its variables through `layer.add_weight` (so
the layer tracks and saves them, in creation order), and calling it with the
layer's compute dtype returns a view for one layer call providing:

- `mean`: the mean kernel in the compute dtype, or `None` (zero-mean `q`);
- `inference_kernel`: the kernel used by `"mean"` inference;
- `noise(seed, sample_shape=())`: a draw of `w - mean`, symmetric about
  zero, with leading `sample_shape` axes of independent draws (one kernel
  per example for the per-example estimator);
- `variance`: the elementwise variance (posteriors with Gaussian marginals);
- `kl(seed)`: KL(q || p) summed over weights, float32.

Parameters are float32 variables created with `autocast=False`, so KL terms of
mixed-precision layers are computed from float32 values. A posterior class
also declares `default_inference` and `get_config()` (its constructor
arguments, merged into the layer's config).
"""

from keras_stochastic.posteriors.dropout import VariationalDropoutPosterior
from keras_stochastic.posteriors.dropout import VariationalDropoutWeights
from keras_stochastic.posteriors.gaussian import GaussianPosterior
from keras_stochastic.posteriors.gaussian import GaussianWeights
from keras_stochastic.posteriors.zero_mean import ZeroMeanPosterior
from keras_stochastic.posteriors.zero_mean import ZeroMeanWeights

__all__ = [
    "GaussianPosterior",
    "GaussianWeights",
    "VariationalDropoutPosterior",
    "VariationalDropoutWeights",
    "ZeroMeanPosterior",
    "ZeroMeanWeights",
]
