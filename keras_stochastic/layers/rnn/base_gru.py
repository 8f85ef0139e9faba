"""GRU family: Keras's GRU gates (z, r, h), both `reset_after` conventions, Gaussian kernels."""

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic.estimators import columns
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNN
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNNCell


class BaseGRUCell(BaseStochasticRNNCell):
    """`keras.layers.GRUCell`'s arguments and maths; `estimator` set by subclasses."""

    gates = 3

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
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
        reset_after=True,
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
        self.reset_after = _validation.boolean("reset_after", reset_after)
        self.state_size = self.units
        self.output_size = self.units

    def _bias_shape(self):
        # `reset_after` keeps separate input and recurrent biases, as Keras does.
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _split_bias(self, bias):
        if self.reset_after:
            return bias[0], bias[1]
        return bias, None

    def _step(self, inputs, states, recurrent, sample, zeta, recurrent_mask):
        nested = keras.tree.is_nested(states)
        previous = states[0] if nested else states
        state = previous if recurrent_mask is None else previous * recurrent_mask
        gates = 2 * self.units
        if self.reset_after:
            projected = self._project(state, recurrent, sample)
            update_reset = projected.columns(0, gates)
        else:
            update_reset = self._project(state, recurrent, sample, 0, gates)
        update_reset = self._preactivation(
            inputs.columns(0, gates), update_reset, columns(zeta, 0, gates)
        )
        update, reset = ops.split(self.recurrent_activation(update_reset), 2, axis=-1)
        candidate_inputs = inputs.columns(gates)
        candidate_zeta = columns(zeta, gates)
        if self.reset_after:
            candidate = self._preactivation(
                candidate_inputs, projected.columns(gates), candidate_zeta, scale=reset
            )
        else:
            candidate = self._preactivation(
                candidate_inputs,
                self._project(reset * state, recurrent, sample, gates),
                candidate_zeta,
            )
        candidate = self.activation(candidate)
        output = update * previous + (1 - update) * candidate
        return output, [output] if nested else output

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "recurrent_activation": keras.activations.serialize(
                    self.recurrent_activation
                ),
                "reset_after": self.reset_after,
            }
        )
        return config


class BaseGRU(BaseStochasticRNN):
    """`keras.layers.GRU`'s arguments over a stochastic cell."""

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
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
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        reset_after=True,
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
                kernel_regularizer=kernel_regularizer,
                recurrent_regularizer=recurrent_regularizer,
                bias_regularizer=bias_regularizer,
                kernel_constraint=kernel_constraint,
                recurrent_constraint=recurrent_constraint,
                bias_constraint=bias_constraint,
                dropout=dropout,
                recurrent_dropout=recurrent_dropout,
                reset_after=reset_after,
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
    def reset_after(self):
        """The cell's `reset_after` (read-only)."""
        return self.cell.reset_after
