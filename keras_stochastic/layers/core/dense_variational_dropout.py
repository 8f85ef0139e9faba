"""`DenseVariationalDropout`: Dense with a Gaussian-dropout kernel (sparse variational dropout)."""

import keras

from keras_stochastic.layers.base_variational_dropout import VariationalDropoutDense


@keras.saving.register_keras_serializable(package="keras_stochastic")
class DenseVariationalDropout(VariationalDropoutDense):
    """Dense layer with sparse variational dropout on its kernel.

    The kernel posterior is Gaussian dropout, `q(w) = N(theta, alpha theta^2)`,
    against a log-uniform prior (Molchanov et al., 2017). Training drives
    `alpha` of irrelevant weights to infinity; `"mean"` inference then uses

    ```
    outputs = activation(matmul(inputs, theta * [log_alpha < threshold]) + bias)
    ```

    so that weights with `log_alpha >= threshold` are exactly zero (pruned).
    During training, with the default local reparameterization estimator,

    ```
    outputs = activation(gamma + sqrt(delta + eps0) * zeta + bias)
    ```

    with `gamma = matmul(inputs, theta)`, `delta = matmul(inputs**2, alpha
    theta**2)`, `zeta ~ N(0, 1)` of the output's shape and `eps0` a tiny
    constant (1e-12; `delta` is float32) keeping the square root's derivative
    finite. The layer adds `kl_weight * KL(q || p)` to its losses.

    Cost and variance: the local reparameterization estimator costs two
    matmuls and only `batch x units` Gaussian draws per call, plus the
    elementwise `log alpha`, variance and KL over the kernel; the examples of
    a batch get independent noise, so gradient variance falls as 1/batch
    size. `"flipout"` draws one kernel-sized perturbation and sign flips per
    call (decorrelated examples, higher cost); `"reparameterization"` shares
    one kernel sample across the batch (cheapest per draw, but its gradient
    variance does not fall with the batch size).

    `log alpha` is clipped to [-8, 8] (to [-8, 0] with
    `kl_approximation="kingma"`); the clipped value is used for the KL and
    the mask. The training noise has variance `alpha theta^2` with the
    clipped `alpha`, except in the default `"additive"` parameterization,
    whose noise variance is the learned `sigma^2` itself (Molchanov et al.'s
    additive reparameterization). The bias is a point estimate.

    Works like `keras.layers.Dense` otherwise: same arguments, names and
    defaults.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. If you don't specify anything,
            no activation is applied (ie. "linear" activation: `a(x) = x`).
        use_bias: Boolean, whether the layer uses a bias vector.
        kernel_initializer: Initializer for the kernel mean `theta`.
        bias_initializer: Initializer for the bias vector.
        kernel_regularizer: Regularizer applied to `theta`.
        bias_regularizer: Regularizer applied to the bias vector.
        activity_regularizer: Regularizer applied to the output of the layer.
        kernel_constraint: Constraint applied to `theta`.
        bias_constraint: Constraint applied to the bias vector.
        parameterization: How `alpha` is learned. `"additive"` (default;
            Molchanov et al.): a free `log sigma^2` per weight, with
            `log_alpha = log sigma^2 - log(theta^2 + 1e-8)`, which keeps the
            gradient of `theta` low-variance as `alpha` grows; `"weight"`: a
            free `log_alpha` per weight; `"neuron"`: one `log_alpha` per output
            unit; `"layer"`: one `log_alpha` for the whole kernel (Neklyudov et
            al., 2019). Only per-weight `alpha` (`"additive"`, `"weight"`)
            prunes individual weights; `"neuron"` prunes whole units.
        kl_approximation: The KL to the log-uniform prior
            (see `ks.kl.log_uniform_kl`): `"molchanov"` (default; within 0.01
            nats of the exact value), `"kingma"` (valid for `alpha <= 1`
            only, so `log_alpha` is clipped to at most 0 and nothing is ever
            pruned at the default threshold: Kingma et al.'s variational
            dropout), or `"monte_carlo"` (unbiased one-sample estimate, one
            draw per weight and call).
        prior: `"log_uniform"` (default), `"student_t"` (Student-t with
            `df = 1e-16`, a proper prior that is log-uniform for `|w| >>
            1e-8`; one-sample Monte Carlo KL, one kernel-sized draw per call,
            offset so that it matches the log-uniform KL's convention) or
            `"ard"` (a zero-mean Gaussian prior with its variance per weight
            optimized, `KL = 0.5 log(1 + 1/alpha)`; Neklyudov et al., 2019).
            `kl_approximation` applies to `"log_uniform"` only.
        estimator: `"local_reparameterization"` (default), `"flipout"`,
            `"reparameterization"`, or `"per_example"` (a weight sample per
            example: Kingma et al.'s slow baseline, `batch x in x units`
            draws and memory per call, for measurements); see "Cost and
            variance" above.
        threshold: Float in [-8, 8] (default 3.0, i.e. `alpha` about 20, a
            dropout rate of 0.95): `"mean"` inference zeroes weights with
            `log_alpha >= threshold`, as the reference implementations do.
        log_variance_initializer: Initializer of the noise variable, or a
            float for a constant: `log sigma^2` for `"additive"` (default
            -10.0, as Molchanov et al.), `log alpha` for the other
            parameterizations (default -5.0, as Neklyudov et al.).
        kl_weight: Non-negative float, or `None` (the default: 1.0, with a
            warning when the layer trains, because 1.0 is almost never the
            right value). The layer adds
            `kl_weight * KL(q || p)` (a float32 sum over the kernel's weights;
            a shared `log_alpha` counts once per weight it covers) with
            `add_loss` on every call. `fit` adds layer losses to the
            *batch-mean* data loss, so the value that makes the loss the
            negative ELBO per example is `kl_weight = 1 / num_train_examples`.
            Change it later with `ks.set_kl_weight` or
            `ks.callbacks.KLAnnealing` (a warm-up from 0 helps sparse VD); the
            change reaches already compiled train steps.
        inference: `"mean"` (default) or `"sample"`: what the layer does when
            `training` is false: use the masked kernel mean `theta *
            [log_alpha < threshold]` (deterministic, sparse), or sample with
            the estimator. Training always samples. Switch it with
            `ks.set_inference`, even after `predict` was compiled;
            `ks.predict_mc` always samples.
        seed: Integer or None. Every random draw of the layer comes from a
            `keras.random.SeedGenerator(seed)`; equal seeds give equal outputs.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Attributes:
        kernel_mean: The trainable kernel mean `theta` (a variable).
        log_alpha: The clipped `log alpha` (float32 tensor): the kernel's shape
            for `"additive"` and `"weight"`, `(units,)` for `"neuron"`, `()`
            for `"layer"`.

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
    num_train = len(x_train)
    model = keras.Sequential([
        keras.Input((784,)),
        ks.layers.DenseVariationalDropout(300, activation="relu", kl_weight=1 / num_train),
        ks.layers.DenseVariationalDropout(100, activation="relu", kl_weight=1 / num_train),
        ks.layers.DenseVariationalDropout(10, kl_weight=1 / num_train),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=100, callbacks=[ks.callbacks.KLAnnealing(10)])
    print(ks.sparsity(model))  # fraction of weights with log_alpha >= 3
    ```

    References:
        - [Molchanov et al., 2017](https://arxiv.org/abs/1701.05369), Variational
          Dropout Sparsifies Deep Neural Networks.
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick.
        - [Neklyudov et al., 2019](https://arxiv.org/abs/1803.03764), Variance
          Networks: When Expectation Does Not Meet Your Expectations.
        - [Kharitonov et al., 2018](https://arxiv.org/abs/1811.00596),
          Variational Dropout via Empirical Bayes (the ARD KL).
    """
