"""Post-hoc calibration: temperature scaling (Guo et al., 2017)."""

import keras
import numpy as np
from keras import ops

from keras_stochastic import _validation
from keras_stochastic.inference import _probabilities
from keras_stochastic.metrics import _classification

__all__ = ["TemperatureScaling"]

# The search interval of log T, and its tolerance.
_LOG_T_RANGE = (np.log(1e-2), np.log(1e2))
_GRID_POINTS = 41
_TOLERANCE = 1e-6


def _true_class_probability(probs, labels):
    """`p(label)` per example, for probabilities `(..., k)` (a single unit: binary)."""
    if probs.shape[-1] == 1:
        p = probs[..., 0]
        return np.where(labels == 1, p, 1.0 - p)
    return np.take_along_axis(probs, labels[:, None], axis=-1)[:, 0]


def _integer_labels(labels, logits):
    """Class indices read as `ks.metrics` reads labels (integers or one-hot rows)."""
    examples = logits[0] if logits.ndim == 3 else logits
    indices = ops.convert_to_numpy(_classification.labels(labels, examples))
    if indices.shape[0] != examples.shape[0]:
        raise ValueError(
            "Arguments `logits` and `labels` must hold the same number of "
            f"examples. Received: logits.shape={logits.shape}, "
            f"labels.shape={np.shape(labels)}"
        )
    return indices.astype(int)


@keras.saving.register_keras_serializable(package="keras_stochastic")
class TemperatureScaling(keras.layers.Layer):
    """Divides logits by one scalar temperature fitted to minimise the NLL.

    Temperature scaling (Guo et al., 2017) recalibrates a trained
    classifier without changing its predicted classes: `fit` finds the `T`
    that minimises the negative log-likelihood of held-out (validation)
    logits, and the layer then returns `logits / T` (`T > 1` softens an
    overconfident model). The temperature is a non-trainable weight, so the
    layer saves and loads with a model, and can be appended to one:
    `keras.Sequential([model, scaler])`.

    For a Bayesian model's Monte Carlo predictive, pass `fit` the sampled
    logits, shaped `(num_samples, num_examples, num_classes)`
    (`ks.predict_mc(model, x_val, return_samples=True)` without
    `from_logits`): `T` then minimises the NLL of the averaged
    probabilities `mean_s softmax(z_s / T)`, the predictive the model is
    used with. `probabilities(logits)` returns that calibrated predictive,
    and `ks.predict_mc(keras.Sequential([model, scaler]), x,
    from_logits=True)` computes it on new data.

    Args:
        temperature: Positive float, the initial temperature (1: identity).
        **kwargs: Base layer keyword arguments, such as `name`.

    Example:

    ```python
    scaler = ks.calibration.TemperatureScaling()
    scaler.fit(model.predict(x_val), y_val)
    calibrated = keras.Sequential([model, scaler])
    ```
    """

    def __init__(self, temperature=1.0, **kwargs):
        super().__init__(**kwargs)
        temperature = _validation.positive("temperature", temperature)
        self._temperature = self.add_weight(
            name="temperature",
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(temperature),
            trainable=False,
            autocast=False,
        )
        self.built = True

    @property
    def temperature(self):
        """The temperature, a Python float."""
        return float(ops.convert_to_numpy(self._temperature))

    def call(self, logits):
        return logits / ops.cast(self._temperature, logits.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def _nll(self, logits, labels, temperature):
        probs = _probabilities(logits / temperature)
        if logits.ndim == 3:
            probs = probs.mean(axis=0)
        p = _true_class_probability(probs, labels)
        return -np.mean(np.log(np.maximum(p, 1e-300)))

    def fit(self, logits, labels):
        """Sets the temperature minimising the NLL of `logits` given `labels`.

        A grid over `T` in `[0.01, 100]` (log-spaced) brackets the minimum,
        and a golden-section search refines it (to 1e-6 in `log T`).

        Args:
            logits: Held-out logits `(num_examples, num_classes)` (a single
                unit: a binary problem's logit), or sampled logits
                `(num_samples, num_examples, num_classes)`.
            labels: Integer labels `(num_examples,)`, or one-hot rows.

        Returns:
            The layer itself, with its temperature set.
        """
        logits = np.asarray(ops.convert_to_numpy(logits), dtype="float64")
        if logits.ndim not in (2, 3):
            raise ValueError(
                "Argument `logits` must have shape (num_examples, num_classes) "
                "or (num_samples, num_examples, num_classes). "
                f"Received: logits.shape={logits.shape}"
            )
        labels = _integer_labels(labels, logits)

        def objective(log_t):
            return self._nll(logits, labels, np.exp(log_t))

        grid = np.linspace(*_LOG_T_RANGE, _GRID_POINTS)
        values = [objective(t) for t in grid]
        best = int(np.argmin(values))
        low = grid[max(best - 1, 0)]
        high = grid[min(best + 1, len(grid) - 1)]
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        fa, fb = objective(a), objective(b)
        while high - low > _TOLERANCE:
            if fa < fb:
                high, b, fb = b, a, fa
                a = high - ratio * (high - low)
                fa = objective(a)
            else:
                low, a, fa = a, b, fb
                b = low + ratio * (high - low)
                fb = objective(b)
        self._temperature.assign(float(np.exp((low + high) / 2.0)))
        return self

    def probabilities(self, logits):
        """Calibrated probabilities (NumPy float64) of logits or sampled logits.

        Softmax (a sigmoid for one unit) of `logits / T`; for sampled logits
        `(num_samples, num_examples, num_classes)`, their mean over samples.
        """
        logits = np.asarray(ops.convert_to_numpy(logits), dtype="float64")
        probs = _probabilities(logits / self.temperature)
        return probs.mean(axis=0) if logits.ndim == 3 else probs

    def get_config(self):
        config = super().get_config()
        config["temperature"] = self.temperature
        return config
