"""Pruning tools around `ks.callbacks.FlipOutPruning`: schedules, `snip`, `strip`.

`ConstantSparsity` and `PolynomialDecay` are step schedules in the manner of
tfmot's, for `FlipOutPruning(schedule=...)`.

`snip(model, x, y, target_sparsity)` prunes at initialization by connection
sensitivity (SNIP, Lee et al., 2019): the weights with the smallest
`|dL/dw * w|` on a batch, ranked globally over the prunable kernels, are
masked once, and the masks (held by the model's `GradientNoise` optimizer,
as `FlipOutPruning` holds them) keep them at zero during the training that
follows. It is a baseline of the FlipOut paper (Apostol et al., 2020).

`strip(model)` turns a pruned model into a plain one for deployment: a fresh
copy without the optimizer (so without `GradientNoise` and its masks and
flip counters), whose pruned weights are exact zeros, and from which the
units that pruning disconnected are physically removed, so that the model
has fewer parameters and a smaller `.keras` file while predicting the same.

A unit `j` of a `keras.layers.Dense` layer followed directly by another
`Dense` layer is removed when

- all its outgoing weights are zero (it feeds nothing), or
- all its incoming weights are zero: its output is the constant
  `activation(bias_j)`, which is folded into the next layer's bias
  (`b' = b + activation(bias_j) * W_next[j]`).

Both are exact (up to float rounding of the folded bias) for element-wise
activations; a layer with a softmax activation (not element-wise) keeps its
units. Removal repeats until no unit qualifies (removing one unit can
disconnect others).
"""

import keras
import numpy as np

from keras_stochastic import _autodiff
from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic.layers.base_stochastic import StochasticLayer

__all__ = ["ConstantSparsity", "PolynomialDecay", "PruningSchedule", "snip", "strip"]


@keras.saving.register_keras_serializable(package="keras_stochastic")
class PruningSchedule:
    """Base class of step schedules for `FlipOutPruning(schedule=...)`.

    A schedule maps the optimizer step to `(prune, sparsity)`: whether to
    prune after that step, and the sparsity to prune to. Sparsity only grows:
    an event prunes the weights still needed to reach `sparsity`.
    Subclasses implement `sparsity_at(step)` and `get_config()`.

    Args:
        begin_step: Non-negative integer, the first step that prunes.
        end_step: Integer, the last step that prunes (-1: no end).
        frequency: Positive integer, steps between events.
    """

    def __init__(self, begin_step=0, end_step=-1, frequency=100):
        self.begin_step = _validation.integer("begin_step", begin_step, minimum=0)
        self.end_step = _validation.integer("end_step", end_step, minimum=-1)
        if self.end_step != -1 and self.end_step < self.begin_step:
            raise ValueError(
                "Argument `end_step` must be -1 (no end) or at least `begin_step`. "
                f"Received: begin_step={begin_step}, end_step={end_step}"
            )
        self.frequency = _validation.positive_integer("frequency", frequency)

    def __call__(self, step):
        """`(prune, sparsity)` after optimizer step `step` (an int)."""
        due = (
            step >= self.begin_step
            and (self.end_step == -1 or step <= self.end_step)
            and (step - self.begin_step) % self.frequency == 0
        )
        return due, self.sparsity_at(step)

    def sparsity_at(self, step):
        raise NotImplementedError

    def get_config(self):
        return {
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "frequency": self.frequency,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@keras.saving.register_keras_serializable(package="keras_stochastic")
class ConstantSparsity(PruningSchedule):
    """Prunes to `target_sparsity` every `frequency` steps from `begin_step`.

    As `tfmot.sparsity.keras.ConstantSparsity`: the first event prunes to
    the target at once; later events re-rank nothing already pruned and only
    matter after a restore.

    Args:
        target_sparsity: Float in [0, 1), the fraction of prunable weights
            pruned.
        begin_step: Non-negative integer (default 0), the first event's step.
        end_step: Integer (default -1: no end), the last step with an event.
        frequency: Positive integer (default 100), steps between events.
    """

    def __init__(self, target_sparsity, begin_step=0, end_step=-1, frequency=100):
        super().__init__(begin_step, end_step, frequency)
        self.target_sparsity = _validation.fraction("target_sparsity", target_sparsity)

    def sparsity_at(self, step):
        return self.target_sparsity

    def get_config(self):
        return {"target_sparsity": self.target_sparsity, **super().get_config()}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class PolynomialDecay(PruningSchedule):
    """Sparsity rising from `initial_sparsity` to `final_sparsity` polynomially.

    As `tfmot.sparsity.keras.PolynomialDecay` (Zhu & Gupta, 2017): at step
    `t` in `[begin_step, end_step]` the sparsity is

    ```
    final + (initial - final) * (1 - (t - begin_step) / (end_step - begin_step)) ** power
    ```

    pruned to every `frequency` steps, and at `end_step`.

    Args:
        initial_sparsity: Float in [0, 1), the sparsity at `begin_step`.
        final_sparsity: Float in [initial_sparsity, 1), the sparsity at
            `end_step`.
        begin_step: Non-negative integer, the first event's step.
        end_step: Integer > `begin_step`, the step the final sparsity is
            reached at (required).
        power: Positive float (default 3), the exponent of the decay.
        frequency: Positive integer (default 100), steps between events.
    """

    def __init__(
        self,
        initial_sparsity,
        final_sparsity,
        begin_step,
        end_step,
        power=3,
        frequency=100,
    ):
        super().__init__(begin_step, end_step, frequency)
        if self.end_step <= self.begin_step:
            raise ValueError(
                "PolynomialDecay needs `end_step` > `begin_step`. "
                f"Received: begin_step={begin_step}, end_step={end_step}"
            )
        self.initial_sparsity = _validation.fraction(
            "initial_sparsity", initial_sparsity
        )
        self.final_sparsity = _validation.fraction("final_sparsity", final_sparsity)
        if self.final_sparsity < self.initial_sparsity:
            raise ValueError(
                "Argument `final_sparsity` must be at least `initial_sparsity`. "
                f"Received: initial_sparsity={initial_sparsity}, "
                f"final_sparsity={final_sparsity}"
            )
        self.power = _validation.positive("power", power)

    def __call__(self, step):
        due, sparsity = super().__call__(step)
        return due or step == self.end_step, sparsity

    def sparsity_at(self, step):
        progress = (min(step, self.end_step) - self.begin_step) / (
            self.end_step - self.begin_step
        )
        progress = min(max(progress, 0.0), 1.0)
        remaining = (1.0 - progress) ** self.power
        return (
            self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * remaining
        )

    def get_config(self):
        config = super().get_config()
        return {
            "initial_sparsity": self.initial_sparsity,
            "final_sparsity": self.final_sparsity,
            "begin_step": config["begin_step"],
            "end_step": config["end_step"],
            "power": self.power,
            "frequency": config["frequency"],
        }


def snip(model, x, y, target_sparsity, loss=None, include=None, exclude=None):
    """Prunes `target_sparsity` of the prunable weights once, by connection sensitivity.

    Args:
        model: A built model compiled with a `ks.optimizers.GradientNoise`
            optimizer (`scale=0.0` for plain SNIP without gradient noise).
        x: One batch of training inputs (the paper: one minibatch).
        y: The batch's targets.
        target_sparsity: Float in [0, 1), the exact fraction pruned.
        loss: The loss to differentiate (a name, function or
            `keras.losses.Loss`); default: the model's compiled loss.
        include: Layer names, as in `FlipOutPruning`: only these are pruned.
        exclude: Layer names, as in `FlipOutPruning`: never pruned.

    Returns:
        The achieved sparsity (float).
    """
    from keras_stochastic.callbacks import flipout_pruning

    target_sparsity = _validation.fraction("target_sparsity", target_sparsity)
    optimizer = flipout_pruning.find_gradient_noise(getattr(model, "optimizer", None))
    if optimizer is None:
        raise ValueError(
            "`snip` keeps its masks in the model's `GradientNoise` optimizer: "
            "compile the model with `optimizer=ks.optimizers.GradientNoise("
            "your_optimizer, scale=0.0)` first. Received: optimizer="
            f"{getattr(model, 'optimizer', None)!r}"
        )
    loss = model.loss if loss is None else loss
    if loss is None or isinstance(loss, (dict, list, tuple)):
        raise ValueError(
            "`snip` needs one loss (pass `loss=` or compile the model with one). "
            f"Received: loss={loss!r}"
        )
    loss_fn = keras.losses.get(loss)
    flipout_pruning.enable_pruning(
        model, optimizer, flipout_pruning.prunable_variables(model, include, exclude)
    )
    slots = optimizer.pruning_slots()
    variables = [variable for variable, _, _ in slots]
    gradients = _autodiff.loss_gradient_fn(model, loss_fn, variables)(x, y)
    scores = np.concatenate(
        [
            np.abs(g.astype("float64") * np.asarray(v.numpy(), "float64")).ravel()
            for g, v in zip(gradients, variables, strict=True)
        ]
    )
    count = round(target_sparsity * scores.size)
    keep = np.ones(scores.size, bool)
    if count:
        keep[np.argpartition(scores, count - 1)[:count]] = False
    flipout_pruning.apply_masks(model, slots, keep)
    optimizer.pruning_events.assign(optimizer.pruning_events + 1)
    return 1.0 - float(keep.mean())


def _elementwise(layer):
    return keras.activations.serialize(layer.activation) != "softmax"


def _dense_chain_layers(model):
    """The model's layers, and the indices `i` where layers i, i + 1 are both Dense."""
    layers = list(model.layers)
    pairs = [
        i
        for i in range(len(layers) - 1)
        if type(layers[i]) is keras.layers.Dense
        and type(layers[i + 1]) is keras.layers.Dense
        and _elementwise(layers[i])
        and not layers[i].lora_enabled
        and not layers[i + 1].lora_enabled
    ]
    return layers, pairs


def _removable_units(kernel, next_kernel):
    """`(keep, fold)` masks over the units of a Dense layer followed by another."""
    dead_out = np.all(next_kernel == 0, axis=1)
    dead_in = np.all(kernel == 0, axis=0)
    return ~(dead_out | dead_in), dead_in & ~dead_out


def strip(model, remove_units=True):
    """A deployable copy of a pruned model: no optimizer, fewer units.

    Args:
        model: A `Sequential` or functional Keras model (pruned or not).
        remove_units: Whether to remove the units of `Dense` layers that
            pruning disconnected (see the module docstring); only between
            consecutive `Dense` layers of a `Sequential` model.

    Returns:
        A new, uncompiled model with the same predictions. The original
        model is left as it is.
    """
    if not _compat.is_graph_model(model):
        raise ValueError(
            "`strip` copies Sequential and functional models layer by layer; "
            f"a subclassed model has no graph to copy. Received: model={model.name!r} "
            f"({type(model).__name__})"
        )
    if not model.built:
        raise ValueError(
            f"`strip` needs a built model. Received: model={model.name!r} (not built)"
        )
    copy = keras.models.clone_model(model)
    for source, target in zip(
        _compat.flatten_layers(model), _compat.flatten_layers(copy), strict=True
    ):
        if isinstance(source, StochasticLayer) and any(
            p.mask is not None for p in source._maskable_posteriors()
        ):
            # Pruned stochastic kernels keep their masks: no noise there.
            target._add_pruning_masks()
    copy.set_weights(model.get_weights())
    if not (remove_units and isinstance(model, keras.Sequential)):
        return copy
    layers, pairs = _dense_chain_layers(copy)
    if not pairs:
        return copy
    weights = {
        i: [np.array(w) for w in layer.get_weights()] for i, layer in enumerate(layers)
    }
    changed = True
    while changed:
        changed = False
        for i in pairs:
            current, following = layers[i], layers[i + 1]
            kernel = weights[i][0]
            bias = weights[i][1] if current.use_bias else np.zeros(kernel.shape[1])
            next_kernel = weights[i + 1][0]
            keep, fold = _removable_units(kernel, next_kernel)
            if keep.all() or not keep.any():
                continue
            if fold.any():
                constant = keras.ops.convert_to_numpy(
                    current.activation(keras.ops.convert_to_tensor(bias[fold]))
                )
                if not following.use_bias:
                    continue  # nowhere to fold the constant into
                weights[i + 1][1] = weights[i + 1][1] + constant @ next_kernel[fold]
            weights[i][0] = kernel[:, keep]
            if current.use_bias:
                weights[i][1] = bias[keep]
            weights[i + 1][0] = next_kernel[keep]
            changed = True
    rebuilt = []
    for i, layer in enumerate(layers):
        config = layer.get_config()
        if type(layer) is keras.layers.Dense:
            config["units"] = weights[i][0].shape[1]
        rebuilt.append(type(layer).from_config(config))
    inputs = keras.Input(batch_shape=model.inputs[0].shape, dtype=model.inputs[0].dtype)
    stripped = keras.Sequential([inputs] + rebuilt, name=model.name)
    for i, layer in enumerate(rebuilt):
        layer.set_weights(weights[i])
    return stripped
