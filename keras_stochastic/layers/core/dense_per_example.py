"""`DensePerExample`: Dense with a Gaussian kernel, one weight sample per example (a baseline)."""

import keras

from keras_stochastic.layers.core.base_dense import GaussianDense


@keras.saving.register_keras_serializable(package="keras_stochastic")
class DensePerExample(GaussianDense):
    """Dense layer with a Gaussian kernel and an independent weight sample for every example.

    ```
    outputs[n] = activation(matmul(inputs[n], kernel_mean + kernel_stddev * eps[n]) + bias)
    ```

    with `eps[n] ~ N(0, 1)` of the kernel's shape drawn for each example `n`
    of the batch (an input with middle axes, `(batch, ..., input_dim)`, uses
    one sample per example for all its rows).

    A baseline, not a layer to train with: it is the estimator that local
    reparameterization and flipout approximate cheaply (Kingma et al.'s
    "weight sample per data point"). No two examples share noise, so the
    gradient variance falls as 1/batch size like theirs, but each call draws
    `batch x input_dim x units` Gaussian numbers and replaces the matmul by a
    batched vector-matrix product: time and memory grow as `O(batch *
    input_dim * units)`. A sampling call (training, or `"sample"` inference)
    whose batch size times kernel size exceeds
    `keras_stochastic.estimators.PER_EXAMPLE_MAX_ELEMENTS` (`2**27`) raises
    an error naming both, when the call is traced if the batch size is known
    then, else (TensorFlow's `fit`, which traces with an unknown batch size)
    when it runs. Use it to measure what the cheap estimators give up (for
    example with `ks.diagnostics.gradient_variance`), on small layers or
    batches.

    The bias is a point estimate, added after the estimator. A Monte Carlo
    KL (`ks.priors.ScaleMixtureNormal`) scores the first example's weight
    sample. Works like `keras.layers.Dense` otherwise: same arguments, names
    and defaults.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. If you don't specify anything,
            no activation is applied (ie. "linear" activation: `a(x) = x`).
        use_bias: Boolean, whether the layer uses a bias vector.
        kernel_initializer: Initializer for the posterior mean of the kernel.
        bias_initializer: Initializer for the bias vector.
        kernel_regularizer: Regularizer applied to the posterior mean.
        bias_regularizer: Regularizer applied to the bias vector.
        activity_regularizer: Regularizer applied to the output of the layer.
        kernel_constraint: Constraint applied to the posterior mean.
        bias_constraint: Constraint applied to the bias vector.
        kernel_stddev_initializer: Initializer for the posterior standard
            deviation of the kernel, or a positive float for a constant value
            (default 0.01). Its values must be positive; they are stored as
            `rho` with `stddev = softplus(rho) + 1e-7`.
        prior: The kernel prior: `"normal"` (`ks.priors.Normal(1.0)`, analytic
            KL, the default), `"scale_mixture_normal"`, or a
            `ks.priors.Prior` instance such as `ks.priors.Normal(0.1)` or
            `ks.priors.ScaleMixtureNormal(...)` (Monte Carlo KL).
        kl_weight: Non-negative float, or `None` (the default: 1.0, with a
            warning when the layer trains, because 1.0 is almost never the
            right value). The layer adds
            `kl_weight * KL(q || p)` (a float32 sum over the kernel's weights)
            with `add_loss` on every call. `fit` adds layer losses to the
            *batch-mean* data loss, so the value that makes the loss the
            negative ELBO per example is `kl_weight = 1 / num_train_examples`.
            Change it later with
            `ks.set_kl_weight` or `ks.callbacks.KLAnnealing`; the change
            reaches already compiled train steps.
        inference: `"mean"` (default) or `"sample"`: what the layer does when
            `training` is false: use the posterior mean kernel
            (deterministic), or sample with the estimator. Training always
            samples. Switch it with `ks.set_inference`, even after `predict`
            was compiled; `ks.predict_mc` always samples.
        seed: Integer or None. Every random draw of the layer comes from a
            `keras.random.SeedGenerator(seed)`; equal seeds give equal outputs.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: Input tensor.
        training: Python boolean. `True` samples with the estimator; `False`
            (the default) follows `inference`.

    Input shape:
        N-D tensor with shape: `(batch_size, ..., input_dim)`.
        The most common situation would be a 2D input with shape
        `(batch_size, input_dim)`.

    Output shape:
        N-D tensor with shape: `(batch_size, ..., units)`.

    Example:

    ```python
    # The same posterior as a DenseLocalReparameterization layer, sampled
    # per example: compare the variance of their gradients.
    model = keras.Sequential([
        keras.Input((784,)),
        ks.layers.DensePerExample(100, activation="relu", kl_weight=1 / num_train),
        ks.layers.DensePerExample(10, kl_weight=1 / num_train),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ks.diagnostics.gradient_variance(model, x_train, y_train, batch_size=32)
    ```

    References:
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick (section 2.3, Table 1).
    """

    estimator = "per_example"
