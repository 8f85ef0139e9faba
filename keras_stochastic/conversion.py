"""Model conversion: the Bayesian twin of a Keras model, and back.

- `to_bayesian(model, estimator, ...)` clones a `Sequential` or functional
  model (nested ones included) with `keras.models.clone_model`, replacing
  Keras `Dense`, `Conv1D/2D/3D`, `SimpleRNN`/`LSTM`/`GRU` and their cells (in
  `keras.layers.RNN`) by their stochastic twins. A twin is built from the
  Keras layer's config (same options), then its posterior is set from the
  trained weights: the kernels become posterior means (variational dropout:
  `theta`), the biases are copied, and the posterior noise starts small (a
  constant standard deviation, or MOPED's `delta * |w|`). Every other layer is
  copied as it is, weights included. In `"mean"` inference the twin predicts
  what the trained model predicts.
- `to_deterministic(model)` is the inverse: plain Keras layers whose kernels
  are the posterior means (`ks.kernels.inference_kernels`: variational
  dropout gives the masked `theta`), so the result saves, exports and
  quantizes without this package.

Which variables are kernels comes from the kernel inventory
(`keras_stochastic.kernels`); this module only knows which class is whose
twin.
"""

import inspect
import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_stochastic import _compat
from keras_stochastic import _validation
from keras_stochastic import kernels
from keras_stochastic import kl as kl_lib
from keras_stochastic import layers as ks_layers
from keras_stochastic import priors as priors_lib
from keras_stochastic.layers.base_stochastic import StochasticLayer
from keras_stochastic.layers.base_variance import VarianceKernelMixin
from keras_stochastic.layers.base_variational_dropout import VariationalDropoutMixin
from keras_stochastic.layers.rnn.base_recurrent import BaseStochasticRNN
from keras_stochastic.posteriors.dropout import VariationalDropoutPosterior
from keras_stochastic.posteriors.gaussian import GaussianPosterior
from keras_stochastic.posteriors.gaussian import inverse_softplus

ESTIMATORS = (
    "flipout",
    "local_reparameterization",
    "reparameterization",
    "variational_dropout",
)
RECURRENT_ESTIMATORS = ("flipout", "local_reparameterization")
# The posterior standard deviation of a converted kernel when none is given:
# the layers' own default.
DEFAULT_KERNEL_STDDEV = 0.01
# MOPED's `delta * |w|` is floored here, so that zero (e.g. pruned) weights
# keep a positive standard deviation (above the posterior's 1e-7 floor).
MOPED_STDDEV_FLOOR = 1e-5
# Variational dropout starts with `log alpha <= threshold - margin` for every
# weight, so that no trained weight is masked in "mean" inference.
VD_LOG_ALPHA_MARGIN = 1.0
# Keras options that a twin does not take and may drop: the effective
# (LoRA-merged) kernel is what is converted, and cuDNN is an implementation
# choice. Quantized layers are not converted (see `_plan_layer`).
_DROPPABLE_OPTIONS = frozenset(
    {"lora_rank", "lora_alpha", "lora_enabled", "quantization_config", "use_cudnn"}
)


def _twins(prefix):
    return {
        "flipout": getattr(ks_layers, f"{prefix}Flipout"),
        "local_reparameterization": getattr(
            ks_layers, f"{prefix}LocalReparameterization"
        ),
        "reparameterization": getattr(ks_layers, f"{prefix}Reparameterization"),
        "variational_dropout": getattr(ks_layers, f"{prefix}VariationalDropout"),
    }


def _recurrent_twins(prefix, suffix=""):
    return {
        "flipout": getattr(ks_layers, f"{prefix}Flipout{suffix}"),
        "local_reparameterization": getattr(
            ks_layers, f"{prefix}LocalReparameterization{suffix}"
        ),
    }


# Keras class -> {estimator: stochastic twin}. Exact classes: a subclass of a
# Keras layer may compute something else, so it is not converted.
_BAYESIAN_TWINS = {
    keras.layers.Dense: _twins("Dense"),
    keras.layers.Conv1D: _twins("Conv1D"),
    keras.layers.Conv2D: _twins("Conv2D"),
    keras.layers.Conv3D: _twins("Conv3D"),
    keras.layers.SimpleRNN: _recurrent_twins("SimpleRNN"),
    keras.layers.LSTM: _recurrent_twins("LSTM"),
    keras.layers.GRU: _recurrent_twins("GRU"),
    keras.layers.SimpleRNNCell: _recurrent_twins("SimpleRNN", "Cell"),
    keras.layers.LSTMCell: _recurrent_twins("LSTM", "Cell"),
    keras.layers.GRUCell: _recurrent_twins("GRU", "Cell"),
}
# Stochastic class -> its Keras twin.
_DETERMINISTIC_TWINS = {
    twin: keras_class
    for keras_class, twins in _BAYESIAN_TWINS.items()
    for twin in twins.values()
}
_RECURRENT_KERAS = (
    keras.layers.SimpleRNN,
    keras.layers.LSTM,
    keras.layers.GRU,
    keras.layers.SimpleRNNCell,
    keras.layers.LSTMCell,
    keras.layers.GRUCell,
)
_MODEL_TYPES = (keras.Sequential, keras.Model)


class LayerConversion:
    """What happened to one layer: converted (`target` set) or left as it was.

    Attributes:
        name: The layer's name in the source model.
        source: The source layer's class name.
        target: The new layer's class name, or None when the layer was copied
            unchanged.
        note: Why the layer was left (empty for converted layers).
    """

    __slots__ = ("name", "source", "target", "note")

    def __init__(self, name, source, target=None, note=""):
        self.name = name
        self.source = source
        self.target = target
        self.note = note

    @property
    def converted(self):
        return self.target is not None

    def __repr__(self):
        return (
            f"LayerConversion(name={self.name!r}, source={self.source!r}, "
            f"target={self.target!r}, note={self.note!r})"
        )


class ConversionReport:
    """The layers `to_bayesian` / `to_deterministic` converted and those they left.

    `str(report)` is the table that `verbose=1` prints.

    Attributes:
        layers: One `LayerConversion` per layer of the source model, in the
            order of `model.layers` (nested models' layers after their model).
        converted: The converted ones.
        left: The ones copied unchanged, with the reason in their `note`.
    """

    def __init__(self, title, records):
        self.title = title
        self.layers = list(records)

    @property
    def converted(self):
        return [record for record in self.layers if record.converted]

    @property
    def left(self):
        return [record for record in self.layers if not record.converted]

    def __str__(self):
        rows = [("Layer", "Type", "Result")]
        for record in self.layers:
            result = (
                f"-> {record.target}" if record.converted else f"left: {record.note}"
            )
            rows.append((record.name, record.source, result))
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            f"{self.title}: {len(self.converted)} layer(s) converted, "
            f"{len(self.left)} left"
        ]
        for i, (name, source, result) in enumerate(rows):
            lines.append(f"{name:<{widths[0]}}  {source:<{widths[1]}}  {result}")
            if i == 0:
                lines.append("-" * (sum(widths) + 4))
        return "\n".join(lines)

    def __repr__(self):
        return (
            f"<ConversionReport {self.title}: {len(self.converted)} converted, "
            f"{len(self.left)} left>"
        )


# Model walking and cloning.


def _check_model(model, function):
    if not isinstance(model, _MODEL_TYPES):
        raise TypeError(
            f"`{function}` expects a Keras model (`keras.Sequential` or a "
            f"functional `keras.Model`). Received: model={model!r}"
        )
    if not _compat.is_graph_model(model):
        raise ValueError(
            f"`{function}` supports `keras.Sequential` and functional models "
            "only: a subclassed model "
            f"({type(model).__name__}) defines its computation in `call`, which "
            "has no graph of layers to clone. Build the model with the "
            "functional API (or Sequential), or replace its layers with "
            "keras_stochastic layers by hand. Received: "
            f"model={type(model).__name__}"
        )
    if not model.built:
        raise ValueError(
            f"`{function}` needs a built model (its weights are copied): call "
            "the model on data, or give it a `keras.Input`. Received: "
            f"model={model.name!r} (not built)"
        )


def _walk(model):
    """Every layer of `model` once, graph sub-models recursed into: `[(layer, parents)]`."""
    seen = set()
    found = []

    def visit(container, parents):
        for layer in container.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            found.append((layer, parents))
            if _compat.is_graph_model(layer):
                visit(layer, parents + (layer,))

    visit(model, ())
    return found


def _clone(model, make_layer, function):
    """`clone_model(model)` with `make_layer(layer)` building each new layer."""
    try:
        return keras.models.clone_model(
            model, clone_function=make_layer, recursive=True
        )
    except _ConversionError:
        raise
    except (TypeError, ValueError, NotImplementedError, AttributeError) as error:
        raise ValueError(
            f"`{function}` could not clone the model {model.name!r}: "
            f"`keras.models.clone_model` failed with: {error}. Only Sequential "
            "and functional models whose layers rebuild from their configs can "
            f"be converted. Received: model={model.name!r}"
        ) from error


class _ConversionError(ValueError):
    """An error of ours raised inside `clone_model`: passed on unchanged."""


def _copy_layer(layer):
    """A new layer of the same class and config (its weights are set after cloning)."""
    try:
        return type(layer).from_config(layer.get_config())
    except Exception as error:
        raise _ConversionError(
            f"The layer {layer.name!r} ({type(layer).__name__}) could not be "
            f"copied: rebuilding it from its config failed with: {error}. "
            "Custom layers need a `get_config` that `from_config` accepts. "
            f"Received: layer={layer.name!r}"
        ) from error


def _copy_weights(source, target):
    values = source.get_weights()
    try:
        target.set_weights(values)
    except ValueError as error:
        raise ValueError(
            f"The weights of layer {source.name!r} ({type(source).__name__}) "
            f"could not be copied to its clone: {error}. Received: "
            f"layer={source.name!r}"
        ) from error


def _constructor_arguments(cls):
    """The keyword arguments `cls(...)` accepts, following `**kwargs` up the MRO."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names.update(
            p.name
            for p in parameters
            if p.kind
            in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        )
        if not any(p.kind == inspect.Parameter.VAR_KEYWORD for p in parameters):
            break
    return names - {"self", "cell", "cell_kwargs", "posterior"}


def _is_keras_rnn(layer):
    """A plain `keras.layers.RNN` (not a subclass) around one cell."""
    return type(layer) is keras.layers.RNN


def _core(layer):
    """The layer that holds the kernels: the cell of a recurrent layer."""
    return layer.cell if isinstance(layer, keras.layers.RNN) else layer


def _configured(layer):
    """The layer whose config the twin takes: the cell of a `keras.layers.RNN`."""
    return layer.cell if _is_keras_rnn(layer) else layer


def _numpy(value):
    return np.asarray(ops.convert_to_numpy(value))


def _path(layer, parents):
    return "/".join([parent.name for parent in parents] + [layer.name])


# to_bayesian.


def _stddev_rule(kernel_stddev, moped_delta):
    if kernel_stddev is not None and moped_delta is not None:
        raise ValueError(
            "Pass either `kernel_stddev` (a constant posterior standard "
            "deviation) or `moped_delta` (MOPED: `delta * |w|`), not both. "
            f"Received: kernel_stddev={kernel_stddev!r}, moped_delta={moped_delta!r}"
        )
    if moped_delta is not None:
        return None, _validation.positive("moped_delta", moped_delta)
    if kernel_stddev is None:
        return DEFAULT_KERNEL_STDDEV, None
    return _validation.positive("kernel_stddev", kernel_stddev), None


def _check_prior(prior, estimator):
    if prior is None:
        return None
    if estimator == "variational_dropout":
        try:
            priors_lib.get_dropout_prior(prior)
        except ValueError as error:
            raise ValueError(
                'With estimator="variational_dropout" the argument `prior` must '
                'be a variational dropout prior: "log_uniform", "student_t", '
                '"ard" or a `ks.priors.DropoutPrior` (Gaussian priors such as '
                "`ks.priors.Normal` apply to the other estimators). "
                f"Received: prior={prior!r}"
            ) from error
    else:
        try:
            priors_lib.get(prior)
        except ValueError as error:
            raise ValueError(
                f"With estimator={estimator!r} the argument `prior` must be a "
                "`ks.priors.GaussianPrior` (e.g. `ks.priors.Normal(1.0)` or "
                "`ks.priors.CenteredNormal(0.1)`, centred on the trained "
                f"weights) or its name. Received: prior={prior!r}"
            ) from error
    return prior


class _Selection:
    """`layers=`: names, classes, a predicate, or a list of names and classes."""

    def __init__(self, layers):
        self.everything = layers is None
        self.names, self.classes, self.predicate = set(), (), None
        message = (
            "Argument `layers` must be None (every layer that can be converted), "
            "a layer name, a layer class, a predicate `fn(layer) -> bool`, or a "
            f"list of names and classes. Received: layers={layers!r}"
        )
        if layers is None:
            return
        if isinstance(layers, str) or inspect.isclass(layers):
            layers = [layers]
        elif callable(layers):
            self.predicate = layers
            return
        if not isinstance(layers, (list, tuple, set)):
            raise TypeError(message)
        classes = []
        for item in layers:
            if isinstance(item, str):
                self.names.add(item)
            elif inspect.isclass(item) and issubclass(item, keras.layers.Layer):
                classes.append(item)
            else:
                raise TypeError(message)
        self.classes = tuple(classes)
        self.received = layers

    def direct(self, layer):
        """Whether `layer` itself is selected (not through a sub-model)."""
        if self.everything:
            return False
        if self.predicate is not None:
            return bool(self.predicate(layer))
        return layer.name in self.names or isinstance(layer, self.classes)

    def check_names(self, walked, function):
        known = {layer.name for layer, _ in walked}
        unknown = sorted(self.names - known)
        if unknown:
            raise ValueError(
                f"Argument `layers` of `{function}` names layers that are not in "
                f"the model: {unknown}. The model's layers: {sorted(known)}. "
                f"Received: layers={self.received!r}"
            )


def _keras_kwargs(layer, twin_class):
    """`(kwargs, unsupported)`: the twin's arguments from `layer`'s config."""
    config = dict(layer.get_config())
    config.pop("cell", None)
    accepted = _constructor_arguments(twin_class)
    unsupported = sorted(
        key for key in config if key not in accepted and key not in _DROPPABLE_OPTIONS
    )
    return {key: value for key, value in config.items() if key in accepted}, unsupported


def _plan_layer(layer, estimator):
    """`(twin_class, note)` for one layer: the class to convert it to, or why not."""
    if isinstance(layer, (StochasticLayer, BaseStochasticRNN)) or (
        _is_keras_rnn(layer) and isinstance(layer.cell, StochasticLayer)
    ):
        return None, "already stochastic"
    if isinstance(layer, keras.layers.InputLayer):
        return None, "input"
    core = _configured(layer)
    twins = _BAYESIAN_TWINS.get(type(core))
    if twins is None:
        if _compat.is_graph_model(layer):
            return None, "sub-model (its layers are converted)"
        if _is_keras_rnn(layer):
            return None, f"RNN of a {type(layer.cell).__name__}: no twin"
        inner = [
            sub
            for sub in _compat.flatten_layers(layer, include_self=False)
            if kernels.has_kernels(sub)
        ]
        if kernels.has_kernels(layer):
            return None, f"no stochastic twin of {type(layer).__name__}"
        if inner:
            return None, (
                f"holds layers with kernels ({type(inner[0]).__name__}) that "
                "are not in a graph: copied unchanged"
            )
        return None, "no kernel"
    if getattr(core, "quantization_mode", None) is not None:
        return None, f"quantized ({core.quantization_mode}): no twin"
    twin = twins.get(estimator)
    if twin is None:
        return None, (
            f"no {estimator} twin (recurrent layers: "
            f"{' or '.join(RECURRENT_ESTIMATORS)})"
        )
    _, unsupported = _keras_kwargs(core, twin)
    if _is_keras_rnn(layer):
        _, more = _keras_kwargs(layer, keras.layers.RNN)
        unsupported += more
    if unsupported:
        return None, f"options {unsupported} have no {twin.__name__} equivalent"
    return twin, ""


def _has_kernels_inside(layer):
    return any(
        kernels.has_kernels(sub) for sub in _compat.flatten_layers(layer)
    ) and not isinstance(layer, (StochasticLayer, BaseStochasticRNN))


def _target_stddev(kernel, stddev, moped_delta):
    if moped_delta is None:
        return np.full(kernel.shape, stddev, "float64")
    return np.maximum(
        moped_delta * np.abs(kernel.astype("float64")), MOPED_STDDEV_FLOOR
    )


def _set_gaussian(posterior, kernel, stddev, moped_delta):
    """Posterior mean = `kernel`; `softplus(rho) + 1e-7` = the target stddev."""
    posterior.mean.assign(kernel)
    target = _target_stddev(kernel, stddev, moped_delta)
    rho = inverse_softplus(
        ops.convert_to_tensor((target - kl_lib.STDDEV_FLOOR).astype("float32"))
    )
    posterior.rho.assign(_numpy(rho))
    if posterior.prior_mean is not None:
        posterior.prior_mean.assign(kernel)


def _vd_log_alpha(posterior, theta, stddev, moped_delta):
    """The initial `log alpha` of a variational dropout kernel, in its noise shape.

    MOPED: `alpha = delta^2` (standard deviation `delta |theta|`); a constant
    standard deviation `s`: `alpha = s^2 / theta^2` (per unit or layer: over
    its mean `theta^2`). Clipped to `[-8, threshold - margin]`, so that no
    weight starts masked.
    """
    parameterization = posterior.parameterization
    theta_squared = np.square(theta.astype("float64")) + kl_lib.THETA_SQUARED_EPSILON
    if parameterization == "neuron":
        theta_squared = theta_squared.reshape(-1, theta.shape[-1]).mean(axis=0)
    elif parameterization == "layer":
        theta_squared = np.asarray(theta_squared.mean())
    if moped_delta is not None:
        log_alpha = np.full(theta_squared.shape, 2.0 * math.log(moped_delta))
    else:
        log_alpha = 2.0 * math.log(stddev) - np.log(theta_squared)
    high = min(posterior.threshold - VD_LOG_ALPHA_MARGIN, posterior.log_alpha_max)
    log_alpha = np.clip(log_alpha, kl_lib.LOG_ALPHA_MIN, high)
    if parameterization == "additive":
        # log sigma^2 = log alpha + log(theta^2 + 1e-8).
        return log_alpha + np.log(theta_squared)
    return log_alpha


def _set_variational_dropout(posterior, kernel, stddev, moped_delta):
    posterior.mean.assign(kernel)
    log_variance = _vd_log_alpha(posterior, kernel, stddev, moped_delta)
    posterior.log_variance.assign(log_variance.astype("float32"))


def _posteriors(core):
    """The kernel posteriors of a stochastic layer or cell, in kernel order."""
    if hasattr(core, "_posteriors"):
        return core._posteriors()
    return [core.posterior]


def _initialize_twin(source, twin, stddev, moped_delta):
    """Sets a built twin's posterior and bias from the trained Keras layer."""
    source, twin = _core(source), _core(twin)
    trained = [_numpy(k) for k in kernels.kernel_variables(source)]
    means = kernels.kernel_variables(twin)
    by_mean = {id(p.mean): p for p in _posteriors(twin)}
    for kernel, mean in zip(trained, means, strict=True):
        posterior = by_mean.get(id(mean))
        if isinstance(posterior, GaussianPosterior):
            _set_gaussian(posterior, kernel, stddev, moped_delta)
        elif isinstance(posterior, VariationalDropoutPosterior):
            _set_variational_dropout(posterior, kernel, stddev, moped_delta)
        else:
            # A point-estimate recurrent kernel.
            mean.assign(kernel)
    if source.bias is not None:
        twin.bias.assign(_numpy(source.bias))


def to_bayesian(
    model,
    estimator="flipout",
    *,
    kl_weight=None,
    prior=None,
    kernel_stddev=None,
    moped_delta=None,
    layers=None,
    layer_kwargs=None,
    seed=None,
    verbose=0,
    return_report=False,
):
    """The Bayesian twin of a trained Keras model.

    Clones a `keras.Sequential` or functional model (skip connections,
    shared layers and nested Sequential/functional models included) and
    replaces its `Dense`, `Conv1D`, `Conv2D`, `Conv3D`, `SimpleRNN`, `LSTM`
    and `GRU` layers (and `SimpleRNNCell`, `LSTMCell`, `GRUCell` inside
    `keras.layers.RNN`) by their keras_stochastic twins for `estimator`,
    built from the Keras layer's config: the same units, filters, kernel
    size, strides, padding, activation, initializers, regularizers, and for
    recurrent layers `return_sequences`, `return_state`, `go_backwards`,
    `stateful`, `unroll`, `dropout`, `recurrent_dropout`, `reset_after`, ...

    The trained weights set the posterior:

    - Gaussian estimators (`"flipout"`, `"local_reparameterization"`,
      `"reparameterization"`): posterior mean = the trained kernel,
      standard deviation `kernel_stddev` (a constant, default 0.01) or, with
      `moped_delta`, MOPED's `max(delta * |w|, 1e-5)` (Krishnan et al.,
      2020), stored exactly as `rho = softplus^-1(stddev - 1e-7)`.
    - `"variational_dropout"`: `theta` = the trained kernel; the noise starts
      small: `alpha = delta^2` with `moped_delta` (standard deviation
      `delta |theta|`), else `alpha = kernel_stddev^2 / theta^2`; in both
      cases `log alpha` is clipped to `[-8, threshold - 1]`, so that no
      weight starts masked in `"mean"` inference.

    Biases are copied (point estimates) and every other layer
    (`BatchNormalization`, `Dropout`, pooling, `Embedding`, layers already
    stochastic, ...) is copied with its weights. In `"mean"` inference the
    result predicts what `model` predicts; `model` itself is not changed.
    The result is compiled as `model` was (by `keras.models.clone_model`),
    with a new optimizer.

    Recurrent layers have flipout and local reparameterization twins only:
    with the other estimators they are left deterministic (and a warning
    says so when `layers` is None), and selecting one explicitly raises.
    Subclasses of the Keras layers, quantized layers and layers inside
    custom (non-graph) layers are left too.

    Args:
        model: A built `keras.Sequential` or functional `keras.Model`.
            Subclassed models cannot be converted (their computation is in
            `call`, with no graph to clone): a `ValueError` says so.
        estimator: `"flipout"` (default), `"local_reparameterization"`,
            `"reparameterization"` or `"variational_dropout"` (the
            `*VariationalDropout` layers, which use local reparameterization
            unless `layer_kwargs={"estimator": ...}` says otherwise).
        kl_weight: Non-negative float, every converted layer's `kl_weight`,
            or None (default): left unset, i.e. 1.0 with the layers' warning
            when they train. `fit` adds the KL terms to the *batch-mean*
            data loss, so `1 / num_train_examples` makes the loss the
            negative ELBO per example.
        prior: The kernel prior of every converted layer, or None for the
            layers' default (`ks.priors.Normal(1.0)`; log-uniform for
            variational dropout). `ks.priors.CenteredNormal(stddev)` centres
            it on the trained weights (MOPED's empirical prior): the centre is
            saved as a non-trainable weight of each layer. Variational
            dropout takes a `ks.priors.DropoutPrior` or its name.
        kernel_stddev: Positive float, the initial posterior standard
            deviation of every kernel weight (default 0.01, the layers'
            default). Not together with `moped_delta`.
        moped_delta: Positive float or None: MOPED initialisation, standard
            deviation `delta * |w|` per weight (Krishnan et al. use 0.1).
        layers: What to convert: None (every layer that can be), a layer
            name, a layer class, a list of names and classes, or a predicate
            `fn(layer) -> bool` called on the layers of `model` (nested
            ones included; naming a nested model selects its layers). A
            common, cheap choice is the last layer only:
            `layers=model.layers[-1].name`. A selected layer that cannot be
            converted raises a `ValueError`.
        layer_kwargs: Dict or None: extra constructor arguments of every
            twin, e.g. `{"inference": "sample"}` or, for variational dropout,
            `{"threshold": 3.0, "parameterization": "weight"}`.
        seed: Integer or None. Converted layer `i` gets seed `seed + i`
            (None: unseeded draws; recurrent layers then keep the Keras
            layer's dropout seed).
        verbose: 0 (default) prints nothing; 1 prints the conversion table.
        return_report: Whether to return `(new_model, report)`, the report
            being a `ks.conversion.ConversionReport` (`.converted`, `.left`,
            one `LayerConversion` per layer; `str(report)` is the table).

    Returns:
        The new model (a clone: new layers, new weights), or
        `(new_model, report)` with `return_report=True`.

    Raises:
        ValueError: an unknown `estimator`; a model with nothing to convert;
            a subclassed model; `layers` naming missing layers or selecting
            layers that cannot be converted; a prior of the wrong family.

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=5)

    bayesian = ks.to_bayesian(
        model, "flipout", kl_weight=1 / len(x_train), moped_delta=0.1,
        prior=ks.priors.CenteredNormal(0.1), verbose=1,
    )
    bayesian.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    # Fine-tune. The stddevs move slowly from their MOPED start (Adam moves
    # each by about one learning rate per step): tutorials/bayesian_finetuning.py.
    bayesian.fit(x_train, y_train, epochs=2)
    probs = ks.predict_mc(bayesian, x_test, num_samples=20, from_logits=True)
    plain = ks.to_deterministic(bayesian)  # posterior means, plain Keras
    ```

    References:
        - [Krishnan et al., 2020](https://arxiv.org/abs/1906.05323), Specifying
          Weight Priors in Bayesian Deep Neural Networks with Empirical Bayes
          (MOPED).
    """
    estimator = _validation.choice("estimator", estimator, ESTIMATORS)
    if kl_weight is not None:
        kl_weight = _validation.kl_weight(kl_weight)
    stddev, moped_delta = _stddev_rule(kernel_stddev, moped_delta)
    prior = _check_prior(prior, estimator)
    seed = _validation.seed(seed)
    verbose = _validation.choice("verbose", verbose, (0, 1))
    _validation.boolean("return_report", return_report)
    if layer_kwargs is None:
        layer_kwargs = {}
    if not isinstance(layer_kwargs, dict):
        raise TypeError(
            "Argument `layer_kwargs` must be a dict or None. "
            f"Received: layer_kwargs={layer_kwargs!r}"
        )
    _check_model(model, "to_bayesian")
    selection = _Selection(layers)

    walked = _walk(model)
    selection.check_names(walked, "to_bayesian")
    plans, records, refused, unconverted = {}, [], [], []
    selected_models = set()
    for layer, parents in walked:
        direct = selection.direct(layer)
        selected = (
            selection.everything
            or direct
            or any(id(p) in selected_models for p in parents)
        )
        if _compat.is_graph_model(layer):
            if direct:
                selected_models.add(id(layer))
            records.append(
                LayerConversion(
                    _path(layer, parents),
                    type(layer).__name__,
                    note="sub-model (its layers are listed below)",
                )
            )
            continue
        twin, note = _plan_layer(layer, estimator)
        if twin is not None and selected:
            plans[id(layer)] = (twin, len(plans))
            target = twin.__name__
            if _is_keras_rnn(layer):
                target = f"RNN({target})"
            records.append(
                LayerConversion(_path(layer, parents), type(layer).__name__, target)
            )
            continue
        if twin is not None:
            note = "not selected"
        elif direct:
            refused.append(f"{layer.name!r} ({type(layer).__name__}: {note})")
        elif selection.everything and _has_kernels_inside(layer):
            unconverted.append(f"{layer.name!r} ({note})")
        records.append(
            LayerConversion(_path(layer, parents), type(layer).__name__, note=note)
        )
    if refused:
        raise ValueError(
            f"Argument `layers` selects layers that cannot be converted with "
            f"estimator={estimator!r}: {', '.join(refused)}. Received: "
            f"layers={layers!r}"
        )
    if not plans:
        raise ValueError(
            f"The model {model.name!r} has no layer that `to_bayesian` can "
            f"convert with estimator={estimator!r}"
            + (" among the selected ones" if not selection.everything else "")
            + ": it converts Dense, Conv1D, Conv2D, Conv3D, SimpleRNN, LSTM and "
            "GRU layers (and their cells in keras.layers.RNN; recurrent ones "
            f"with {' or '.join(RECURRENT_ESTIMATORS)} only). Layers found: "
            + ", ".join(f"{r.name} ({r.source}: {r.note})" for r in records)
            + f". Received: model={model.name!r}"
        )

    pairs = []

    def make_layer(layer):
        plan = plans.get(id(layer))
        if plan is None:
            new = _copy_layer(layer)
            pairs.append((layer, new, None))
            return new
        twin, index = plan
        new = _bayesian_layer(
            layer, twin, kl_weight, prior, stddev, seed, index, layer_kwargs
        )
        pairs.append((layer, new, twin))
        return new

    new_model = _clone(model, make_layer, "to_bayesian")
    for source, new, twin in pairs:
        if twin is None:
            _copy_weights(source, new)
        else:
            _initialize_twin(source, new, stddev, moped_delta)
    report = ConversionReport("to_bayesian", records)
    if unconverted:
        warnings.warn(
            f"`to_bayesian(estimator={estimator!r})` left layers with kernels "
            f"deterministic: {', '.join(unconverted)}. Pass verbose=1 to see "
            "every layer, or `layers=` to choose what to convert.",
            UserWarning,
            stacklevel=2,
        )
    return _finish(new_model, report, verbose, return_report)


def _bayesian_layer(layer, twin, kl_weight, prior, stddev, seed, index, extra):
    """The stochastic twin of a Keras layer (or `keras.layers.RNN` of a cell), unbuilt."""
    kwargs, _ = _keras_kwargs(_configured(layer), twin)
    kwargs["kl_weight"] = kl_weight
    if prior is not None:
        kwargs["prior"] = prior
    if stddev is not None and not issubclass(twin, VariationalDropoutMixin):
        # A constant is the twin's own initializer (its config says so); the
        # MOPED values are set after building, like the means.
        kwargs["kernel_stddev_initializer"] = stddev
    if seed is not None:
        kwargs["seed"] = seed + index
    kwargs.update(extra)
    try:
        new = twin(**kwargs)
    except (TypeError, ValueError) as error:
        raise _ConversionError(
            f"Could not build the {twin.__name__} twin of layer {layer.name!r}: "
            f"{error}. Received: layer_kwargs={extra!r}"
        ) from error
    if _is_keras_rnn(layer):
        rnn_kwargs, _ = _keras_kwargs(layer, keras.layers.RNN)
        new = keras.layers.RNN(new, **rnn_kwargs)
    return new


def _finish(new_model, report, verbose, return_report):
    if verbose:
        print(report)
    if return_report:
        return new_model, report
    return new_model


# to_deterministic.


def _plan_deterministic(layer):
    """`(keras_class, note)`: the Keras twin of a stochastic layer, or why it has none."""
    core = _configured(layer)
    if isinstance(core, VarianceKernelMixin):
        raise ValueError(
            f"The layer {layer.name!r} ({type(core).__name__}) is a variance "
            "layer: its posterior mean is zero, so its mean model ignores the "
            "inputs and has no meaningful deterministic twin. Keep it "
            "stochastic (use `ks.predict_mc`), or replace it before "
            f"converting. Received: layer={layer.name!r}"
        )
    if isinstance(core, (StochasticLayer, BaseStochasticRNN)):
        keras_class = _DETERMINISTIC_TWINS.get(type(core))
        if keras_class is None:
            raise ValueError(
                f"The layer {layer.name!r} ({type(core).__name__}) has no "
                "deterministic Keras twin (`to_deterministic` converts the "
                "Dense, Conv and recurrent flipout, local reparameterization, "
                "reparameterization and variational dropout layers). Received: "
                f"layer={layer.name!r}"
            )
        return keras_class, ""
    if not _compat.is_graph_model(layer) and any(
        isinstance(sub, (StochasticLayer, BaseStochasticRNN))
        for sub in _compat.flatten_layers(layer, include_self=False)
    ):
        raise ValueError(
            f"The layer {layer.name!r} ({type(layer).__name__}) holds "
            "keras_stochastic layers outside a Sequential or functional graph, "
            "which `to_deterministic` cannot reach. Received: "
            f"layer={layer.name!r}"
        )
    if _compat.is_graph_model(layer):
        return None, "sub-model (its layers are listed below)"
    if isinstance(layer, keras.layers.InputLayer):
        return None, "input"
    return None, "not stochastic"


def _deterministic_layer(layer, keras_class):
    kwargs, _ = _keras_kwargs(_configured(layer), keras_class)
    new = keras_class(**kwargs)
    if _is_keras_rnn(layer):
        rnn_kwargs, _ = _keras_kwargs(layer, keras.layers.RNN)
        new = keras.layers.RNN(new, **rnn_kwargs)
    return new


def _initialize_deterministic(source, new):
    source, new = _core(source), _core(new)
    values = [_numpy(k) for k in kernels.inference_kernels(source)]
    for variable, value in zip(kernels.kernel_variables(new), values, strict=True):
        variable.assign(value.astype("float32"))
    if new.bias is not None:
        new.bias.assign(_numpy(source.bias))


def to_deterministic(model, *, verbose=0, return_report=False):
    """The posterior-mean model of a Bayesian model, made of plain Keras layers.

    Clones `model` (as `to_bayesian` does) and replaces each keras_stochastic
    Dense, Conv and recurrent layer (and cell in `keras.layers.RNN`) by its
    Keras twin (`Dense`, `Conv1D/2D/3D`, `SimpleRNN`/`LSTM`/`GRU` and
    cells), with the same options and kernels equal to what `"mean"`
    inference uses (`ks.kernels.inference_kernels`): the posterior means,
    and for variational dropout `theta` masked where `log alpha >=
    threshold`. Biases and every other layer are copied. The result predicts
    what `model` predicts in `"mean"` inference, whatever the layers'
    `inference` setting, and depends on Keras only: its `.keras` file loads
    without keras_stochastic, `model.export(...)` and
    `model.quantize("int8")` work on it. It is compiled as `model` was.

    `to_deterministic(ks.to_bayesian(m))` predicts what `m` predicts.

    Args:
        model: A built `keras.Sequential` or functional `keras.Model` with
            keras_stochastic layers.
        verbose: 0 (default) prints nothing; 1 prints the conversion table.
        return_report: Whether to return `(new_model, report)` (a
            `ks.conversion.ConversionReport`).

    Returns:
        The new model, or `(new_model, report)` with `return_report=True`.

    Raises:
        ValueError: a variance layer (its posterior mean is zero: no
            meaningful mean model), a subclassed model, or a model without
            keras_stochastic layers.

    Example:

    ```python
    plain = ks.to_deterministic(bayesian)
    plain.save("mean_model.keras")  # loads without keras_stochastic
    plain.quantize("int8")
    ```
    """
    verbose = _validation.choice("verbose", verbose, (0, 1))
    _validation.boolean("return_report", return_report)
    _check_model(model, "to_deterministic")
    walked = _walk(model)
    plans, records = {}, []
    for layer, parents in walked:
        keras_class, note = _plan_deterministic(layer)
        if keras_class is not None:
            plans[id(layer)] = keras_class
        target = None
        if keras_class is not None:
            target = keras_class.__name__
            if _is_keras_rnn(layer):
                target = f"RNN({target})"
        records.append(
            LayerConversion(_path(layer, parents), type(layer).__name__, target, note)
        )
    if not plans:
        raise ValueError(
            f"The model {model.name!r} has no keras_stochastic layer for "
            "`to_deterministic` to convert: it is deterministic already. "
            f"Received: model={model.name!r}"
        )
    pairs = []

    def make_layer(layer):
        keras_class = plans.get(id(layer))
        if keras_class is None:
            new = _copy_layer(layer)
        else:
            new = _deterministic_layer(layer, keras_class)
        pairs.append((layer, new, keras_class))
        return new

    new_model = _clone(model, make_layer, "to_deterministic")
    for source, new, keras_class in pairs:
        if keras_class is None:
            _copy_weights(source, new)
        else:
            _initialize_deterministic(source, new)
    report = ConversionReport("to_deterministic", records)
    return _finish(new_model, report, verbose, return_report)


__all__ = [
    "ConversionReport",
    "LayerConversion",
    "to_bayesian",
    "to_deterministic",
]
