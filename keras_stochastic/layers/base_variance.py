"""Variance layers (zero-mean kernels): what the Dense and Conv variants share."""

import warnings

from keras_stochastic import estimators as estimators_lib
from keras_stochastic import posteriors
from keras_stochastic.layers.base_stochastic import StochasticLayer
from keras_stochastic.layers.convolutional.base_conv import BaseStochasticConv

# Gaussian weights have an exact local reparameterization (the cheapest in
# random numbers, with the lowest gradient variance); the other distributions
# do not, and flipout is valid for them because their noise is symmetric about
# zero and independent across weights.
DEFAULT_ESTIMATORS = {
    "gaussian": "local_reparameterization",
    "bernoulli": "flipout",
    "uniform": "flipout",
}


def resolve_estimator(distribution, estimator, allowed):
    """The estimator for `distribution`: its default when `estimator` is None.

    `allowed` lists the estimators of the layer family.
    """
    if estimator is None:
        return DEFAULT_ESTIMATORS[distribution]
    if (
        estimators_lib.get(estimator, allowed).requires_gaussian_weights
        and distribution != "gaussian"
    ):
        raise ValueError(
            f"Argument `estimator` cannot be {estimator!r} for "
            f"distribution={distribution!r}: it samples Gaussian pre-activations, "
            "which only Gaussian weights give exactly. Use 'flipout' (the "
            "default) or 'reparameterization'. "
            f"Received: estimator={estimator!r}, distribution={distribution!r}"
        )
    return estimator


def warn_mean_inference(layer):
    warnings.warn(
        f"Layer {layer.name!r} ({type(layer).__name__}) has inference='mean': "
        "the posterior mean of a variance layer's kernel is zero, so in that "
        "mode it outputs `activation(bias)` and predictions will not depend on "
        "the input. Use inference='sample' (the default), or ks.predict_mc for "
        "an ensemble.",
        UserWarning,
        stacklevel=3,
    )


class VarianceKernelMixin:
    """Estimator choice, the mean-inference warning and kernel views of variance layers."""

    _kl_is_zero = True

    def _init_variance(self, estimator):
        self.estimator = estimator
        if self._inference_value == "mean":
            warn_mean_inference(self)

    @property
    def inference(self):
        """`"sample"` or `"mean"` (which warns: the output ignores the input); settable."""
        return StochasticLayer.inference.fget(self)

    @inference.setter
    def inference(self, mode):
        StochasticLayer.inference.fset(self, mode)
        if mode == "mean":
            warn_mean_inference(self)

    @property
    def distribution(self):
        """`"gaussian"`, `"bernoulli"` or `"uniform"`: the law of `eps` in `w = scale * eps`."""
        return self.posterior.distribution

    @property
    def kernel_scale(self):
        """The trainable signed scale of the kernel (a variable); `w = scale * eps`."""
        return self.posterior.scale

    @property
    def kernel_stddev(self):
        """The standard deviation of each kernel weight (a float32 tensor).

        `|scale|` for the Gaussian and Bernoulli distributions, `|scale| / sqrt(3)`
        for the uniform one.
        """
        return self.posterior.stddev()

    def _prunable_variables(self):
        # Masking the scale zeroes the weight itself: with a zero mean, a
        # zero scale is an exactly-zero weight.
        return [self.posterior.scale]

    def get_config(self):
        config = super().get_config()
        config["estimator"] = self.estimator
        return config


class VarianceConv(VarianceKernelMixin, BaseStochasticConv):
    """Convolution with a zero-mean kernel; `rank` set by subclasses."""

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        distribution="gaussian",
        estimator=None,
        kl_weight=None,
        inference="sample",
        seed=None,
        **kwargs,
    ):
        posterior = posteriors.ZeroMeanPosterior(distribution)
        estimator = resolve_estimator(distribution, estimator, self.allowed_estimators)
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            posterior=posterior,
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
        self._init_variance(estimator)
