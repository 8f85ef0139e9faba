"""Uncertainty of a predictive distribution and of its Monte Carlo samples.

For a posterior predictive estimated from `S` sampled predictions
`p_s(y | x)` (`ks.predict_mc(..., return_samples=True)`), shaped
`(num_samples, num_examples, num_classes)`:

- `predictive_entropy(mean_s p_s)`: total uncertainty, `H[mean_s p_s]`;
- `expected_entropy(samples)`: `mean_s H[p_s]`, the aleatoric part (noise
  the model expects in the labels whatever its weights);
- `mutual_information(samples)`: their difference, the epistemic part
  (disagreement between weight samples; BALD, Houlsby et al., 2011), which
  grows away from the training data.

So `predictive_entropy = expected_entropy + mutual_information` holds by
construction. Entropies are in nats; a single unit is the positive-class
probability of a binary problem.
"""

from keras import ops

from keras_stochastic.metrics import _classification


def predictive_entropy(probs):
    """Entropy `-sum_k p_k log p_k` (nats) of each row of probabilities.

    Args:
        probs: Probabilities `(..., num_classes)`, such as `predict_mc`'s
            mean with `from_logits=True`.

    Returns:
        float32 tensor of shape `probs.shape[:-1]`.
    """
    return _classification.entropy(_classification.widen_binary(probs))


def expected_entropy(samples):
    """Mean over samples of each sample's entropy: the aleatoric uncertainty.

    Args:
        samples: Sampled probabilities `(num_samples, ..., num_classes)`.

    Returns:
        float32 tensor of shape `samples.shape[1:-1]`.
    """
    return ops.mean(
        _classification.entropy(_classification.widen_binary(samples)), axis=0
    )


def mutual_information(samples):
    """Mutual information between the label and the weights: the epistemic uncertainty.

    `H[mean_s p_s] - mean_s H[p_s]`, clipped at 0 against round-off (it is
    non-negative by Jensen's inequality, and 0 when all samples agree).

    Args:
        samples: Sampled probabilities `(num_samples, ..., num_classes)`.

    Returns:
        float32 tensor of shape `samples.shape[1:-1]`.
    """
    samples = _classification.widen_binary(samples)
    total = _classification.entropy(ops.mean(samples, axis=0))
    return ops.maximum(total - expected_entropy(samples), 0.0)
