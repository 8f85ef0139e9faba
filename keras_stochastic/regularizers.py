"""Weight regularizers: `HoyerSquare`."""

import keras
from keras import ops

from keras_stochastic import _validation

__all__ = ["HoyerSquare"]


@keras.saving.register_keras_serializable(package="keras_stochastic")
class HoyerSquare(keras.regularizers.Regularizer):
    """The Hoyer-Square sparsity regularizer, `strength * (sum |w|)^2 / sum w^2`.

    The ratio of the squared L1 norm to the squared L2 norm of a weight
    tensor (Yang et al., 2020): it lies between 1 (one nonzero weight) and
    the number of weights (all equal in size), and does not change when the
    weights are scaled, so it pushes weights towards zero without shrinking
    the large ones the way L1 does. Used per kernel, followed by pruning the
    weights below a threshold and fine-tuning, it is one of the baselines of
    the FlipOut paper (Apostol et al., 2020). For an all-zero tensor it is 0.

    Args:
        strength: Non-negative float, the regularization factor.

    Example:

    ```python
    layer = keras.layers.Dense(
        64, kernel_regularizer=ks.regularizers.HoyerSquare(1e-4)
    )
    ```
    """

    def __init__(self, strength=1e-4):
        self.strength = float(_validation.non_negative("strength", strength))

    def __call__(self, x):
        x = ops.cast(x, "float32")
        l1 = ops.sum(ops.abs(x))
        l2 = ops.sum(ops.square(x))
        # 0 / 0 for an all-zero tensor (fully pruned): define it as 0.
        ratio = ops.where(l2 > 0, ops.square(l1) / ops.maximum(l2, 1e-30), 0.0)
        return self.strength * ratio

    def get_config(self):
        return {"strength": self.strength}
