"""Recurrent family: stochastic RNN cells, and the layers that loop them.

A cell holds two Gaussian kernels, `kernel` (inputs to gates) and
`recurrent_kernel` (state to gates; optionally a deterministic point
estimate), and draws their noise once per sequence, before the time loop:

- `keras.layers.RNN` calls the cell's `get_dropout_mask(first_step_inputs)`
  and `get_recurrent_dropout_mask(initial_state)` once per call, before its
  loop, and `reset_dropout_mask()` / `reset_recurrent_dropout_mask()` after it
  (Keras draws its per-sequence dropout masks there, `dropout_rnn_cell.py`).
  Our cells draw there too: each hook draws its kernel's perturbation
  (flipout: `Delta W` and the sign vectors; LRT: a seed for the pre-activation
  noise) and adds its kernel's `kl_weight * KL`, once per call. Every step
  reuses the draw: JAX cannot advance a seed generator inside a `lax.scan`,
  so the loop body never draws from the layer's generator.
- Flipout: `z_t = x_t M + ((x_t * s) Delta W) * r + h_{t-1} M_r +
  ((h_{t-1} * s_h) Delta W_r) * r_h + b`, with one `Delta W`, `Delta W_r` and
  one set of signs per sequence (Wen et al., 2018, Section 3.2).
- LRT: `z_t = x_t M + h_{t-1} M_r + b + sqrt(x_t^2 sigma^2 +
  h_{t-1}^2 sigma_r^2 + eps0) * zeta_t` with a fresh `zeta_t ~ N(0, 1)` at
  every step: each step's pre-activations follow their marginal under
  weights resampled for every example and every step. A cell does not know
  the step index, so step `t` draws `zeta_t` from a counter-based stream keyed
  by the per-call seed folded with a digest of the bits of `h_{t-1}`
  (`rng.fold_in`): fresh at every step (the noise changes the state),
  reproducible for a given seed, and stateless inside the loop.

The time loop is Keras's own (`keras.layers.RNN`). Computing the input
projection of the whole sequence before the loop, which the per-sequence
perturbation allows, was measured slower on CPU for both backends: it widens
the loop's input from `features` to `gates * units` channels (see
`benchmarks/RESULTS.md`, section "Recurrent layers").
"""

import collections
import re

import keras
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic import estimators
from keras_stochastic import posteriors
from keras_stochastic.estimators import columns
from keras_stochastic.layers.base_stochastic import GaussianKernelMixin
from keras_stochastic.layers.base_stochastic import StochasticLayer

RECURRENT_ESTIMATORS = ("flipout", "local_reparameterization")

# One sequence's draws of a kernel, shared by every time step: `sample`, the
# estimator's `Draw` (None for a point-estimate recurrent kernel), `mean`, the
# mean-mode `Draw`, and `bias`, the bias added to this kernel's projection (in
# the compute dtype), or None.
SequenceDraw = collections.namedtuple("SequenceDraw", ["sample", "mean", "bias"])


def _state_digest(state):
    """An int32 digest of the bits of `state` (wrapping sum; no gradient)."""
    state = ops.cast(ops.stop_gradient(state), "float32")
    return ops.sum(ops.view(state, "int32"))


def _snake_case(name):
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class BaseStochasticRNNCell(
    GaussianKernelMixin, StochasticLayer, _compat.DropoutRNNCell
):
    """An RNN cell with mean-field Gaussian kernels; gate maths in subclasses.

    Subclasses set `gates` (the number of `units`-wide blocks of the kernels),
    `state_size` and `output_size`, and implement `_step`; thin public classes
    set `estimator` (`"flipout"` or `"local_reparameterization"`).
    """

    gates = 1

    def __init__(
        self,
        units,
        activation,
        use_bias,
        kernel_initializer,
        recurrent_initializer,
        bias_initializer,
        kernel_regularizer,
        recurrent_regularizer,
        bias_regularizer,
        kernel_constraint,
        recurrent_constraint,
        bias_constraint,
        dropout,
        recurrent_dropout,
        kernel_stddev_initializer,
        recurrent_kernel_stddev_initializer,
        stochastic_recurrent_kernel,
        prior,
        kl_weight,
        inference,
        seed,
        **kwargs,
    ):
        super().__init__(kl_weight=kl_weight, inference=inference, seed=seed, **kwargs)
        estimators.get(self.estimator, RECURRENT_ESTIMATORS)
        self.units = _validation.positive_integer("units", units)
        self.activation = keras.activations.get(activation)
        self.use_bias = _validation.boolean("use_bias", use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = keras.regularizers.get(recurrent_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.kernel_constraint = keras.constraints.get(kernel_constraint)
        self.recurrent_constraint = keras.constraints.get(recurrent_constraint)
        self.bias_constraint = keras.constraints.get(bias_constraint)
        self.dropout = _validation.fraction("dropout", dropout)
        self.recurrent_dropout = _validation.fraction(
            "recurrent_dropout", recurrent_dropout
        )
        self.stochastic_recurrent_kernel = _validation.boolean(
            "stochastic_recurrent_kernel", stochastic_recurrent_kernel
        )
        self.posterior = posteriors.GaussianPosterior(kernel_stddev_initializer, prior)
        if self.stochastic_recurrent_kernel:
            if recurrent_kernel_stddev_initializer is None:
                recurrent_kernel_stddev_initializer = self.posterior.stddev_initializer
            self.recurrent_posterior = posteriors.GaussianPosterior(
                recurrent_kernel_stddev_initializer, prior, prefix="recurrent_kernel"
            )
        elif recurrent_kernel_stddev_initializer is not None:
            raise ValueError(
                "Argument `recurrent_kernel_stddev_initializer` must be None when "
                "`stochastic_recurrent_kernel=False` (the recurrent kernel is then "
                "a point estimate). Received: recurrent_kernel_stddev_initializer="
                f"{recurrent_kernel_stddev_initializer!r}"
            )
        else:
            self.recurrent_posterior = None
        self._input_draw = None
        self._recurrent_draw = None

    # Weights.

    def build(self, input_shape):
        width = self.gates * self.units
        self.posterior.build(
            self,
            (input_shape[-1], width),
            self.kernel_initializer,
            self.kernel_regularizer,
            self.kernel_constraint,
        )
        if self.recurrent_posterior is not None:
            self.recurrent_posterior.build(
                self,
                (self.units, width),
                self.recurrent_initializer,
                self.recurrent_regularizer,
                self.recurrent_constraint,
            )
            self.recurrent_kernel = None
        else:
            self.recurrent_kernel = self.add_weight(
                name="recurrent_kernel",
                shape=(self.units, width),
                initializer=self.recurrent_initializer,
                regularizer=self.recurrent_regularizer,
                constraint=self.recurrent_constraint,
            )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=self._bias_shape(),
                initializer=self._bias_initializer(),
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._build_stochastic_state()

    def _bias_shape(self):
        return (self.gates * self.units,)

    def _bias_initializer(self):
        return self.bias_initializer

    def _split_bias(self, bias):
        """`(input_bias, recurrent_bias)`; only GRU with `reset_after` has the second."""
        return bias, None

    @property
    def recurrent_kernel_mean(self):
        """The trainable posterior mean of the recurrent kernel (or the point estimate)."""
        if self.recurrent_posterior is None:
            return self.recurrent_kernel
        return self.recurrent_posterior.mean

    @property
    def recurrent_kernel_stddev(self):
        """The posterior standard deviation of the recurrent kernel (None if deterministic)."""
        if self.recurrent_posterior is None:
            return None
        return self.recurrent_posterior.stddev()

    def _posteriors(self):
        return [p for p in (self.posterior, self.recurrent_posterior) if p is not None]

    def _prunable_variables(self):
        """The kernel means (or the point-estimate recurrent kernel), never the bias."""
        return [self.posterior.mean, self.recurrent_kernel_mean]

    def kl_divergence(self):
        """KL(q || p) of both kernels, float32, without the kl_weight."""
        total = None
        for posterior in self._posteriors():
            value = posterior(self.compute_dtype).kl(self.seed_generator)
            total = value if total is None else total + value
        return total

    # Per-sequence draws (the hooks `keras.layers.RNN` calls before its loop).

    def get_dropout_mask(self, step_input):
        if self._input_draw is None:
            self._input_draw = self._draw_input_side(step_input)
        return super().get_dropout_mask(step_input)

    def get_recurrent_dropout_mask(self, step_input):
        if self._recurrent_draw is None:
            self._recurrent_draw = self._draw_recurrent_side(step_input)
        return super().get_recurrent_dropout_mask(step_input)

    def reset_dropout_mask(self):
        super().reset_dropout_mask()
        self._input_draw = None

    def reset_recurrent_dropout_mask(self):
        super().reset_recurrent_dropout_mask()
        self._recurrent_draw = None

    def _bias_draws(self):
        if self.bias is None:
            return None, None
        return self._split_bias(ops.cast(self.bias, self.compute_dtype))

    def _draw_input_side(self, step_input):
        return self._draw(self.posterior, step_input, self._bias_draws()[0])

    def _draw_recurrent_side(self, state):
        bias = self._bias_draws()[1]
        if self.recurrent_posterior is None:
            kernel = ops.cast(self.recurrent_kernel, self.compute_dtype)
            return SequenceDraw(None, estimators.Draw(mean=kernel), bias)
        return self._draw(self.recurrent_posterior, state, bias)

    def _draw(self, posterior, step_input, bias):
        """Draws one kernel's perturbation for a whole sequence; adds its KL."""
        seeds = [self.seed_generator] * self._estimator.num_seeds
        draw, weights = self._draw_kernel(
            posterior, step_input, seeds, -1, self.gates * self.units
        )
        self._add_kl(weights)
        return SequenceDraw(draw, estimators.MEAN.draw(weights), bias)

    # One time step.

    def _project(self, inputs, draw, sample, start=0, stop=None):
        """`inputs @ kernel[:, start:stop] + bias[start:stop]`, perturbed if `sample`."""
        if sample and draw.sample is not None:
            projection = self._estimator.project(
                ops.matmul, inputs, draw.sample.columns(start, stop)
            )
        else:
            projection = estimators.MEAN.project(
                ops.matmul, inputs, draw.mean.columns(start, stop)
            )
        return projection.plus_bias(columns(draw.bias, start, stop))

    def _preactivation(self, inputs, recurrent, noise, scale=None):
        """`inputs + scale * recurrent` (`Projection`s), sampled once with `noise`."""
        if scale is not None:
            recurrent = recurrent.scaled(scale)
        return self._estimator.sample(inputs + recurrent, noise)

    def _step(self, inputs, states, recurrent, sample, zeta, recurrent_mask):
        """One time step from the projected inputs; returns `(output, new_states)`.

        Args:
            inputs: `Projection` of the step's inputs (all gates).
            states: The previous states, as `keras.layers.RNN` passes them.
            recurrent: The recurrent kernel's `KernelDraw`.
            sample: Python bool, whether to perturb the recurrent projection.
            zeta: The step's pre-activation noise for all gates (local
                reparameterization), or None.
            recurrent_mask: Recurrent dropout mask, or None.
        """
        raise NotImplementedError

    def call(self, inputs, states, training=False):
        self._warn_if_default_kl_weight(training)
        state = states[0] if keras.tree.is_nested(states) else states
        # Draws for the sequence if no RNN layer did (a cell called directly).
        dropout_mask = self.get_dropout_mask(inputs)
        recurrent_mask = self.get_recurrent_dropout_mask(state)
        if training and dropout_mask is not None:
            inputs = inputs * dropout_mask
        if not training:
            recurrent_mask = None
        input_draw, recurrent_draw = self._input_draw, self._recurrent_draw

        def step(sample):
            projected = self._project(inputs, input_draw, sample)
            zeta = None
            if projected.variance is not None:
                zeta = self._estimator.pre_activation_noise(
                    ops.shape(projected.value), input_draw.sample, _state_digest(state)
                )
            return self._step(
                projected, states, recurrent_draw, sample, zeta, recurrent_mask
            )

        return self._switch(training, lambda: step(True), lambda: step(False))

    def get_initial_state(self, batch_size=None):
        sizes = (
            self.state_size if isinstance(self.state_size, list) else [self.state_size]
        )
        return [
            ops.zeros((batch_size, size), dtype=self.compute_dtype) for size in sizes
        ]

    def get_config(self):
        config = super().get_config()
        recurrent_stddev = None
        if self.recurrent_posterior is not None:
            recurrent_stddev = keras.initializers.serialize(
                self.recurrent_posterior.stddev_initializer
            )
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer
                ),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
                "recurrent_regularizer": keras.regularizers.serialize(
                    self.recurrent_regularizer
                ),
                "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": keras.constraints.serialize(
                    self.kernel_constraint
                ),
                "recurrent_constraint": keras.constraints.serialize(
                    self.recurrent_constraint
                ),
                "bias_constraint": keras.constraints.serialize(self.bias_constraint),
                "dropout": self.dropout,
                "recurrent_dropout": self.recurrent_dropout,
                "stochastic_recurrent_kernel": self.stochastic_recurrent_kernel,
                "recurrent_kernel_stddev_initializer": recurrent_stddev,
            }
        )
        config.update(self.posterior.get_config())
        return config


def _cell_property(name):
    return property(
        lambda self: getattr(self.cell, name), doc=f"The cell's `{name}` (read-only)."
    )


class BaseStochasticRNN(keras.layers.RNN):
    """`keras.layers.RNN` over a stochastic cell, with the cell's arguments as its own.

    Family subclasses build the cell from Keras-twin arguments; thin public
    classes set `cell_class`.
    """

    cell_class = None

    def __init__(self, cell_kwargs, **kwargs):
        cell = self.cell_class(
            **cell_kwargs,
            dtype=kwargs.get("dtype", None),
            trainable=kwargs.get("trainable", True),
            name=_snake_case(self.cell_class.__name__),
        )
        super().__init__(cell, **kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        self.cell._warn_if_default_kl_weight(training, owner=self)
        return super().call(
            sequences, mask=mask, training=training, initial_state=initial_state
        )

    units = _cell_property("units")
    activation = _cell_property("activation")
    use_bias = _cell_property("use_bias")
    kernel_initializer = _cell_property("kernel_initializer")
    recurrent_initializer = _cell_property("recurrent_initializer")
    bias_initializer = _cell_property("bias_initializer")
    kernel_regularizer = _cell_property("kernel_regularizer")
    recurrent_regularizer = _cell_property("recurrent_regularizer")
    bias_regularizer = _cell_property("bias_regularizer")
    kernel_constraint = _cell_property("kernel_constraint")
    recurrent_constraint = _cell_property("recurrent_constraint")
    bias_constraint = _cell_property("bias_constraint")
    dropout = _cell_property("dropout")
    recurrent_dropout = _cell_property("recurrent_dropout")
    stochastic_recurrent_kernel = _cell_property("stochastic_recurrent_kernel")
    kernel_mean = _cell_property("kernel_mean")
    kernel_stddev = _cell_property("kernel_stddev")
    recurrent_kernel_mean = _cell_property("recurrent_kernel_mean")
    recurrent_kernel_stddev = _cell_property("recurrent_kernel_stddev")
    prior = _cell_property("prior")

    @property
    def kl_weight(self):
        """Float multiplying the cell's KL terms; settable, even after compiling."""
        return self.cell.kl_weight

    @kl_weight.setter
    def kl_weight(self, value):
        self.cell.kl_weight = value

    @property
    def inference(self):
        """`"mean"` or `"sample"`; settable, even after compiling."""
        return self.cell.inference

    @inference.setter
    def inference(self, mode):
        self.cell.inference = mode

    def kl_divergence(self):
        """KL(q || p) of the cell's kernels, float32, without the kl_weight."""
        return self.cell.kl_divergence()

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "dtype", "trainable"):
            del cell_config[key]
        config.update(cell_config)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
