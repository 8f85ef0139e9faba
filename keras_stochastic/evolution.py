"""Evolution strategies vectorized with flipout: a whole population in one pass.

Evolution strategies (ES) maximise `J(theta) = E_eps[F(theta + sigma eps)]`
for a fitness `F` without backpropagation. Its gradient is estimated from a
population of `P` perturbed copies ("members") of the parameters:

    grad J ~ 1 / (P sigma) * sum_p F_p eps_p,

and with antithetic pairs (members `eps` and `-eps`) the sum runs over pairs
of `(F_p+ - F_p-)`, which cancels whatever part of the fitness the
perturbation does not change. Any Keras optimizer then takes the step (on
`-grad J`, as optimizers minimise).

Flipout (Wen et al., 2018) makes the population cheap. Member `p` perturbs a
kernel `W` (inputs x outputs) by `sigma * E o (s_p r_p^T)`: one Gaussian `E` per
kernel and generation, shared by the whole population, and Rademacher sign
vectors `s_p` (inputs) and `r_p` (outputs) per member; an antithetic partner
flips `r`. Every entry of `E o (s_p r_p^T)` is standard normal and two members'
perturbations are uncorrelated, so the members are pseudo-independent. The
rows of one batch belong to the members, and the layer's output under every
member's weights is the flipout pass of `ks.layers.DenseFlipout`:

    y = x W + ((x o s_p) (sigma E)) o r_p,

two matmuls for the whole population (convolutions likewise, the signs on
the channels). No member's weights are ever formed, and neither are they for
the gradient estimate: `sum_p F_p eps_p = E o (S^T diag(F) R)` is one
`(in x P) (P x out)` matmul per kernel. Memory is `O(P (in + out) + in out)`
per layer instead of `O(P in out)`. Biases take plain Gaussian noise per
member (`P x out` numbers).

Fitness values are shaped by centred ranks (Salimans et al., 2017) by
default: the member with the lowest fitness gets -0.5, the highest +0.5, ties
the mean of their ranks, so the update ignores the fitness scale and outliers.

What is evolved: the kernels and biases of `keras.layers.Dense` and
`Conv1D/2D/3D` layers, and the kernel means (and biases) of keras_stochastic
dense and convolution layers with a mean, wherever the variable is
trainable. Frozen layers, and layers without kernels (pooling,
normalization, activations, reshapes), run as they are; layers with
trainable kernels that ES cannot perturb this way (recurrent layers,
`EinsumDense`, transposed, depthwise, separable or grouped convolutions,
zero-mean variance layers) are an error: freeze them (`layer.trainable =
False`) to keep them as they are. Members are evaluated with
`training=False` (no dropout, batch statistics never mix members) and
keras_stochastic layers at their mean plus the member's perturbation (their
own weight noise is not sampled).
"""

import contextlib
import functools

import keras
import numpy as np
from keras import ops
from keras import tree

from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic import estimators
from keras_stochastic import kernels
from keras_stochastic import rng
from keras_stochastic.layers.base_stochastic import StochasticLayer
from keras_stochastic.layers.convolutional import base_conv
from keras_stochastic.layers.core.base_dense import BaseStochasticDense

__all__ = ["FlipoutES", "Population", "centered_ranks"]

FITNESS_SHAPINGS = ("centered_ranks", "standardized", None)

_KERAS_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
# Random draws per evolved layer and generation: E, s, r and the bias noise.
_DRAWS_PER_LAYER = 4


class _Target:
    """One evolved layer: its kernel and bias variables and how to perturb its call."""

    def __init__(self, layer):
        self.layer = layer
        if isinstance(layer, StochasticLayer):
            self.kind = "stochastic"
            kernel = getattr(layer.posterior, "mean", None)
            self.channel_axis = getattr(layer, "_channel_axis", -1)
        elif isinstance(layer, keras.layers.Dense):
            self.kind = "dense"
            kernel = layer.kernel
            self.channel_axis = -1
        else:
            self.kind = "conv"
            kernel = layer.kernel
            self.channel_axis = -1 if layer.data_format == "channels_last" else 1
        self.kernel = kernel if kernel.trainable else None
        bias = getattr(layer, "bias", None)
        self.bias = bias if bias is not None and bias.trainable else None
        self.in_channels = kernel.shape[-2]
        self.out_channels = kernel.shape[-1]

    @property
    def variables(self):
        return [v for v in (self.kernel, self.bias) if v is not None]

    def install(self, linear_fn):
        """Routes the layer's linear map through `linear_fn(linear, inputs, kernel)`."""
        layer = self.layer
        if self.kind == "stochastic":

            def stochastic_linear(
                linear, inputs, training, channel_axis=-1, out_channels=None
            ):
                mean = layer.posterior(layer.compute_dtype).mean
                return linear_fn(linear, inputs, mean)

            object.__setattr__(layer, "_stochastic_linear", stochastic_linear)
        elif self.kind == "dense":

            def call(inputs, training=None):
                # `keras.layers.Dense.call`, with the matmul perturbed.
                outputs = linear_fn(ops.matmul, inputs, layer.kernel)
                if layer.bias is not None:
                    outputs = ops.add(outputs, layer.bias)
                if layer.activation is not None:
                    outputs = layer.activation(outputs)
                return outputs

            object.__setattr__(layer, "call", call)
        else:

            def call(inputs):
                # `keras.layers.Conv1D/2D/3D.call`, with the convolution perturbed.
                padding = layer.padding
                if padding == "causal":
                    inputs, padding = base_conv.causal_pad(inputs, layer), "valid"

                def convolution(inputs, kernel):
                    return ops.conv(
                        inputs,
                        kernel,
                        strides=list(layer.strides),
                        padding=padding,
                        dilation_rate=layer.dilation_rate,
                        data_format=layer.data_format,
                    )

                outputs = linear_fn(convolution, inputs, layer.kernel)
                if layer.use_bias:
                    shape = [1] * (layer.rank + 2)
                    shape[self.channel_axis] = layer.filters
                    outputs = ops.add(outputs, ops.reshape(layer.bias, shape))
                if layer.activation is not None:
                    outputs = layer.activation(outputs)
                return outputs

            object.__setattr__(layer, "call", call)

    def uninstall(self):
        name = "_stochastic_linear" if self.kind == "stochastic" else "call"
        if name in vars(self.layer):
            object.__delattr__(self.layer, name)


def _unsupported_reason(layer):
    """Why ES cannot perturb the kernels of `layer` (a layer with kernels), or None."""
    if isinstance(layer, StochasticLayer):
        if not isinstance(layer, (BaseStochasticDense, base_conv.BaseStochasticConv)):
            return "a stochastic recurrent layer"
        if getattr(layer.posterior, "mean", None) is None:
            return "a zero-mean layer (no kernel mean to evolve)"
        return None
    if isinstance(layer, keras.layers.Dense):
        if getattr(layer, "lora_enabled", False) or layer.quantization_mode:
            return "a LoRA-enabled or quantized Dense layer"
        return None
    if isinstance(layer, _KERAS_CONVS):
        if layer.groups != 1:
            return f"a grouped convolution (groups={layer.groups})"
        return None
    return f"a {type(layer).__name__} layer"


def _targets(model):
    targets, unsupported = [], []
    for layer in _compat.flatten_layers(model, include_self=False):
        if not kernels.has_kernels(layer):
            continue
        reason = _unsupported_reason(layer)
        if reason is not None:
            if any(v.trainable for v in kernels.kernel_variables(layer)):
                unsupported.append(f"{layer.name!r} ({reason})")
            continue
        target = _Target(layer)
        if target.variables:
            targets.append(target)
    if unsupported:
        raise ValueError(
            "FlipoutES evolves the kernels of Dense and Conv1D/2D/3D layers "
            "(and the kernel means of keras_stochastic dense and convolution "
            "layers); these layers have trainable kernels it cannot perturb: "
            f"{', '.join(unsupported)}. Freeze them (`layer.trainable = False`) "
            "to run them as they are."
        )
    if not targets:
        raise ValueError(
            "FlipoutES found nothing to evolve: the model has no trainable "
            "kernel or bias of a Dense or Conv1D/2D/3D layer. Received: "
            f"model={model.name!r}"
        )
    return targets


def centered_ranks(fitness):
    """Fitness `(P,)` mapped to centred ranks in [-0.5, 0.5]; ties share their mean rank."""
    fitness = ops.cast(fitness, "float32")
    size = fitness.shape[0]
    ordered = ops.sort(fitness)
    low = ops.searchsorted(ordered, fitness, side="left")
    high = ops.searchsorted(ordered, fitness, side="right")
    ranks = ops.cast(low + high - 1, "float32") / 2.0
    return ranks / float(max(size - 1, 1)) - 0.5


def _standardized(fitness):
    fitness = ops.cast(fitness, "float32")
    centred = fitness - ops.mean(fitness)
    return centred / (ops.sqrt(ops.mean(ops.square(centred))) + 1e-8)


class Population:
    """One generation's population, as a fitness function sees it.

    `population(inputs)` evaluates every member at once: `inputs` has
    `size * k` rows, member `p` owning rows `p * k ... p * k + k - 1` (with
    `k = 1`, row `p` is member `p`'s input, e.g. the observation of its
    environment), and the outputs come back as a NumPy array, rows in the
    same order. The members' perturbations are fixed for the generation.
    """

    def __init__(self, forward, size):
        self._forward = forward
        self.size = size

    def __call__(self, inputs):
        def convert(values):
            values = np.asarray(values)
            if values.dtype.kind == "f":
                values = values.astype("float32")
            return values

        inputs = tree.map_structure(convert, inputs)
        rows = tree.flatten(inputs)[0].shape[0]
        if rows % self.size:
            raise ValueError(
                "A population call needs a multiple of the population size "
                f"({self.size}) of rows, member p owning the p-th block. "
                f"Received: inputs with {rows} rows"
            )
        return tree.map_structure(ops.convert_to_numpy, self._forward(inputs))


@keras.saving.register_keras_serializable(package="keras_stochastic")
class FlipoutES(keras.Model):
    """Evolution strategies for a Keras model, the population vectorized with flipout.

    Wraps a built Keras model and evolves its Dense / Conv kernels and
    biases in place (see the module docstring for the method and what is
    evolved); after training, `model.predict` uses the evolved weights.

    Supervised use, in Keras's shape: `compile(loss=..., metrics=...)` then
    `fit(x, y, ...)` (progress bar, callbacks, validation, `History`). Each
    minibatch is one generation: every member evaluates the whole minibatch
    (its fitness is minus its mean loss there), so all members see the same
    examples and differ only by their perturbations; the model's input batch
    is `population_size * batch_size` rows. The logs' `loss` and metrics are
    those of the unperturbed model on the minibatch (before the update), as
    Keras reports them; `population_loss` is the members' mean loss. Layer
    losses (regularizers, KL terms) are not part of the fitness.

    Black-box use (e.g. reinforcement learning): `evolve(fitness_fn,
    generations)` calls `fitness_fn(population)` once per generation; it
    returns the `population_size` fitness values, higher is better.

    State: the perturbations of generation `g` are drawn from `(seed, g)`,
    with `g` the optimizer's iteration count, so a run is reproducible and
    resumes exactly from a saved `FlipoutES` (`save` / `keras.saving.
    load_model` keep the model, the optimizer state and the settings).

    Args:
        model: A built Keras model (Sequential, functional or subclassed).
        population_size: Positive integer, the members per generation (even
            when `antithetic`).
        noise_stddev: Positive float, `sigma`, the perturbations' standard
            deviation.
        optimizer: A Keras optimizer (instance or name) for the update.
        antithetic: Boolean, whether members come in pairs `+eps` / `-eps`.
        fitness_shaping: `"centered_ranks"` (default), `"standardized"`
            (zero mean, unit variance) or `None` (the raw fitness: the
            unbiased estimate of `grad J`).
        seed: Integer or None (a random one, kept in the config).
        **kwargs: Base model keyword arguments, such as `name`.

    Example:

    ```python
    es = ks.evolution.FlipoutES(model, population_size=512, noise_stddev=0.05,
                                optimizer=keras.optimizers.Adam(0.03), seed=0)
    es.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
               metrics=["accuracy"])
    history = es.fit(x, y, epochs=40, batch_size=64)
    model.evaluate(x_test, y_test)  # the evolved weights
    ```
    """

    def __init__(
        self,
        model,
        population_size,
        noise_stddev,
        optimizer="adam",
        antithetic=True,
        fitness_shaping="centered_ranks",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Argument `model` must be a Keras model. "
                f"Received: model={type(model).__name__}"
            )
        if not model.built:
            raise ValueError(
                "FlipoutES needs a built model: give it an `Input` or call it "
                f"on a batch first. Received: model={model.name!r} (not built)"
            )
        self.population_size = _validation.positive_integer(
            "population_size", population_size
        )
        self.antithetic = _validation.boolean("antithetic", antithetic)
        if self.antithetic and population_size % 2:
            raise ValueError(
                "With `antithetic=True` members come in pairs, so "
                "`population_size` must be even. Received: "
                f"population_size={population_size}"
            )
        self.noise_stddev = _validation.positive("noise_stddev", noise_stddev)
        if fitness_shaping is not None:
            _validation.choice("fitness_shaping", fitness_shaping, FITNESS_SHAPINGS)
        self.fitness_shaping = fitness_shaping
        seed = _validation.seed(seed)
        self.seed = int(np.random.randint(2**31)) if seed is None else int(seed)
        self.model = model
        self._targets = _targets(model)
        self._evolved = [v for target in self._targets for v in target.variables]
        self._es_optimizer = self._built_optimizer(optimizer)
        self._population_loss = keras.metrics.Mean(name="population_loss")
        self._tracing_train_step = False
        self.built = True

    def _built_optimizer(self, optimizer):
        optimizer = keras.optimizers.get(optimizer)
        if not optimizer.built:
            optimizer.build(self._evolved)
        return optimizer

    # The evolved variables are this model's trainable ones: Keras builds the
    # optimizer on them and, on JAX, passes them as the trainable state.
    @property
    def trainable_variables(self):
        return list(self._evolved) if self.trainable else []

    @property
    def non_trainable_variables(self):
        evolved = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in evolved]

    @property
    def trainable_weights(self):
        return self.trainable_variables

    @property
    def non_trainable_weights(self):
        evolved = {id(v) for v in self.trainable_variables}
        return [v for v in self.weights if id(v) not in evolved]

    @property
    def evolved_variables(self):
        """The variables ES updates (kernels, kernel means and biases), in layer order."""
        return list(self._evolved)

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def compile(self, optimizer=None, loss=None, metrics=None, **kwargs):
        """Configures `fit` / `evaluate`: Keras's `compile`, one loss for one output.

        `optimizer` defaults to the one given to the constructor.
        """
        if optimizer is not None:
            self._es_optimizer = self._built_optimizer(optimizer)
        if loss is None or isinstance(loss, (dict, list, tuple)):
            raise ValueError(
                "FlipoutES.compile needs one loss (a name, a function or a "
                "`keras.losses.Loss`) for the model's one output: it ranks "
                f"members by it. Received: loss={loss!r}"
            )
        member_loss = keras.losses.get(loss)
        # A `Loss` object's `call` gives per-example values (no reduction).
        if isinstance(member_loss, keras.losses.Loss):
            member_loss = member_loss.call
        self._member_loss = member_loss
        super().compile(
            optimizer=self._es_optimizer, loss=loss, metrics=metrics, **kwargs
        )

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))

    def get_metrics_result(self):
        results = super().get_metrics_result()
        if not self._tracing_train_step:
            # Only training evaluates the population.
            results.pop(self._population_loss.name, None)
        return results

    # -- the population ---------------------------------------------------

    def _generation_seed(self):
        """The seed of this generation's draws: `(seed, iteration)`."""
        iteration = ops.cast(self._es_optimizer.iterations, "uint32")
        first = ops.convert_to_tensor(self.seed, dtype="uint32")
        return ops.stack([first, iteration * _DRAWS_PER_LAYER * len(self._targets)])

    def _draw(self):
        """The generation's perturbations: per target, `(E, S, R, bias noise)`."""
        size = self.population_size
        half = size // 2 if self.antithetic else size
        base = rng.PredrawnSeed(self._generation_seed())

        def seed(index):
            return rng.PredrawnSeed(
                base.next() + ops.convert_to_tensor([0, index], dtype="uint32")
            )

        draws = []
        for i, target in enumerate(self._targets):
            first = _DRAWS_PER_LAYER * i
            noise = sign_in = sign_out = bias_noise = None
            if target.kernel is not None:
                noise = rng.normal(tuple(target.kernel.shape), seed(first))
                sign_in = rng.rademacher((half, target.in_channels), seed(first + 1))
                sign_out = rng.rademacher((half, target.out_channels), seed(first + 2))
            if target.bias is not None:
                bias_noise = rng.normal((half, target.out_channels), seed(first + 3))
            if self.antithetic:
                # Partners share E and s and flip r: their perturbation is -eps.
                if sign_in is not None:
                    sign_in = ops.concatenate([sign_in, sign_in])
                    sign_out = ops.concatenate([sign_out, -sign_out])
                if bias_noise is not None:
                    bias_noise = ops.concatenate([bias_noise, -bias_noise])
            draws.append((noise, sign_in, sign_out, bias_noise))
        return draws

    def _perturbed_linear(self, target, draw):
        """`linear_fn(linear, inputs, kernel)`: the layer's linear map under every member."""
        noise, sign_in, sign_out, bias_noise = draw
        sigma = self.noise_stddev
        axis = target.channel_axis

        def linear_fn(linear, inputs, kernel):
            if noise is None:
                outputs = linear(inputs, kernel)
            else:
                flipout_draw = estimators.Draw(
                    mean=kernel,
                    noise=ops.cast(sigma * noise, inputs.dtype),
                    sign_in=estimators.GroupedSigns(sign_in, axis),
                    sign_out=estimators.GroupedSigns(sign_out, axis),
                )
                outputs = (
                    estimators.get("flipout")
                    .project(linear, inputs, flipout_draw)
                    .value
                )
            if bias_noise is not None:
                outputs = estimators.per_group(
                    ops.add, outputs, sigma * bias_noise, axis
                )
            return outputs

        return linear_fn

    @contextlib.contextmanager
    def _perturbed(self, draws):
        try:
            for target, draw in zip(self._targets, draws, strict=True):
                target.install(self._perturbed_linear(target, draw))
            yield
        finally:
            for target in self._targets:
                target.uninstall()

    def _population_outputs(self, inputs, draws):
        """The model's outputs on `inputs`, row block `p` under member `p`'s weights."""
        with self._perturbed(draws):
            return self.model(inputs, training=False)

    def _shaped(self, fitness):
        if self.fitness_shaping == "centered_ranks":
            return centered_ranks(fitness)
        if self.fitness_shaping == "standardized":
            return _standardized(fitness)
        return ops.cast(fitness, "float32")

    def _gradients(self, draws, fitness):
        """Minus the ES estimate of `grad J`, one tensor per evolved variable."""
        weights = self._shaped(fitness)
        half = self.population_size // 2 if self.antithetic else self.population_size
        if self.antithetic:
            weights = weights[:half] - weights[half:]
        scale = -1.0 / (self.population_size * self.noise_stddev)
        gradients = []
        for noise, sign_in, sign_out, bias_noise in draws:
            if noise is not None:
                # sum_p F_p eps_p = E o (S^T diag(F) R), broadcast over a
                # convolution kernel's spatial axes.
                signs = ops.matmul(
                    ops.transpose(sign_in[:half] * weights[:, None]), sign_out[:half]
                )
                gradients.append(scale * noise * signs)
            if bias_noise is not None:
                gradients.append(scale * ops.matmul(weights, bias_noise[:half]))
        return [
            ops.cast(g, v.dtype) for g, v in zip(gradients, self._evolved, strict=True)
        ]

    def _update(self, draws, fitness):
        self._es_optimizer.apply(self._gradients(draws, fitness), self._evolved)

    # -- fit ---------------------------------------------------------------

    def _member_losses(self, y, outputs, sample_weight):
        """Each member's mean loss over the minibatch, `(P,)`."""
        values = self._member_loss(y, outputs)
        values = ops.cast(values, "float32")
        if len(values.shape) > 1:
            values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
        values = ops.reshape(values, (self.population_size, -1))
        if sample_weight is None:
            return ops.mean(values, axis=1)
        weight = ops.reshape(ops.cast(sample_weight, "float32"), (1, -1))
        return ops.sum(values * weight, axis=1) / ops.sum(weight)

    def _generation(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self.model(x, training=False)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        batch = tree.flatten(x)[0].shape[0]
        _compat.loss_tracker(self).update_state(loss, sample_weight=batch)

        def tile(values):
            return ops.tile(values, [self.population_size] + [1] * (values.ndim - 1))

        draws = self._draw()
        outputs = self._population_outputs(tree.map_structure(tile, x), draws)
        losses = self._member_losses(
            tree.map_structure(tile, y), outputs, sample_weight
        )
        self._population_loss.update_state(ops.mean(losses))
        self._update(draws, -losses)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def train_step(self, *args):
        """One generation on a minibatch (Keras calls it from `fit`)."""
        self._tracing_train_step = True
        try:
            if keras.backend.backend() == "jax":
                return self._stateless_train_step(*args)
            return self._generation(*args)
        finally:
            self._tracing_train_step = False

    def _stateless_train_step(self, state, data):
        groups = [
            self.trainable_variables,
            self.non_trainable_variables,
            self.optimizer.variables,
            self.metrics_variables,
        ]
        variables = [v for group in groups for v in group]
        values = [value for group in state for value in group]
        logs, assigned = _stateless(self._generation, variables, values, data)
        values = [
            value if new is None else new
            for value, new in zip(values, assigned, strict=True)
        ]
        new_state, start = [], 0
        for group in groups:
            new_state.append(values[start : start + len(group)])
            start += len(group)
        return logs, tuple(new_state)

    # -- evolve --------------------------------------------------------------

    def _function(self, fn):
        """`fn` compiled: `tf.function` on TensorFlow, a stateless `jax.jit` on JAX."""
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            return tf.function(
                fn, jit_compile=bool(self.jit_compile), reduce_retracing=True
            )
        if backend != "jax":
            return fn
        import jax

        variables = self.variables + self._es_optimizer.variables
        compiled = jax.jit(functools.partial(_stateless, fn, variables))

        def run(*args):
            outputs, assigned = compiled([v.value for v in variables], *args)
            for variable, value in zip(variables, assigned, strict=True):
                if value is not None:
                    variable.assign(value)
            return outputs

        return run

    def evolve(self, fitness_fn, generations, callbacks=None, verbose="auto"):
        """Evolves the model for `generations` generations of a black-box fitness.

        Each generation draws the members' perturbations, calls
        `fitness_fn(population)` (a `Population`: `population(inputs)` runs
        every member at once, member `p` on the `p`-th block of rows) and
        updates the weights from the `population_size` fitness values it
        returns (higher is better; finite).

        Args:
            fitness_fn: `Population -> array of shape (population_size,)`.
            generations: Positive integer.
            callbacks: Keras callbacks; each generation is an epoch, with logs
                `fitness_mean`, `fitness_max` and `fitness_min` (setting
                `model.stop_training` stops the run).
            verbose: `"auto"`, 0 (silent) or 1 (a progress bar).

        Returns:
            A `keras.callbacks.History` of the logs per generation.
        """
        generations = _validation.positive_integer("generations", generations)
        if verbose == "auto":
            verbose = 1
        draw = self._function(self._draw)
        forward = self._function(self._population_outputs)
        update = self._function(self._update)
        callbacks = keras.callbacks.CallbackList(
            callbacks,
            add_history=True,
            add_progbar=False,
            model=self,
            epochs=generations,
            steps=1,
            verbose=0,
        )
        progbar = keras.utils.Progbar(
            generations, verbose=verbose, unit_name="generation"
        )
        self.stop_training = False
        callbacks.on_train_begin()
        logs = {}
        for generation in range(generations):
            callbacks.on_epoch_begin(generation)
            draws = draw()
            population = Population(
                functools.partial(_call_with_draws, forward, draws),
                self.population_size,
            )
            fitness = np.asarray(fitness_fn(population), dtype="float32")
            if fitness.shape != (self.population_size,) or not np.all(
                np.isfinite(fitness)
            ):
                raise ValueError(
                    "`fitness_fn` must return one finite fitness value per "
                    f"member, shape ({self.population_size},). Received: "
                    f"an array of shape {fitness.shape}"
                    + (
                        ""
                        if np.all(np.isfinite(fitness))
                        else " with non-finite values"
                    )
                )
            update(draws, fitness)
            logs = {
                "fitness_mean": float(fitness.mean()),
                "fitness_max": float(fitness.max()),
                "fitness_min": float(fitness.min()),
            }
            callbacks.on_epoch_end(generation, logs)
            progbar.update(generation + 1, list(logs.items()))
            if self.stop_training:
                break
        callbacks.on_train_end(logs)
        return self.history

    def get_config(self):
        return {
            "name": self.name,
            "model": keras.saving.serialize_keras_object(self.model),
            "population_size": self.population_size,
            "noise_stddev": self.noise_stddev,
            "optimizer": keras.optimizers.serialize(self._es_optimizer),
            "antithetic": self.antithetic,
            "fitness_shaping": self.fitness_shaping,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        model = keras.saving.deserialize_keras_object(config.pop("model"))
        optimizer = keras.optimizers.deserialize(config.pop("optimizer"))
        return cls(model=model, optimizer=optimizer, **config)


def _call_with_draws(forward, draws, inputs):
    return forward(inputs, draws)


def _stateless(fn, variables, values, *args):
    """`fn(*args)` with `variables` read from `values`: `(outputs, assigned values)`.

    The second list holds a variable's new value where `fn` assigned it and
    None elsewhere, so that a read-only `fn` (the population's forward pass)
    hands back no copy of the weights.
    """
    with keras.StatelessScope(state_mapping=list(zip(variables, values))) as scope:
        outputs = fn(*args)
    return outputs, [scope.get_current_value(variable) for variable in variables]
