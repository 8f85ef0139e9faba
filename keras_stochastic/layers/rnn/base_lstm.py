"""LSTM family: Keras's LSTM gates (i, f, c, o) with Gaussian kernels."""

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNN
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNNCell


class BaseLSTMCell(BaseStochasticRNNCell):
    """`keras.layers.LSTMCell`'s arguments and maths; `estimator` set by subclasses."""

    gates = 4

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
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
        self.recurrent_activation = keras.activations.get(recurrent_activation)
        self.unit_forget_bias = _validation.boolean(
            "unit_forget_bias", unit_forget_bias
        )
        self.state_size = [self.units, self.units]
        self.output_size = self.units

    def _bias_initializer(self):
        if not self.unit_forget_bias:
            return self.bias_initializer
        units = self.units

        def initializer(_, *args, **kwargs):
            return ops.concatenate(
                [
                    self.bias_initializer((units,), *args, **kwargs),
                    keras.initializers.get("ones")((units,), *args, **kwargs),
                    self.bias_initializer((units * 2,), *args, **kwargs),
                ]
            )

        return initializer

    def _step(self, inputs, states, recurrent, sample, zeta, recurrent_mask):
        state, carry = states[0], states[1]
        if recurrent_mask is not None:
            state = state * recurrent_mask
        z = self._preactivation(inputs, self._project(state, recurrent, sample), zeta)
        z_i, z_f, z_c, z_o = ops.split(z, 4, axis=-1)
        carry = self.recurrent_activation(z_f) * carry + self.recurrent_activation(
            z_i
        ) * self.activation(z_c)
        output = self.recurrent_activation(z_o) * self.activation(carry)
        return output, [output, carry]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "recurrent_activation": keras.activations.serialize(
                    self.recurrent_activation
                ),
                "unit_forget_bias": self.unit_forget_bias,
            }
        )
        return config


class BaseLSTM(BaseStochasticRNN):
    """`keras.layers.LSTM`'s arguments over a stochastic cell."""

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
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
                recurrent_activation=recurrent_activation,
                use_bias=use_bias,
                kernel_initializer=kernel_initializer,
                recurrent_initializer=recurrent_initializer,
                bias_initializer=bias_initializer,
                unit_forget_bias=unit_forget_bias,
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

    @property
    def recurrent_activation(self):
        """The cell's `recurrent_activation` (read-only)."""
        return self.cell.recurrent_activation

    @property
    def unit_forget_bias(self):
        """The cell's `unit_forget_bias` (read-only)."""
        return self.cell.unit_forget_bias
