"""`KLAnnealing`: linear warm-up of the KL weight."""

import keras

from keras_stochastic import _validation
from keras_stochastic import inference


@keras.saving.register_keras_serializable(package="keras_stochastic")
class KLAnnealing(keras.callbacks.Callback):
    """Warms up every stochastic layer's `kl_weight` linearly to its target.

    At the start of epoch `e` (counting from 0, `initial_epoch` included) each
    layer's `kl_weight` is set to

    ```
    target * min(1, initial_factor + (1 - initial_factor) * e / warmup_epochs)
    ```

    where `target` is the layer's `kl_weight` when training begins. The
    targets are restored when training ends, so that a later `fit` (or a saved
    model) sees the intended weights. The factor is added to `logs` as
    `"kl_factor"`. Because `kl_weight` lives in a variable, the compiled train
    step sees each change without recompiling, on every backend.

    Args:
        warmup_epochs: Positive integer, the number of epochs to reach the
            target.
        initial_factor: Float in [0, 1], the fraction of the target used in
            the first epoch (default 0: no KL at first).

    Example:

    ```python
    model.fit(x, y, epochs=30, callbacks=[ks.callbacks.KLAnnealing(10)])
    ```
    """

    def __init__(self, warmup_epochs, initial_factor=0.0):
        super().__init__()
        self.warmup_epochs = _validation.positive_integer(
            "warmup_epochs", warmup_epochs
        )
        self.initial_factor = _validation.real(
            "initial_factor", initial_factor, 0.0, 1.0, allowed="a float in [0, 1]"
        )
        self._targets = None
        self._factor = None

    def factor(self, epoch):
        """The fraction of the target kl_weight used during `epoch`."""
        progress = epoch / self.warmup_epochs
        return min(1.0, self.initial_factor + (1.0 - self.initial_factor) * progress)

    def on_train_begin(self, logs=None):
        layers = inference.stochastic_layers(self.model)
        for layer in layers:
            # Annealing towards the unset default is the same trap.
            layer._warn_if_default_kl_weight()
        self._targets = [layer.kl_weight for layer in layers]

    def on_epoch_begin(self, epoch, logs=None):
        self._factor = self.factor(epoch)
        layers = inference.stochastic_layers(self.model)
        for layer, target in zip(layers, self._targets):
            layer.kl_weight = target * self._factor

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["kl_factor"] = self._factor

    def on_train_end(self, logs=None):
        layers = inference.stochastic_layers(self.model)
        for layer, target in zip(layers, self._targets):
            layer.kl_weight = target

    def get_config(self):
        return {
            "warmup_epochs": self.warmup_epochs,
            "initial_factor": self.initial_factor,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
