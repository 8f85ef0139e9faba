"""`DenseLocalReparameterization`: Dense with a Gaussian kernel, local reparameterization estimator."""

import keras

from keras_stochastic.layers.core.base_dense import GaussianDense


@keras.saving.register_keras_serializable(package="keras_stochastic")
class DenseLocalReparameterization(GaussianDense):
    """Dense layer with a Gaussian kernel, trained with the local reparameterization trick.

    ```
    outputs = activation(gamma + sqrt(delta + eps0) * zeta + bias)
    ```

    with `gamma = matmul(inputs, kernel_mean)`, `delta = matmul(inputs**2,
    kernel_stddev**2)`, `zeta ~ N(0, 1)` of the output's shape and `eps0` a tiny
    constant (1e-12; `delta` is float32) keeping the square root's derivative
    finite.

    Cost and variance: two matmuls but only `batch x output` Gaussian draws per
    call, the cheapest estimator in random numbers. Sampling the pre-activations
    of each example independently gives gradient variance falling as 1/batch
    size, typically below flipout's.

    The bias is a point estimate, added after the estimator. Works like
    `keras.layers.Dense` otherwise: same arguments, names and defaults.

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
    model = keras.Sequential([
        keras.Input((784,)),
        ks.layers.DenseLocalReparameterization(256, activation="relu", kl_weight=1 / num_train),
        ks.layers.DenseLocalReparameterization(10, kl_weight=1 / num_train),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=5)
    probs = ks.predict_mc(model, x_test, num_samples=20, from_logits=True)
    ```

    References:
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick.
    """

    estimator = "local_reparameterization"
