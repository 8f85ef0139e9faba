"""`StochasticLayer`: what every keras_stochastic layer shares.

- a `keras.random.SeedGenerator` built from `seed`, the source of every draw;
- `kl_weight`, held in a non-trainable float32 variable, so that changing it
  (`ks.set_kl_weight`, `ks.callbacks.KLAnnealing`) reaches train steps that are
  already compiled;
- the inference mode (`"mean"` or `"sample"`), held in a non-trainable bool
  variable and switched with `ops.cond` when `training` is false, so that
  `ks.set_inference` reaches predict functions that are already compiled;
- `call`: the estimator when training or sampling, the mean kernel otherwise,
  and `add_loss(kl_weight * KL)` on every call;
- `_drop_mean_term`, a Python flag that makes the estimator sample without
  its mean term (the "zero-mean approximation" of Neklyudov et al., 2019,
  measured by `ks.callbacks.PhaseTransitionMonitor`). It is read when `call`
  is traced: a function compiled while it is set keeps it, one compiled
  without it ignores it.

Subclasses provide `posterior` (see `keras_stochastic.posteriors`), the
`estimator` name, and the linear operator through `_linear`, `_prepare_inputs`,
`_finish`, `_channel_axis` and `_out_channels`.
"""

import numbers

import keras
from keras import ops

from keras_stochastic import _random
from keras_stochastic import estimators as estimators_lib

INFERENCE_MODES = ("mean", "sample")


def validate_kl_weight(kl_weight):
    if not isinstance(kl_weight, numbers.Real) or isinstance(kl_weight, bool):
        raise TypeError(
            "Argument `kl_weight` must be a non-negative float. "
            f"Received: kl_weight={kl_weight!r}"
        )
    if not 0.0 <= kl_weight < float("inf"):
        raise ValueError(
            "Argument `kl_weight` must be a non-negative, finite float. "
            f"Received: kl_weight={kl_weight}"
        )
    return float(kl_weight)


def validate_inference(inference):
    if inference not in INFERENCE_MODES:
        raise ValueError(
            f"Argument `inference` must be one of {list(INFERENCE_MODES)}. "
            f"Received: inference={inference!r}"
        )
    return inference


def validate_seed(seed):
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise TypeError(
            f"Argument `seed` must be an integer or None. Received: seed={seed!r}"
        )
    return seed


class StochasticLayer(keras.layers.Layer):
    """Base class of the layers with random weights.

    Args:
        kl_weight: Non-negative float, multiplies the KL term that the layer
            adds with `add_loss`.
        inference: `"mean"` or `"sample"`, what the layer does when `training`
            is false.
        seed: Integer or None, seeds the layer's `SeedGenerator`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.
    """

    estimator = None

    def __init__(self, kl_weight=1.0, inference="mean", seed=None, **kwargs):
        super().__init__(**kwargs)
        self._kl_weight_value = validate_kl_weight(kl_weight)
        self._inference_value = validate_inference(inference)
        self.seed = validate_seed(seed)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._kl_weight = None
        self._sample_at_inference = None
        self._drop_mean_term = False

    def _build_stochastic_state(self):
        """Creates the `kl_weight` and inference-mode variables (after the layer's weights)."""
        self._kl_weight = self.add_weight(
            name="kl_weight",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(self._kl_weight_value),
            trainable=False,
            autocast=False,
        )
        self._sample_at_inference = self.add_weight(
            name="sample_at_inference",
            shape=(),
            dtype="bool",
            initializer="ones" if self._inference_value == "sample" else "zeros",
            trainable=False,
        )

    @property
    def kl_weight(self):
        """Float multiplying the layer's KL term; settable, even after compiling."""
        if self._kl_weight is None:
            return self._kl_weight_value
        return float(ops.convert_to_numpy(self._kl_weight))

    @kl_weight.setter
    def kl_weight(self, value):
        self._kl_weight_value = validate_kl_weight(value)
        if self._kl_weight is not None:
            self._kl_weight.assign(self._kl_weight_value)

    @property
    def inference(self):
        """`"mean"` or `"sample"`; settable, even after compiling."""
        if self._sample_at_inference is None:
            return self._inference_value
        sample = bool(ops.convert_to_numpy(self._sample_at_inference))
        return "sample" if sample else "mean"

    @inference.setter
    def inference(self, mode):
        self._inference_value = validate_inference(mode)
        if self._sample_at_inference is not None:
            self._sample_at_inference.assign(mode == "sample")

    def _estimator(self):
        return estimators_lib.get(self.estimator)

    def _sample(self, inputs, weights, seeds):
        if self._drop_mean_term:
            weights = _WithoutMean(weights)
        return self._estimator().apply(
            self._linear,
            inputs,
            weights,
            seeds,
            channel_axis=self._channel_axis,
            out_channels=self._out_channels,
        )

    def call(self, inputs, training=False):
        inputs = self._prepare_inputs(inputs)
        dtype = self.compute_dtype
        num_seeds = self._estimator().num_seeds
        if training:
            weights = self.posterior(dtype)
            outputs = self._sample(inputs, weights, [self.seed_generator] * num_seeds)
        else:
            seeds = _random.predraw(self.seed_generator, num_seeds)
            outputs = ops.cond(
                ops.logical_and(self._sample_at_inference, True),
                lambda: self._sample(inputs, self.posterior(dtype), seeds),
                lambda: self._linear(inputs, self.posterior(dtype).inference_kernel),
            )
            # A separate view: in predict functions this KL feeds nothing and
            # is pruned, and the mean branch computes no standard deviations.
            weights = self.posterior(dtype)
        self.add_loss(self._kl_weight * weights.kl(self.seed_generator))
        return self._finish(outputs)

    def _prunable_variables(self):
        """The kernel variables a pruning callback may mask (never biases)."""
        mean = getattr(self.posterior, "mean", None)
        return [mean] if mean is not None else []

    def kl_divergence(self):
        """KL(q || p) of the layer's weights, float32, without the kl_weight."""
        return self.posterior(self.compute_dtype).kl(self.seed_generator)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "kl_weight": self.kl_weight,
                "inference": self.inference,
                "seed": self.seed,
            }
        )
        return config


class _WithoutMean:
    """A posterior view whose mean is dropped; its noise and variance are kept."""

    mean = None

    def __init__(self, weights):
        self._weights = weights

    def __getattr__(self, name):
        return getattr(self._weights, name)


class GaussianKernelMixin:
    """Read-only views of a mean-field Gaussian kernel posterior."""

    @property
    def kernel_mean(self):
        """The trainable posterior mean of the kernel (a variable)."""
        return self.posterior.mean

    @property
    def kernel_stddev(self):
        """The posterior standard deviation of the kernel (a float32 tensor)."""
        return self.posterior.stddev()

    @property
    def prior(self):
        """The kernel prior (a `keras_stochastic.priors.Prior`)."""
        return self.posterior.prior
