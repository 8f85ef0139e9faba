"""`GradientNoise`: layer-scaled Gaussian gradient noise around any optimizer."""

import math

import keras
import numpy as np
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _distribute
from keras_stochastic import _reductions
from keras_stochastic import _validation
from keras_stochastic import rng

SCALE_BY = ("gradient", "parameter")
DISTRIBUTIONS = ("gaussian", "rademacher")


@keras.saving.register_keras_serializable(package="keras_stochastic")
class GradientNoise(keras.optimizers.Optimizer):
    """Adds layer-scaled Gaussian noise to the gradients of another optimizer.

    For every variable `theta_l` with gradient `g_l` (`d_l` entries), the
    inner optimizer receives

    ```
    g_l + eps_l,   eps_l ~ N(0, scale**2 * ||t_l||**2 / d_l)   (i.i.d. entries)
    ```

    where `t_l = g_l` (`scale_by="gradient"`, the default) or
    `t_l = theta_l` (`scale_by="parameter"`). Each entry's noise thus has the
    root-mean-square size of the entries of `t_l`, times `scale`. The noise
    passes through the inner optimizer's momentum, adaptive scaling, learning
    rate and weight decay like any gradient. Fresh noise is drawn at every
    step from a `keras.random.SeedGenerator(seed)` whose state is an
    optimizer variable, so it advances inside compiled train steps on every
    backend and is saved and restored with the optimizer.

    This is the gradient noise of FlipOut pruning (Apostol et al., 2020),
    which perturbs weights near zero so that their signs flip, and it is the
    optimizer half of `keras_stochastic.callbacks.FlipOutPruning`: when that
    callback is attached, this wrapper also holds its pruning state and, inside
    the compiled train step,

    - multiplies the gradients (and the noise) of pruned variables by their
      masks,
    - re-applies the masks to the weights after the inner optimizer's update,
      so pruned weights stay exactly zero under momentum or Adam,
    - counts, per weight, the steps on which `sign(theta)` changed (with
      `sign(0) = 0`),
    - for pruned kernels of keras_stochastic layers, masks the gradients and
      noise of their noise parameters (e.g. `kernel_rho`) and restores
      their pruned entries after the update (`freeze_where_pruned`).

    The masks and flip counters are variables of this wrapper (listed before
    the inner optimizer's in `variables`), so `model.save`, checkpoints and
    `keras.callbacks.BackupAndRestore` carry them. The noise anneals as
    weights are pruned: masking shrinks `||t_l||` while `d_l` stays the number
    of entries of the variable (pruned ones included), and pruned entries get
    no noise.

    Choosing `scale_by`: `"gradient"` follows the authors' released code and
    is the default because it trains well. `"parameter"` is the literal
    reading of the paper's Eq. 3c; there `||theta_l|| / ||g_l||` is typically
    tens to hundreds, so at `scale=1` the noise swamps the gradient: use a
    small scale with it (the measured sweep, `benchmarks/gradient_noise_scale.py`,
    is in `benchmarks/RESULTS.md`).

    Cost: one Gaussian draw per trainable weight and step, about as many
    random numbers as a flipout layer draws, plus a few elementwise passes
    (the norms, the scaling, and with pruning the masks and sign
    comparisons). On a CPU a weight-sized draw can cost as much as a small
    network's whole deterministic step (measured overheads:
    `benchmarks/RESULTS.md`). `scale=0` draws nothing (pruning without
    noise). To halve the random bits, the noise is `keras_stochastic.rng.coarse_normal`:
    16 random bits per value (|eps| capped at 4.39 standard deviations in
    the XLA-compiled table draw, the default on TensorFlow and always on
    JAX; at 4.85 in the Box-Muller draw of `jit_compile=False`).

    Args:
        inner_optimizer: The `keras.optimizers.Optimizer` that applies the
            noisy gradients (or a string/config accepted by
            `keras.optimizers.get`). Set `weight_decay`, clipping, EMA and
            gradient accumulation on it.
        scale: Non-negative float (default 1.0), the noise standard deviation
            relative to the root-mean-square entry of `t_l`. `0` disables the
            noise.
        scale_by: `"gradient"` (default) or `"parameter"`, what `t_l` is (see
            above). With `"parameter"`, prefer a scale of about 0.01.
        seed: Integer or None, seeds the noise; equal seeds give equal noise.
        name: Optional name of the optimizer.
        distribution: `"gaussian"` (default) or `"rademacher"`: `+-std` with
            equal probability, the same variance from one random bit per
            value instead of 16 (the FlipOut paper frames the noise as a
            `+-epsilon` perturbation, section 2.1), for a cheaper step.
        jit_compile: `"auto"` (default), True or False: on TensorFlow,
            whether the whole update (noise, masks, the inner optimizer's
            step, flip counting) runs as one XLA-compiled function, which
            fuses its elementwise passes over the weights (and draws
            Gaussian noise from `keras_stochastic.rng`'s 16-bit table, the
            XLA draw). `"auto"` fuses outside `tf.distribute` strategies;
            True is refused under a strategy. Ignored on JAX, where the
            train step is compiled whole.

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
        - [Neelakantan et al., 2015](https://arxiv.org/abs/1511.06807),
          Adding Gradient Noise Improves Learning for Very Deep Networks.
    """

    def __init__(
        self,
        inner_optimizer,
        scale=1.0,
        scale_by="gradient",
        seed=None,
        name=None,
        distribution="gaussian",
        jit_compile="auto",
    ):
        if isinstance(inner_optimizer, (str, dict)):
            inner_optimizer = keras.optimizers.get(inner_optimizer)
        if not isinstance(inner_optimizer, keras.optimizers.Optimizer):
            raise TypeError(
                "Argument `inner_optimizer` must be a `keras.optimizers.Optimizer` "
                f"instance. Received: inner_optimizer={inner_optimizer!r}"
            )
        _validation.non_negative("scale", scale)
        _validation.choice("scale_by", scale_by, SCALE_BY)
        _validation.choice("distribution", distribution, DISTRIBUTIONS)
        _validation.seed(seed)
        if jit_compile not in ("auto", True, False):
            raise ValueError(
                "Argument `jit_compile` must be 'auto', True or False. "
                f"Received: jit_compile={jit_compile!r}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        self.scale = float(scale)
        self.scale_by = scale_by
        self.distribution = distribution
        self.jit_compile = jit_compile
        # XLA-compiled updates, per list of variables (see `_fused_apply`).
        self._fused_functions = {}
        self.seed = seed
        self.seed_generator = None
        self._pruned_indices = None
        self._masks = None
        self._flips = None
        self.pruning_events = None
        # {index of a noise parameter: the mask of its pruned kernel}.
        self._frozen = {}
        # Set when pruning state is created; train functions traced before
        # that do not apply it (FlipOutPruning then re-makes them).
        self._pruning_state_is_new = False

    def build(self, var_list):
        if self.built:
            return
        # An optimizer does not track a SeedGenerator: its state must be
        # tracked by hand, or the trainer never carries it between steps
        # (on JAX the same noise would then repeat at every step).
        self.seed_generator = keras.random.SeedGenerator(
            self.seed, name="gradient_noise_seed"
        )
        self._track_variable(self.seed_generator.state)
        self.inner_optimizer.build(var_list)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.inner_optimizer.variables

    @property
    def learning_rate(self):
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate):
        self.inner_optimizer.learning_rate = learning_rate

    @property
    def iterations(self):
        return self.inner_optimizer.iterations

    def scale_loss(self, loss):
        return self.inner_optimizer.scale_loss(loss)

    def apply(self, grads, trainable_variables=None):
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(trainable_variables)
        if self._fuses():
            return self._fused_apply(grads, trainable_variables)
        return self._apply(grads, trainable_variables)

    def _fuses(self):
        """Whether `apply` runs as one XLA cluster (see `jit_compile`)."""
        if self.jit_compile is False or keras.backend.backend() != "tensorflow":
            return False
        if _distribute.has_strategy():
            if self.jit_compile is True:
                raise ValueError(
                    "GradientNoise(jit_compile=True) compiles its update with XLA "
                    "outside the model's train step, which `tf.distribute` "
                    "strategies do not support: use jit_compile='auto' (not "
                    "fused under a strategy) or False. Received: jit_compile=True"
                )
            return False
        return True

    def _fused_apply(self, grads, trainable_variables):
        import tensorflow as tf

        if trainable_variables is None:
            variables = list(_compat.optimizer_variables(self))
        else:
            variables = list(trainable_variables)
        key = tuple(id(v) for v in variables)
        function = self._fused_functions.get(key)
        if function is None:

            def update(grads):
                self._apply(grads, variables)

            # No autograph: the update has no Python control flow on
            # tensors, and converting the inner optimizer's code call by
            # call made the first train step take half a minute.
            function = tf.function(update, jit_compile=True, autograph=False)
            self._fused_functions[key] = function
        function(list(grads))

    def _apply(self, grads, trainable_variables=None):
        if trainable_variables is None:
            variables = _compat.optimizer_variables(self)
        else:
            variables = list(trainable_variables)
        masks = self._slots(self._masks, variables)
        flips = self._slots(self._flips, variables)
        frozen = [self._frozen.get(_compat.variable_index(self, v)) for v in variables]
        if not self._frozen:
            frozen = [None] * len(variables)
        # What masks each gradient and its noise: a pruned kernel's own mask,
        # or for its noise parameters the kernel's.
        gates = [m if m is not None else f for m, f in zip(masks, frozen)]

        noisy = [
            grad is not None and not self._overwrite_variable_with_gradient(variable)
            for grad, variable in zip(grads, variables)
        ]
        grads = [
            grad * ops.cast(mask, grad.dtype) if use and mask is not None else grad
            for grad, mask, use in zip(grads, gates, noisy)
        ]
        targets = grads
        replicas = _distribute.num_replicas()
        if self.scale > 0.0 and self.scale_by == "gradient" and replicas > 1:
            # The noise scales with the global gradient, the sum of the
            # replicas' (the inner optimizer sums the noisy ones again).
            summed = _distribute.all_reduce_sum(
                [g for g, use in zip(grads, noisy) if use]
            )
            summed = iter(summed)
            targets = [next(summed) if use else g for g, use in zip(grads, noisy)]
        noisy_grads = []
        for grad, target, variable, mask, use in zip(
            grads, targets, variables, gates, noisy
        ):
            if use and self.scale > 0.0:
                grad = grad + self._noise(target, variable, mask, replicas)
            noisy_grads.append(grad)

        signs = [None if m is None else ops.sign(v) for v, m in zip(variables, masks)]
        # The frozen entries' values, as a computed tensor: a plain read can
        # share the variable's buffer and see the update (TensorFlow).
        before = [
            None if f is None else v * (1.0 - ops.cast(f, v.dtype))
            for v, f in zip(variables, frozen)
        ]
        self.inner_optimizer.apply(noisy_grads, trainable_variables)
        for variable, mask, flip, sign in zip(variables, masks, flips, signs):
            if mask is not None:
                masked = variable * ops.cast(mask, variable.dtype)
                variable.assign(masked)
                flipped = ops.not_equal(ops.sign(masked), sign)
                flip.assign_add(ops.cast(flipped, flip.dtype))
        for variable, mask, old in zip(variables, frozen, before):
            if mask is not None:
                # Momentum and weight decay would still move them.
                variable.assign(variable * ops.cast(mask, variable.dtype) + old)

    def _noise(self, grad, variable, mask, replicas=1):
        """Noise for `grad` (the global gradient under `tf.distribute`).

        Each of `replicas` replicas draws its own (the seeds differ per
        replica) with variance `1 / replicas` of the target: the inner
        optimizer sums the replicas' gradients, and the sum carries the
        noise of one step on one device.
        """
        target = grad if self.scale_by == "gradient" else variable
        target = ops.cast(target, "float32")
        size = math.prod(variable.shape)
        squares = _reductions.total(ops.square(target))
        std = self.scale * ops.sqrt(squares / (size * replicas))
        factor = self.inner_optimizer.loss_scale_factor
        if self.scale_by == "parameter" and factor is not None:
            # The inner optimizer divides everything it receives by its loss
            # scale factor; only the gradient arrives scaled by it.
            std = std * factor
        # Gradient noise needs neither far tails nor fine resolution: 16
        # random bits per value are enough, and drawing them dominates this
        # optimizer's cost on CPU (`benchmarks/RESULTS.md`).
        if self.distribution == "rademacher":
            # +-std: the same variance from one random bit per value.
            signs = rng.rademacher(variable.shape, self.seed_generator, "float32")
            noise = ops.cast(signs * std, grad.dtype)
        else:
            noise = rng.coarse_normal(
                variable.shape, self.seed_generator, grad.dtype, std
            )
        if mask is not None:
            noise = noise * ops.cast(mask, grad.dtype)
        return noise

    def _slots(self, slots, variables):
        if slots is None:
            return [None] * len(variables)
        return [slots[_compat.variable_index(self, v)] for v in variables]

    def finalize_variable_values(self, var_list):
        self.inner_optimizer.finalize_variable_values(var_list)
        # An EMA inner optimizer overwrites the weights with their averages,
        # which for pruned weights are small but not zero.
        for variable, mask in zip(var_list, self._slots(self._masks, var_list)):
            if mask is not None:
                variable.assign(variable * ops.cast(mask, variable.dtype))

    # Pruning state, created by `keras_stochastic.callbacks.FlipOutPruning`.

    @property
    def pruned_variables(self):
        """The model variables that have masks and flip counters (a list)."""
        if self._pruned_indices is None:
            return []
        return [_compat.optimizer_variables(self)[i] for i in self._pruned_indices]

    def pruning_slots(self):
        """`(variable, mask, flips)` triples of the pruned variables."""
        return [
            (_compat.optimizer_variables(self)[i], self._masks[i], self._flips[i])
            for i in self._pruned_indices or ()
        ]

    def enable_pruning(self, variables):
        """Creates masks (ones) and sign-flip counters (zeros) for `variables`.

        Called by `FlipOutPruning` when training begins. Does nothing if the
        same variables already have them (for example after a restore); the
        set cannot change afterwards.

        Args:
            variables: Trainable variables this optimizer was built with.

        Returns:
            True if the state was created, False if it existed already.
        """
        if not self.built:
            raise ValueError(
                f"Optimizer {self.name!r} must be built (by `fit`, or with "
                "`optimizer.build(model.trainable_variables)`) before pruning "
                "can be enabled."
            )
        for variable in variables:
            if self._overwrite_variable_with_gradient(variable):
                raise ValueError(
                    "Variables with `overwrite_with_gradient` cannot be pruned. "
                    f"Received: variable={variable.path}"
                )
        self._check_variables_are_known(variables)
        indices = sorted({_compat.variable_index(self, v) for v in variables})
        if self._pruned_indices is not None:
            if indices != self._pruned_indices:
                raise ValueError(
                    f"Optimizer {self.name!r} already prunes the variables "
                    f"{[v.path for v in self.pruned_variables]}; the set cannot "
                    "change. Use a new optimizer to prune other variables. "
                    f"Received: variables={[v.path for v in variables]}"
                )
            return False
        self._create_pruning_state(indices)
        return True

    def freeze_where_pruned(self, pairs):
        """Keeps noise parameters fixed where their kernel is pruned.

        Called by `FlipOutPruning` and `ks.pruning.snip` for the stochastic
        layers they prune (Python state, derived from the model again at
        each `fit`). For each `(kernel, parameter)` pair, the gradient and
        noise of `parameter` are masked by the kernel's mask and, after the
        inner optimizer's update, its pruned entries are restored, so they do
        not move under momentum or weight decay either.

        Args:
            pairs: `(kernel, parameter)` variables, `kernel` pruned by this
                optimizer and `parameter` of the same shape.

        Returns:
            Whether the set changed (a traced train step must be remade).
        """
        self._check_variables_are_known([p for pair in pairs for p in pair])
        masks = self._slots(self._masks, [kernel for kernel, _ in pairs])
        frozen = {}
        for (kernel, parameter), mask in zip(pairs, masks, strict=True):
            if mask is None or tuple(parameter.shape) != tuple(kernel.shape):
                raise ValueError(
                    f"`freeze_where_pruned` needs pruned kernels and parameters "
                    f"of their shape. Received: kernel={kernel.path}, "
                    f"parameter={parameter.path}"
                )
            frozen[_compat.variable_index(self, parameter)] = mask
        changed = {k: id(v) for k, v in frozen.items()} != {
            k: id(v) for k, v in self._frozen.items()
        }
        self._frozen = frozen
        if changed:
            self._fused_functions = {}
        return changed

    def _create_pruning_state(self, indices):
        index_variable = self.add_variable(
            (len(indices),), dtype="int32", name="pruned_variable_indices"
        )
        index_variable.assign(np.asarray(indices, dtype="int32"))
        self.pruning_events = self.add_variable(
            (), dtype="int32", name="pruning_events"
        )
        masks = [None] * len(_compat.optimizer_variables(self))
        flips = [None] * len(_compat.optimizer_variables(self))
        for i in indices:
            masks[i] = self.add_variable_from_reference(
                _compat.optimizer_variables(self)[i],
                name="pruning_mask",
                initializer="ones",
            )
        for i in indices:
            variable = _compat.optimizer_variables(self)[i]
            flips[i] = self.add_variable(
                variable.shape,
                dtype="float32",
                name=f"{variable.path.replace('/', '_')}_sign_flips",
            )
        self._masks = masks
        self._flips = flips
        self._pruned_indices = list(indices)
        self._pruning_state_is_new = True
        self._fused_functions = {}

    def load_own_variables(self, store):
        own = len(self._variables)
        extra = len(store.keys()) - len(self.variables)
        if self.built and self._pruned_indices is None and extra > 0:
            # The saved optimizer was pruning: recreate its state (the pruned
            # variables' indices are its first variable) before loading.
            indices = np.asarray(store[str(own)]).astype(int).tolist()
            if extra == 2 + 2 * len(indices):
                self._create_pruning_state(indices)
        super().load_own_variables(store)

    def get_config(self):
        return {
            "name": self.name,
            "inner_optimizer": keras.saving.serialize_keras_object(
                self.inner_optimizer
            ),
            "scale": self.scale,
            "scale_by": self.scale_by,
            "seed": self.seed,
            "distribution": self.distribution,
            "jit_compile": self.jit_compile,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner_optimizer = keras.saving.deserialize_keras_object(
            config.pop("inner_optimizer"), custom_objects=custom_objects
        )
        return cls(inner_optimizer, **config)
