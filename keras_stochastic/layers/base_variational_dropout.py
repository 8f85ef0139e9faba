"""Variational dropout family: the dense and conv bases with a Gaussian-dropout posterior."""

from keras_stochastic import estimators as estimators_lib
from keras_stochastic.layers.convolutional.base_conv import BaseStochasticConv
from keras_stochastic.layers.core.base_dense import BaseStochasticDense
from keras_stochastic.posteriors.dropout import VariationalDropoutPosterior


class VariationalDropoutMixin:
    """Estimator choice, read-only views and config of variational dropout layers."""

    def _set_estimator(self, estimator):
        estimators_lib.get(estimator, self.allowed_estimators)
        # An instance attribute: the estimator is an argument of these layers.
        self.estimator = estimator

    @property
    def kernel_mean(self):
        """The trainable kernel mean `theta` (a variable)."""
        return self.posterior.mean

    @property
    def log_alpha(self):
        """Clipped `log alpha` (a float32 tensor) in the parameterization's shape.

        The kernel's shape for `"additive"` and `"weight"`, `(units,)` /
        `(filters,)` for `"neuron"`, `()` for `"layer"`; each broadcasts
        against the kernel.
        """
        return self.posterior.log_alpha()

    @property
    def threshold(self):
        """Weights with `log_alpha >= threshold` are zero in `"mean"` inference."""
        return self.posterior.threshold

    @property
    def parameterization(self):
        return self.posterior.parameterization

    def get_config(self):
        config = super().get_config()
        config["estimator"] = self.estimator
        return config


class VariationalDropoutDense(VariationalDropoutMixin, BaseStochasticDense):
    """Dense layer with a Gaussian-dropout kernel; the docstring is on the public class."""

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        parameterization="additive",
        kl_approximation="molchanov",
        prior="log_uniform",
        estimator="local_reparameterization",
        threshold=3.0,
        log_variance_initializer=None,
        kl_weight=None,
        inference="mean",
        seed=None,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            posterior=VariationalDropoutPosterior(
                parameterization=parameterization,
                kl_approximation=kl_approximation,
                prior=prior,
                threshold=threshold,
                log_variance_initializer=log_variance_initializer,
            ),
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
        self._set_estimator(estimator)


class VariationalDropoutConv(VariationalDropoutMixin, BaseStochasticConv):
    """Convolution with a Gaussian-dropout kernel; `rank` set by subclasses."""

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
        parameterization="additive",
        kl_approximation="molchanov",
        prior="log_uniform",
        estimator="local_reparameterization",
        threshold=3.0,
        log_variance_initializer=None,
        kl_weight=None,
        inference="mean",
        seed=None,
        **kwargs,
    ):
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
            posterior=VariationalDropoutPosterior(
                parameterization=parameterization,
                kl_approximation=kl_approximation,
                prior=prior,
                threshold=threshold,
                log_variance_initializer=log_variance_initializer,
            ),
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
        self._set_estimator(estimator)
