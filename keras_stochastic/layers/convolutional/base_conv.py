"""Convolution family, rank-generic: the conv operator, shapes and arguments."""

import keras
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic import estimators
from keras_stochastic import posteriors
from keras_stochastic.layers.base_stochastic import GaussianKernelMixin
from keras_stochastic.layers.base_stochastic import StochasticLayer


def causal_pad(inputs, layer):
    """`inputs` padded on the left for a causal 1D convolution `layer`."""
    left = layer.dilation_rate[0] * (layer.kernel_size[0] - 1)
    pads = [[0, 0], [left, 0], [0, 0]]
    if layer.data_format == "channels_first":
        pads = [[0, 0], [0, 0], [left, 0]]
    return ops.pad(inputs, pads)


class BaseStochasticConv(StochasticLayer):
    """`outputs = activation(estimator(inputs, q(kernel)) + bias)` with a convolution.

    Takes the arguments of `keras.layers.Conv{1,2,3}D` (same names and
    defaults); the rank comes from the subclass's `rank` attribute.
    """

    rank = None
    # Estimators a subclass may take as an argument (not the per-example
    # one: a convolution takes one kernel for the whole batch).
    allowed_estimators = estimators.CONV_ESTIMATORS

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
        rank = self.rank
        self.filters = _validation.positive_integer("filters", filters)
        groups = _validation.positive_integer("groups", groups)
        if self.filters % groups != 0:
            raise ValueError(
                "The number of filters must be divisible by the number of groups. "
                f"Received: groups={groups}, filters={filters}"
            )
        self.groups = groups
        self.kernel_size = _compat.standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = _compat.standardize_tuple(strides, rank, "strides")
        self.dilation_rate = _compat.standardize_tuple(
            dilation_rate, rank, "dilation_rate"
        )
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` is not supported together with `dilation_rate > 1`. "
                f"Received: strides={self.strides}, dilation_rate={self.dilation_rate}"
            )
        self.padding = _compat.standardize_padding(padding, allow_causal=rank == 1)
        self.data_format = _compat.standardize_data_format(data_format)
        self.activation = keras.activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.posterior = posterior
        self.input_spec = keras.layers.InputSpec(min_ndim=rank + 2)

    @property
    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def build(self, input_shape):
        input_channels = input_shape[self._channel_axis]
        if input_channels is None:
            raise ValueError(
                "The channel dimension of the inputs must be defined. "
                f"Received: input_shape={input_shape}"
            )
        if input_channels % self.groups != 0:
            raise ValueError(
                "The number of input channels must be divisible by the number of "
                f"groups. Received: groups={self.groups}, input_shape={input_shape}"
            )
        self.posterior.build(
            self,
            self.kernel_size + (input_channels // self.groups, self.filters),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._build_stochastic_state()
        self.input_spec = keras.layers.InputSpec(
            min_ndim=self.rank + 2, axes={self._channel_axis: input_channels}
        )

    def _linear(self, inputs, kernel):
        return ops.conv(
            inputs,
            kernel,
            strides=list(self.strides),
            padding="valid" if self.padding == "causal" else self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )

    def call(self, inputs, training=False):
        if self.padding == "causal":
            inputs = causal_pad(inputs, self)
        outputs = self._stochastic_linear(
            self._linear, inputs, training, self._channel_axis, self.filters
        )
        if self.bias is not None:
            if self.data_format == "channels_last":
                shape = (1,) * (self.rank + 1) + (self.filters,)
            else:
                shape = (1, self.filters) + (1,) * self.rank
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return _compat.compute_conv_output_shape(
            input_shape,
            self.filters,
            self.kernel_size,
            strides=self.strides,
            padding="same" if self.padding == "causal" else self.padding,
            data_format=self.data_format,
            dilation_rate=self.dilation_rate,
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "groups": self.groups,
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


class GaussianConv(GaussianKernelMixin, BaseStochasticConv):
    """Convolution with a mean-field Gaussian kernel; `rank` and `estimator` set by subclasses."""

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
        kernel_stddev_initializer=0.01,
        prior="normal",
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
            posterior=posteriors.GaussianPosterior(kernel_stddev_initializer, prior),
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
