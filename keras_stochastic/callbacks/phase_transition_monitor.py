"""`PhaseTransitionMonitor`: accuracy of four ways to predict with a stochastic model."""

import keras
import numpy as np

from keras_stochastic import _validation
from keras_stochastic import inference


def _accuracy(probs, labels):
    probs = np.asarray(probs)
    if probs.shape[-1] == 1:
        predicted = (probs[..., 0] > 0.5).astype(int)
    else:
        predicted = probs.argmax(axis=-1)
    labels = np.asarray(labels)
    if labels.ndim == probs.ndim and labels.shape[-1] == probs.shape[-1] > 1:
        labels = labels.argmax(axis=-1)
    return float(np.mean(predicted == labels.reshape(predicted.shape)))


@keras.saving.register_keras_serializable(package="keras_stochastic")
class PhaseTransitionMonitor(keras.callbacks.Callback):
    """Logs, per epoch, the validation accuracy of four ways of predicting.

    A stochastic layer can encode its information in the means of its weights
    or, past a "phase transition", in their variances alone (Neklyudov et al.,
    2019): its ensemble stays accurate while the deterministic pass through
    the posterior means falls to chance. At the end of every epoch this
    callback adds to `logs` (and so to `History`):

    - `"val_mean_propagation_accuracy"`: every stochastic layer in `"mean"`
      inference mode (a deterministic pass through the posterior means);
    - `"val_one_sample_accuracy"`: one sampled prediction;
    - `"val_ensemble_accuracy"`: the `num_samples`-sample ensemble, averaging
      probabilities like `ks.predict_mc(..., from_logits=from_logits)`;
    - `"val_zero_mean_accuracy"`: the zero-mean approximation, the same
      ensemble with every stochastic layer sampling its weight noise around
      zero instead of around its mean (`theta -> 0`, variance kept). A layer
      whose accuracy survives this carries its information in variances.

    Every accuracy comes from the model's compiled `predict` (the inference
    modes live in variables). The zero-mean approximation is switched by a
    Python flag on each layer (`StochasticLayer._drop_mean_term`) that is read
    when the function is traced, so the callback keeps a second predict
    function of its own, traced with the flag set, and swaps it in only for
    that measurement. Every mode and flag it changes is restored, also on
    errors. Other layers stay in inference mode (BatchNormalization uses its
    moving statistics). Layers are looked up through `self.model` at every
    epoch, never cached.

    Cost per epoch: `2 + 2 * num_samples` `predict` passes over the
    validation data.

    Args:
        validation_data: Tuple `(x, y)` of NumPy arrays (or array-likes):
            inputs and labels, either integer class indices or one-hot vectors
            (binary models: 0/1 labels for a one-unit output).
        num_samples: Positive integer (default 10), the ensemble size of the
            ensemble and zero-mean accuracies.
        from_logits: Whether the model outputs logits (default `False`:
            probabilities). With `True`, every sample is turned into
            probabilities (softmax, or sigmoid for one unit) before averaging.
        batch_size: Positive integer (default 256), the batch size of the
            predictions.

    Example:

    ```python
    monitor = ks.callbacks.PhaseTransitionMonitor((x_val, y_val), from_logits=True)
    history = model.fit(x, y, epochs=20, callbacks=[monitor])
    history.history["val_mean_propagation_accuracy"]
    ```

    References:
        - [Neklyudov et al., 2019](https://arxiv.org/abs/1803.03764), Variance
          Networks: When Expectation Does Not Meet Your Expectations.
    """

    KEYS = (
        "val_mean_propagation_accuracy",
        "val_one_sample_accuracy",
        "val_ensemble_accuracy",
        "val_zero_mean_accuracy",
    )

    def __init__(
        self, validation_data, num_samples=10, from_logits=False, batch_size=256
    ):
        super().__init__()
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(
                "Argument `validation_data` must be a tuple `(x, y)`. "
                f"Received: validation_data of type {type(validation_data).__name__}"
                + (
                    f" and length {len(validation_data)}"
                    if isinstance(validation_data, (tuple, list))
                    else ""
                )
            )
        _validation.positive_integer("num_samples", num_samples)
        _validation.positive_integer("batch_size", batch_size)
        _validation.boolean("from_logits", from_logits)
        x, y = validation_data
        self.validation_data = (np.asarray(x), np.asarray(y))
        self.num_samples = int(num_samples)
        self.from_logits = from_logits
        self.batch_size = int(batch_size)
        self._zero_mean_predict_function = None

    def _predict_mc(self, x, num_samples):
        return inference.predict_mc(
            self.model,
            x,
            num_samples=num_samples,
            batch_size=self.batch_size,
            from_logits=self.from_logits,
        )

    def _zero_mean_ensemble(self, layers, x):
        # The mean-term flag is read when `predict` is traced: swap in a
        # predict function of our own, traced (once) with the flag set, so
        # that the model's own one never sees it.
        model = self.model
        own_predict_function = model.predict_function
        model.predict_function = self._zero_mean_predict_function
        try:
            with inference._switched_modes(layers, drop_mean_term=True):
                return self._predict_mc(x, self.num_samples)
        finally:
            self._zero_mean_predict_function = model.predict_function
            model.predict_function = own_predict_function

    def evaluate(self):
        """The four accuracies now, as a dict keyed like the logs."""
        x, y = self.validation_data
        layers = inference.stochastic_layers(self.model)
        with inference._switched_modes(layers, inference_mode="mean"):
            mean = self.model.predict(x, batch_size=self.batch_size, verbose=0)
        if self.from_logits:
            mean = inference._probabilities(mean)
        return dict(
            zip(
                self.KEYS,
                (
                    _accuracy(mean, y),
                    _accuracy(self._predict_mc(x, 1), y),
                    _accuracy(self._predict_mc(x, self.num_samples), y),
                    _accuracy(self._zero_mean_ensemble(layers, x), y),
                ),
            )
        )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs.update(self.evaluate())

    def get_config(self):
        # `validation_data` is data, not configuration: pass it again when
        # rebuilding from this config.
        return {
            "num_samples": self.num_samples,
            "from_logits": self.from_logits,
            "batch_size": self.batch_size,
        }
