"""SimpleRNN family: `h_t = activation(x_t W + h_{t-1} W_r + b)` with Gaussian kernels."""

import keras

from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNN
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNNCell


class BaseSimpleRNNCell(BaseStochasticRNNCell):
    """`keras.layers.SimpleRNNCell`'s arguments and maths; `estimator` set by subclasses."""

    gates = 1

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        kernel_stddev_initializer=0.01,
        recurrent_kernel_stddev_initializer=None,
        stochastic_recurrent_kernel=True,
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
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            kernel_stddev_initializer=kernel_stddev_initializer,
            recurrent_kernel_stddev_initializer=recurrent_kernel_stddev_initializer,
            stochastic_recurrent_kernel=stochastic_recurrent_kernel,
            prior=prior,
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
        self.state_size = self.units
        self.output_size = self.units

    def _step(self, inputs, states, recurrent, sample, zeta, recurrent_mask):
        nested = keras.tree.is_nested(states)
        state = states[0] if nested else states
        if recurrent_mask is not None:
            state = state * recurrent_mask
        output = self._preactivation(
            inputs, self._project(state, recurrent, sample), zeta
        )
        if self.activation is not None:
            output = self.activation(output)
        return output, [output] if nested else output


class BaseSimpleRNN(BaseStochasticRNN):
    """`keras.layers.SimpleRNN`'s arguments over a stochastic cell."""

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        kernel_stddev_initializer=0.01,
        recurrent_kernel_stddev_initializer=None,
        stochastic_recurrent_kernel=True,
        prior="normal",
        kl_weight=None,
        inference="mean",
        **kwargs,
    ):
        super().__init__(
            dict(
                units=units,
                activation=activation,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                recurrent_initializer=recurrent_initializer,
                bias_initializer=bias_initializer,
                kernel_regularizer=kernel_regularizer,
                recurrent_regularizer=recurrent_regularizer,
                bias_regularizer=bias_regularizer,
                kernel_constraint=kernel_constraint,
                recurrent_constraint=recurrent_constraint,
                bias_constraint=bias_constraint,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                kernel_stddev_initializer=kernel_stddev_initializer,
                recurrent_kernel_stddev_initializer=recurrent_kernel_stddev_initializer,
                stochastic_recurrent_kernel=stochastic_recurrent_kernel,
                prior=prior,
                kl_weight=kl_weight,
                inference=inference,
                seed=seed,
            ),
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
