"""`FlipOutPruning`: global pruning by sign-flip saliency (Apostol et al., 2020)."""

import math

import keras
import numpy as np

from keras_stochastic import _compat
from keras_stochastic import _distribute
from keras_stochastic import _validation
from keras_stochastic import kernels as kernels_lib
from keras_stochastic.layers.base_stochastic import GaussianKernelMixin
from keras_stochastic.layers.base_stochastic import StochasticLayer
from keras_stochastic.layers.base_variational_dropout import VariationalDropoutMixin
from keras_stochastic.optimizers.gradient_noise import GradientNoise

CRITERIA = ("flipout", "magnitude", "random", "snr", "log_alpha")
STRUCTURES = ("weights", "units")
RANKINGS = ("global", "layer")
# Layers whose kernels' last axis is their units (Dense) or filters (Conv).
_UNIT_LAYERS = (
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
)
# The criteria read from the layer that owns a kernel: (layer classes, kinds).
_BAYESIAN_CRITERIA = {
    "snr": (
        (GaussianKernelMixin,),
        "Gaussian keras_stochastic layers (flipout, LRT, reparameterization)",
    ),
    "log_alpha": ((VariationalDropoutMixin,), "variational dropout layers"),
}


def _pruning_schedule(schedule):
    """A `ks.pruning.PruningSchedule` from an instance or its serialized config."""
    from keras_stochastic.pruning import PruningSchedule

    if isinstance(schedule, dict):
        schedule = keras.saving.deserialize_keras_object(schedule)
    if not isinstance(schedule, PruningSchedule):
        raise TypeError(
            "Argument `schedule` must be a `ks.pruning.PruningSchedule` "
            "(`ks.pruning.ConstantSparsity`, `ks.pruning.PolynomialDecay`). "
            f"Received: schedule={schedule!r}"
        )
    return schedule


def saliency(weights, flips, exponent=2):
    """FlipOut saliency `|theta|**exponent / (flips + 1)` (float64 numpy).

    Weights that are large and rarely changed sign score high; small weights
    that oscillate around zero score low and are pruned first.
    """
    weights = np.abs(np.asarray(weights, dtype="float64"))
    return weights**exponent / (np.asarray(flips, dtype="float64") + 1.0)


def prunable_variables(model, include=None, exclude=None):
    """The trainable kernels `FlipOutPruning` ranks, in model order.

    A layer's kernels are taken when neither it nor a layer containing it is
    named in `exclude`, and (if `include` is given) it or a layer containing
    it is named in `include`.
    """
    names = set()
    found = {}

    def visit(layer, ancestors):
        names.add(layer.name)
        ancestors = ancestors | {layer.name}
        if (include is None or ancestors & set(include)) and not (
            exclude and ancestors & set(exclude)
        ):
            for variable in kernels_lib.kernel_variables(layer):
                if isinstance(variable, keras.Variable) and variable.trainable:
                    found.setdefault(id(variable), variable)
        for sublayer in _compat.flatten_layers(
            layer, include_self=False, recursive=False
        ):
            visit(sublayer, ancestors)

    for layer in _compat.flatten_layers(model, include_self=False, recursive=False):
        visit(layer, frozenset())
    for argument, value in (("include", include), ("exclude", exclude)):
        unknown = sorted(set(value or ()) - names)
        if unknown:
            raise ValueError(
                f"Argument `{argument}` names layers that model {model.name!r} "
                f"does not have: {unknown}. Received: {argument}={value}"
            )
    return list(found.values())


def find_gradient_noise(optimizer):
    """The `GradientNoise` in `optimizer` or its chain of inner optimizers."""
    while optimizer is not None:
        if isinstance(optimizer, GradientNoise):
            return optimizer
        optimizer = getattr(optimizer, "inner_optimizer", None)
    return None


def _kernel_owners(model, classes):
    """`{id(kernel): layer}` for the kernels of `model`'s layers that are `classes`."""
    owners = {}
    for layer in _compat.flatten_layers(model, include_self=False):
        if isinstance(layer, classes):
            for variable in kernels_lib.kernel_variables(layer):
                owners[id(variable)] = layer
    return owners


def enable_pruning(model, optimizer, variables):
    """Gives `model`'s `GradientNoise` `optimizer` masks and flip counters for `variables`.

    Shared by `FlipOutPruning` and `ks.pruning.snip`. Under `tf.distribute`
    the state is created in the model's strategy scope (mirrored), wherever
    `fit` is called from. The stochastic layers that own pruned kernels get
    their posteriors' masks (so pruned weights carry no noise and no KL;
    they copy the optimizer's masks when created), and the optimizer keeps
    those posteriors' noise parameters fixed where pruned. Functions traced
    before this state existed are remade, since they would not apply it.
    """
    with _distribute.scope(model):
        if not model.optimizer.built:
            # The TensorFlow trainer builds the optimizer lazily, in the
            # first traced step; the masks must exist before that.
            model.optimizer.build(model.trainable_variables)
        optimizer.enable_pruning(variables)
        new_layer_masks, frozen = _enable_posterior_masks(model, optimizer)
    changed = optimizer.freeze_where_pruned(frozen)
    if optimizer._pruning_state_is_new or new_layer_masks or changed:
        model.make_train_function(force=True)
        optimizer._pruning_state_is_new = False
    if new_layer_masks:
        model.make_test_function(force=True)
        model.make_predict_function(force=True)


def _enable_posterior_masks(model, optimizer):
    """Masks for the posteriors of pruned stochastic kernels.

    Returns:
        `(created, pairs)`: whether any mask was new, and the `(kernel,
        noise parameter)` pairs the optimizer keeps fixed where pruned.
    """
    pruned = {id(variable): mask for variable, mask, _ in optimizer.pruning_slots()}
    created = False
    pairs = []
    for layer, kernel, mask, parameters in _posterior_masks(model):
        if id(kernel) not in pruned:
            continue
        if mask is None:
            mask = layer._add_pruning_masks()[id(kernel)][0]
            # A copy: JAX must not see one buffer in two variables.
            mask.assign(np.asarray(pruned[id(kernel)].numpy(), mask.dtype))
            created = True
        pairs.extend((kernel, p) for p in parameters if p.trainable)
    return created, pairs


def _posterior_masks(model):
    """`(layer, kernel, mask or None, noise parameters)` of maskable posteriors."""
    for layer in _compat.flatten_layers(model, include_self=False):
        if isinstance(layer, StochasticLayer):
            for posterior in layer._maskable_posteriors():
                yield (
                    layer,
                    posterior.mean,
                    posterior.mask,
                    posterior.noise_parameters(),
                )


def apply_masks(model, slots, keep, weights=None, flips=None):
    """Writes `keep` (flat, over `slots` in order) into the masks.

    Pruned weights and their flip counts become zero, and the masks of the
    posteriors of pruned stochastic kernels follow the optimizer's (the only
    place masks are written). `slots` are `GradientNoise.pruning_slots()`;
    `weights` and `flips` are their current values as NumPy arrays, read
    from the variables when not given.
    """
    if weights is None:
        weights = [variable.numpy() for variable, _, _ in slots]
    if flips is None:
        flips = [flip.numpy() for _, _, flip in slots]
    posterior_masks = {
        id(kernel): mask
        for _, kernel, mask, _ in _posterior_masks(model)
        if mask is not None
    }
    start = 0
    for (variable, mask, flip), w, f in zip(slots, weights, flips, strict=True):
        kept = keep[start : start + w.size].reshape(w.shape)
        start += w.size
        mask.assign(kept.astype(mask.dtype))
        variable.assign(np.where(kept, w, 0).astype(w.dtype))
        flip.assign(np.where(kept, f, 0).astype(f.dtype))
        if id(variable) in posterior_masks:
            posterior_masks[id(variable)].assign(kept.astype("float32"))


@keras.saving.register_keras_serializable(package="keras_stochastic")
class FlipOutPruning(keras.callbacks.Callback):
    """Prunes weights globally by how often their sign flipped (FlipOut).

    Every `prune_every` epochs, the callback removes `prune_rate` of the
    *remaining* prunable weights, those with the lowest saliency, ranked
    globally across layers:

    ```
    tau_j = |theta_j| ** exponent / (flips_j + 1)
    ```

    where `flips_j` counts the optimizer steps on which `sign(theta_j)`
    changed (`sign(0) = 0`), cumulatively from the start of training. Weights
    that stay small and keep crossing zero carry little information about
    their sign and go first. After `m` events the sparsity is
    `1 - (1 - prune_rate) ** m`. With `target_sparsity` and no
    `prune_every`, the callback takes the smallest such `m` reaching the
    target and spreads the events evenly over `fit`'s epochs,
    `prune_every = round(epochs / (m + 1))` (the paper: 350 epochs,
    `prune_rate=0.5`, 99.9% -> 10 events, every 32 epochs), leaving about one
    interval of fine-tuning at the end; the last event removes exactly the
    weights still needed to reach `target_sparsity`. No event runs after the
    last epoch. Events happen at epoch ends (after validation), counted in
    absolute epochs, `initial_epoch` included. With `prune_every_steps`
    events are counted in optimizer steps instead (`begin_step +
    k * prune_every_steps`, `k = 1 ... m`), at batch ends.

    Prunable weights are the trainable kernels of Keras `Dense`,
    `EinsumDense`, `Conv*`, `Conv*Transpose`, depthwise and separable
    convolutions and `SimpleRNN`/`LSTM`/`GRU` cells, and of keras_stochastic
    layers (their `_prunable_variables()`: the posterior means of Gaussian
    dense, conv and recurrent layers, the scale of variance layers). Biases,
    normalization and embeddings are never pruned.

    The model must be compiled with a `keras_stochastic.optimizers.GradientNoise`
    optimizer (possibly inside a `LossScaleOptimizer`): the masks and flip
    counters are its variables, and it applies the masks and counts flips
    inside the compiled train step (a per-batch callback could not do that
    without a Python round trip per batch, and on JAX a full state copy).
    For pruning without gradient noise, use `GradientNoise(opt, scale=0.0)`;
    `criterion="magnitude"` with `scale=0` is plain global magnitude pruning.
    Any other optimizer makes `fit` fail when training begins. Masked weights
    stay exactly zero whatever the inner optimizer's momentum. Because the
    state (masks, flips, number of events done) lives in optimizer variables,
    `model.save`, checkpoints and `keras.callbacks.BackupAndRestore` resume
    pruning where it stopped; a missed event (a backup taken just before it)
    is caught up when the next epoch begins.

    The fraction of pruned weights is added to `logs` as `"sparsity"`.

    Pruned weights of keras_stochastic layers are exactly zero in every
    sample: their layers get a `kernel_mask` weight (a copy of the
    optimizer's mask, saved with the layer) that removes their noise and
    their KL term, and the optimizer keeps their noise parameters fixed
    (see `keras_stochastic.posteriors.masks`).

    Cost: per train step, two mask multiplications and the sign comparison
    for each pruned variable (a few elementwise passes); per event, a numpy
    ranking of all prunable weights (`O(n)` with `argpartition`).

    Args:
        target_sparsity: Float in [0, 1) or None, the final fraction of
            pruned weights. Sets the number of events; at least one of
            `target_sparsity` and `prune_every` is required.
        prune_rate: Float in (0, 1) (default 0.5), the fraction of the
            remaining weights removed per event.
        prune_every: Positive integer or None, epochs between events. When
            None, derived from `target_sparsity` and `fit`'s `epochs`.
        exponent: Non-negative float (default 2), the power `p` of `|theta|`
            in the saliency.
        criterion: `"flipout"` (default), `"magnitude"` (global magnitude
            pruning, `tau = |theta|`) or `"random"` (uniformly random among the
            remaining weights): the paper's baselines, same schedule. For
            Bayesian layers also `"snr"` (signal-to-noise ratio
            `|mu| / sigma` of Gaussian keras_stochastic layers) and
            `"log_alpha"` (variational dropout layers: the largest
            `log alpha` first); every pruned kernel must then belong to such
            a layer.
        include: Optional list of layer names: only these layers (and layers
            inside them) are pruned.
        exclude: Optional list of layer names never pruned (with the layers
            inside them), e.g. the first or last layer.
        seed: Integer or None, seeds `criterion="random"`.
        verbose: 0 (silent) or 1 (a line per event).
        structure: `"weights"` (default) or `"units"`: rank and prune whole
            units of Dense layers and filters of Conv layers (a unit scores
            the mean of its weights' scores; `prune_rate` and
            `target_sparsity` then count units). The layers that produce the
            model's outputs are left alone. `ks.pruning.strip` then removes
            the pruned units physically (Dense chains).
        prune_every_steps: Positive integer or None: prune by train step
            instead of by epoch, an event every `prune_every_steps` optimizer
            steps after `begin_step` (at the end of the batch that completes
            it), so that a short `fit` on a large dataset can prune too. With
            `target_sparsity`, the events must fit into the `fit`'s steps.
        begin_step: Non-negative integer (default 0), the optimizer step the
            step schedule counts from (steps before it train unpruned).
        schedule: Optional `ks.pruning.PruningSchedule`
            (`ks.pruning.ConstantSparsity`, `ks.pruning.PolynomialDecay`,
            as in tfmot): at the end of each batch whose optimizer step it
            marks, prune to the sparsity it gives. Replaces
            `target_sparsity`, `prune_every`, `prune_every_steps` and
            `begin_step` (and `prune_rate` has no effect).
        ranking: `"global"` (default: one ranking across all pruned
            kernels, as the paper) or `"layer"` (each kernel ranked and
            pruned to the sparsity on its own, as tfmot does).

    Example:

    ```python
    opt = ks.optimizers.GradientNoise(keras.optimizers.SGD(0.1, momentum=0.9))
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=350,
              callbacks=[ks.callbacks.FlipOutPruning(target_sparsity=0.999)])
    ```

    References:
        - [Apostol et al., 2020](https://arxiv.org/abs/2009.14410), FlipOut:
          Uncovering Redundant Weights via Sign Flipping.
    """

    def __init__(
        self,
        target_sparsity=None,
        prune_rate=0.5,
        prune_every=None,
        exponent=2,
        criterion="flipout",
        include=None,
        exclude=None,
        seed=None,
        verbose=0,
        prune_every_steps=None,
        begin_step=0,
        structure="weights",
        schedule=None,
        ranking="global",
    ):
        super().__init__()
        _validation.choice("structure", structure, STRUCTURES)
        _validation.choice("ranking", ranking, RANKINGS)
        if schedule is not None:
            schedule = _pruning_schedule(schedule)
            given = {
                "target_sparsity": target_sparsity,
                "prune_every": prune_every,
                "prune_every_steps": prune_every_steps,
            }
            given = {k: v for k, v in given.items() if v is not None}
            if begin_step:
                given["begin_step"] = begin_step
            if given:
                raise ValueError(
                    "A `schedule` sets when to prune and to what sparsity: pass "
                    f"it without {sorted(given)}. Received: schedule={schedule!r}, "
                    + ", ".join(f"{k}={v!r}" for k, v in given.items())
                )
        if target_sparsity is not None:
            target_sparsity = _validation.fraction("target_sparsity", target_sparsity)
        prune_rate = _validation.fraction("prune_rate", prune_rate, low_open=True)
        if prune_every is not None:
            prune_every = _validation.positive_integer("prune_every", prune_every)
        if prune_every_steps is not None:
            prune_every_steps = _validation.positive_integer(
                "prune_every_steps", prune_every_steps
            )
            if prune_every is not None:
                raise ValueError(
                    "Pass `prune_every` (epochs between events) or "
                    "`prune_every_steps` (train steps between events), not both. "
                    f"Received: prune_every={prune_every}, "
                    f"prune_every_steps={prune_every_steps}"
                )
        begin_step = _validation.integer("begin_step", begin_step, minimum=0)
        if begin_step and prune_every_steps is None:
            raise ValueError(
                "`begin_step` applies to step schedules: pass `prune_every_steps` "
                f"too. Received: begin_step={begin_step}, prune_every_steps=None"
            )
        if (
            schedule is None
            and target_sparsity is None
            and prune_every is None
            and not prune_every_steps
        ):
            raise ValueError(
                "Pass `target_sparsity` (the schedule is then derived from the "
                "number of epochs of `fit`), `prune_every` or `prune_every_steps`. "
                "Received: target_sparsity=None, prune_every=None"
            )
        exponent = _validation.non_negative("exponent", exponent)
        _validation.choice("criterion", criterion, CRITERIA)
        for name, value in (("include", include), ("exclude", exclude)):
            if value is not None and (
                isinstance(value, str)
                or not all(isinstance(item, str) for item in value)
            ):
                raise TypeError(
                    f"Argument `{name}` must be a list of layer names or None. "
                    f"Received: {name}={value!r}"
                )
        _validation.seed(seed)
        if verbose not in (0, 1):
            raise ValueError(
                f"Argument `verbose` must be 0 or 1. Received: verbose={verbose!r}"
            )
        self.target_sparsity = target_sparsity
        self.prune_rate = prune_rate
        self.prune_every = None if prune_every is None else int(prune_every)
        self.exponent = float(exponent)
        self.criterion = criterion
        self.include = None if include is None else list(include)
        self.exclude = None if exclude is None else list(exclude)
        self.seed = seed
        self.verbose = verbose
        self.prune_every_steps = (
            None if prune_every_steps is None else int(prune_every_steps)
        )
        self.begin_step = int(begin_step)
        self.structure = structure
        self.schedule = schedule
        self.ranking = ranking
        self._num_events = None
        self._interval = None
        self._owners = {}
        self._random_seed = seed if seed is not None else int(np.random.randint(2**31))

    def num_events(self):
        """Events needed to reach `target_sparsity` (None: no limit)."""
        if self.target_sparsity is None:
            return None
        keep = 1.0 - self.target_sparsity
        events = 0
        while (1.0 - self.prune_rate) ** events > keep + 1e-9:
            events += 1
        return events

    def _optimizer(self):
        optimizer = find_gradient_noise(self.model.optimizer)
        if optimizer is None:
            raise ValueError(
                "FlipOutPruning keeps its masks and sign-flip counters in the "
                "optimizer and applies them inside the train step, so compile "
                "the model with a `keras_stochastic.optimizers.GradientNoise` "
                "optimizer: `optimizer=ks.optimizers.GradientNoise(your_optimizer, "
                "scale=1.0)` (scale=0.0 to prune without gradient noise). "
                f"Received: optimizer={self.model.optimizer!r}"
            )
        return optimizer

    def on_train_begin(self, logs=None):
        optimizer = self._optimizer()
        if not self.model.built:
            raise ValueError(
                f"FlipOutPruning needs a built model, and model {self.model.name!r} "
                "is not built: start it with `keras.Input(...)` or call "
                "`model.build(input_shape)` before `fit`."
            )
        variables = prunable_variables(self.model, self.include, self.exclude)
        if not variables:
            raise ValueError(
                f"Model {self.model.name!r} has no prunable weights: FlipOutPruning "
                "prunes the trainable kernels of Dense, Conv and recurrent layers "
                "and of keras_stochastic layers (never biases or normalization). "
                f"Received: include={self.include}, exclude={self.exclude}"
            )
        self._owners = self._criterion_owners(variables)
        if self.structure == "units":
            variables = self._unit_variables(variables)
        enable_pruning(self.model, optimizer, variables)
        epochs = self.params["epochs"]
        self._num_events = self.num_events()
        if self.schedule is not None:
            return
        if self.prune_every_steps is not None:
            self._check_step_schedule(epochs)
            return
        self._interval = self.prune_every
        if self._interval is None:
            events = self._num_events
            if events > epochs - 1:
                raise ValueError(
                    f"target_sparsity={self.target_sparsity} with "
                    f"prune_rate={self.prune_rate} needs {events} pruning events, "
                    "and by epoch FlipOutPruning prunes at most once per epoch, "
                    f"before the last one: fit for at least {events + 1} epochs, "
                    "raise `prune_rate`, or prune by step (`prune_every_steps`). "
                    f"Received: epochs={epochs}"
                )
            self._interval = max(1, math.floor(epochs / (events + 1) + 0.5))
            if events and (epochs - 1) // self._interval < events:
                self._interval = (epochs - 1) // events
        elif (
            self._num_events is not None
            and (epochs - 1) // self._interval < self._num_events
        ):
            raise ValueError(
                f"target_sparsity={self.target_sparsity} needs {self._num_events} "
                f"pruning events, but prune_every={self.prune_every} leaves room "
                f"for {(epochs - 1) // self._interval} in {epochs} epochs. "
                f"Received: epochs={epochs}"
            )

    def _unit_variables(self, variables):
        """The kernels pruned by units: Dense / Conv kernels, output layers left out."""
        from keras_stochastic.layers.convolutional.base_conv import BaseStochasticConv
        from keras_stochastic.layers.core.base_dense import BaseStochasticDense

        outputs = set()
        if _compat.is_graph_model(self.model):
            outputs = {id(layer) for layer in _compat.output_layers(self.model)}
        owners = _kernel_owners(
            self.model, _UNIT_LAYERS + (BaseStochasticDense, BaseStochasticConv)
        )
        refused = [v.path for v in variables if id(v) not in owners]
        if refused:
            raise ValueError(
                "structure='units' prunes whole units of Dense layers and filters "
                "of Conv1D/2D/3D layers (Keras's or keras_stochastic's); these "
                f"prunable kernels are not theirs: {refused}. Exclude their "
                "layers (`exclude=[...]`). Received: structure='units'"
            )
        # Removing a unit of an output layer would remove an output.
        kept = [v for v in variables if id(owners[id(v)]) not in outputs]
        if not kept:
            raise ValueError(
                "structure='units' leaves the model's output layers alone, and "
                "no other layer has prunable kernels. Received: structure='units'"
            )
        return kept

    def _criterion_owners(self, variables):
        """`{id(kernel): layer}` for criteria that read the owning layer."""
        if self.criterion not in _BAYESIAN_CRITERIA:
            return {}
        classes, kinds = _BAYESIAN_CRITERIA[self.criterion]
        owners = _kernel_owners(self.model, classes)
        missing = [v.path for v in variables if id(v) not in owners]
        if missing:
            raise ValueError(
                f"criterion={self.criterion!r} scores the kernels of {kinds}; "
                f"these prunable kernels have no such layer: {missing}. Exclude "
                "their layers (`exclude=[...]`) or use another criterion. "
                f"Received: criterion={self.criterion!r}"
            )
        return owners

    def _check_step_schedule(self, epochs):
        steps = self.params.get("steps")
        if self._num_events is None or not steps:
            return
        last = self.begin_step + self._num_events * self.prune_every_steps
        total = steps * epochs
        if last > total:
            raise ValueError(
                f"target_sparsity={self.target_sparsity} needs {self._num_events} "
                f"pruning events; every {self.prune_every_steps} steps from step "
                f"{self.begin_step}, the last falls at step {last}, after the "
                f"{total} steps of this `fit` ({epochs} epochs of {steps}). "
                f"Received: prune_every_steps={self.prune_every_steps}, "
                f"begin_step={self.begin_step}"
            )

    def _events_due(self, step):
        """Events a step schedule has due after `step` train steps."""
        if step < self.begin_step:
            return 0
        due = (step - self.begin_step) // self.prune_every_steps
        if self._num_events is not None:
            due = min(due, self._num_events)
        return due

    def on_train_batch_end(self, batch, logs=None):
        if self.schedule is not None:
            optimizer = self._optimizer()
            step = int(optimizer.iterations.numpy())
            due, target = self.schedule(step)
            if due and self.sparsity(optimizer) < target - 1e-9:
                self._prune(optimizer, f"Step {step}", target=target)
            return
        if self.prune_every_steps is None:
            return
        optimizer = self._optimizer()
        step = int(optimizer.iterations.numpy())
        while int(optimizer.pruning_events.numpy()) < self._events_due(step):
            self._prune(optimizer, f"Step {step}")

    def _events_before(self, epoch):
        """Events scheduled at the ends of epochs before `epoch` (0-based)."""
        epochs = self.params["epochs"]
        scheduled = min(epoch, epochs - 1) // self._interval
        if self._num_events is not None:
            scheduled = min(scheduled, self._num_events)
        return scheduled

    def on_epoch_begin(self, epoch, logs=None):
        if self.prune_every_steps is not None or self.schedule is not None:
            return
        optimizer = self._optimizer()
        while int(optimizer.pruning_events.numpy()) < self._events_before(epoch):
            self._prune(optimizer, f"Epoch {epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        optimizer = self._optimizer()
        by_epoch = self.prune_every_steps is None and self.schedule is None
        if by_epoch and int(optimizer.pruning_events.numpy()) < self._events_before(
            epoch + 1
        ):
            self._prune(optimizer, f"Epoch {epoch + 1}")
        if logs is not None:
            logs["sparsity"] = self.sparsity(optimizer)

    @staticmethod
    def sparsity(optimizer):
        """Fraction of pruned weights among the prunable ones."""
        masks = [mask.numpy() for _, mask, _ in optimizer.pruning_slots()]
        total = sum(mask.size for mask in masks)
        return 1.0 - sum(float(np.count_nonzero(mask)) for mask in masks) / total

    def _scores(self, slots, weights, flips, event):
        """Scores of all prunable weights, flattened; the lowest are pruned first."""
        if self.criterion == "flipout":
            return saliency(weights, flips, self.exponent)
        if self.criterion == "magnitude":
            return np.abs(weights)
        if self.criterion == "random":
            rng = np.random.default_rng([self._random_seed, event])
            return rng.random(weights.shape)
        scores = []
        for variable, _, _ in slots:
            layer = self._owners[id(variable)]
            if self.criterion == "snr":
                # Signal-to-noise ratio |mu| / sigma: noisy weights go first.
                stddev = np.asarray(keras.ops.convert_to_numpy(layer.kernel_stddev))
                mean = np.abs(np.asarray(variable.numpy(), dtype="float64"))
                scores.append(mean / np.maximum(stddev.astype("float64"), 1e-30))
            else:
                # Large log alpha (dropout rate): the weight carries noise only.
                log_alpha = keras.ops.convert_to_numpy(layer.log_alpha)
                log_alpha = np.broadcast_to(log_alpha, variable.shape)
                scores.append(-np.asarray(log_alpha, dtype="float64"))
        return np.concatenate([score.ravel() for score in scores])

    def _count(self, total, remaining, event, target):
        """How many of `remaining` live groups (of `total`) an event prunes."""
        if target is not None:
            count = round(target * total) - (total - remaining)
        else:
            count = int(self.prune_rate * remaining)
            if self._num_events is not None and event + 1 == self._num_events:
                count = round(self.target_sparsity * total) - (total - remaining)
        return min(max(count, 0), remaining)

    def _prune(self, optimizer, when, target=None):
        """One event: prunes by `prune_rate`, or to sparsity `target` (schedules)."""
        slots = optimizer.pruning_slots()
        event = int(optimizer.pruning_events.numpy())
        weights = [variable.numpy() for variable, _, _ in slots]
        masks = [mask.numpy() for _, mask, _ in slots]
        flips = [flip.numpy() for _, _, flip in slots]
        alive = np.concatenate([m.ravel() for m in masks]) != 0
        # What is ranked: weights, or units (a kernel's last axis), each
        # weight belonging to group `groups[j]`; kernel k's groups are
        # `bounds[k]:bounds[k + 1]`.
        if self.structure == "units":
            bounds = np.cumsum([0] + [w.shape[-1] for w in weights])
            groups = np.concatenate(
                [
                    offset + np.arange(w.size) % w.shape[-1]
                    for offset, w in zip(bounds, weights)
                ]
            )
        else:
            bounds = np.cumsum([0] + [w.size for w in weights])
            groups = np.arange(alive.size)
        group_sizes = np.bincount(groups)
        group_alive = np.bincount(groups, weights=alive) > 0
        if self.ranking == "global":
            partitions = [(0, group_alive.size)]
        else:
            partitions = list(zip(bounds[:-1], bounds[1:]))
        counts = [
            self._count(hi - lo, int(group_alive[lo:hi].sum()), event, target)
            for lo, hi in partitions
        ]
        if any(counts):
            scores = self._scores(
                slots,
                np.concatenate([w.ravel() for w in weights]),
                np.concatenate([f.ravel() for f in flips]),
                event,
            )
            # A unit scores the mean of its weights' scores.
            scores = np.bincount(groups, weights=scores) / group_sizes
            for (lo, hi), count in zip(partitions, counts):
                if not count:
                    continue
                candidates = lo + np.flatnonzero(group_alive[lo:hi])
                lowest = np.argpartition(scores[candidates], count - 1)[:count]
                group_alive[candidates[lowest]] = False
            alive &= group_alive[groups]
        apply_masks(self.model, slots, alive, weights, flips)
        optimizer.pruning_events.assign(event + 1)
        if self.verbose:
            print(
                f"\n{when}: FlipOutPruning ({self.criterion}) event "
                f"{event + 1} pruned {sum(counts)} {self.structure}; sparsity "
                f"{1 - int(alive.sum()) / alive.size:.4f}."
            )

    def get_config(self):
        return {
            "target_sparsity": self.target_sparsity,
            "prune_rate": self.prune_rate,
            "prune_every": self.prune_every,
            "exponent": self.exponent,
            "criterion": self.criterion,
            "include": self.include,
            "exclude": self.exclude,
            "seed": self.seed,
            "verbose": self.verbose,
            "prune_every_steps": self.prune_every_steps,
            "begin_step": self.begin_step,
            "structure": self.structure,
            "schedule": None
            if self.schedule is None
            else keras.saving.serialize_keras_object(self.schedule),
            "ranking": self.ranking,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
