"""Dense family: the matmul operator, shapes and Keras-twin arguments."""

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic import estimators
from keras_stochastic import posteriors
from keras_stochastic.layers.base_stochastic import GaussianKernelMixin
from keras_stochastic.layers.base_stochastic import StochasticLayer


class BaseStochasticDense(StochasticLayer):
    """`outputs = activation(estimator(inputs, q(kernel)) + bias)`.

    Takes the arguments of `keras.layers.Dense` (same names and defaults) and
    a `posterior` object that owns the kernel's variables.
    """

    # Estimators a subclass may take as an argument (a matmul also applies
    # a batch of per-example kernels).
    allowed_estimators = estimators.DENSE_ESTIMATORS

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
        *,
        posterior,
        kl_weight=None,
        inference="mean",
        seed=None,
        **kwargs,
    ):
        super().__init__(
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
        self.units = _validation.positive_integer("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.posterior = posterior
        self.input_spec = keras.layers.InputSpec(min_ndim=2)
        self.supports_masking = True

    def build(self, input_shape):
        input_dim = input_shape[-1]
        self.posterior.build(
            self,
            (input_dim, self.units),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._build_stochastic_state()
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: input_dim})

    def _linear(self, inputs, kernel):
        return ops.matmul(inputs, kernel)

    def call(self, inputs, training=False):
        outputs = self._stochastic_linear(
            self._linear, inputs, training, out_channels=self.units
        )
        if self.bias is not None:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
            }
        )
        config.update(self.posterior.get_config())
        return config


class GaussianDense(GaussianKernelMixin, BaseStochasticDense):
    """Dense layer with a mean-field Gaussian kernel; `estimator` set by subclasses."""

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
        kernel_stddev_initializer=0.01,
        prior="normal",
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
            posterior=posteriors.GaussianPosterior(kernel_stddev_initializer, prior),
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
