"""`DenseVariance`: Dense with a zero-mean kernel (a variance layer)."""

import keras

from keras_stochastic import posteriors
from keras_stochastic.layers.base_variance import VarianceKernelMixin
from keras_stochastic.layers.base_variance import resolve_estimator
from keras_stochastic.layers.core.base_dense import BaseStochasticDense


@keras.saving.register_keras_serializable(package="keras_stochastic")
class DenseVariance(VarianceKernelMixin, BaseStochasticDense):
    """Dense layer whose kernel has zero mean and a learned variance (a variance layer).

    Each weight is `w_ij = scale_ij * eps_ij` with zero-mean noise `eps`; the
    layer learns only the (signed) `scale`, so all the information it passes
    on is carried by the *variance* of its outputs (Neklyudov et al., 2019).
    With the default Gaussian weights and local reparameterization:

    ```
    outputs = activation(sqrt(matmul(inputs**2, kernel_stddev**2) + eps0) * zeta + bias)
    ```

    with `zeta ~ N(0, 1)` drawn per example and unit, `kernel_stddev = |scale|`
    and `eps0` a tiny constant (1e-12; `delta` is float32) keeping the square
    root's derivative finite. With `distribution="bernoulli"` (`w = +-scale`)
    or `"uniform"` (`w = scale * u`, `u ~ U(-1, 1)`) the default estimator is
    flipout:

    ```
    outputs = activation(matmul(inputs * S, scale * eps) * R + bias)
    ```

    with one `eps` per call and Rademacher signs `S`, `R` per example and
    channel. Whatever the distribution, each output has mean `bias` (before
    the activation) and variance `matmul(inputs**2, kernel_stddev**2)`, where
    `kernel_stddev**2` is `scale**2` (Gaussian, Bernoulli) or `scale**2 / 3`
    (uniform).

    Cost and variance: local reparameterization (Gaussian only) costs one
    matmul of the squared inputs and `batch x units` Gaussian draws per call,
    and samples each example independently (gradient variance falls as 1 /
    batch size). Flipout costs one weight-sized draw, `batch * (in + out)`
    signs and one matmul, and decorrelates the examples of a batch as well.
    `estimator="reparameterization"` shares one weight sample across the
    batch: cheapest, but its gradient variance does not fall with the batch
    size. Local reparameterization is refused for the non-Gaussian
    distributions, which have no exact one.

    The posterior mean is zero, so `inference="mean"` would output
    `activation(bias)` whatever the input: the default is `"sample"`, and
    asking for `"mean"` (here, through `layer.inference` or
    `ks.set_inference`) warns. Use `ks.predict_mc` for an ensemble.

    KL: the KL divergence from this posterior to the log-uniform prior does
    not depend on the parameters (it is the alpha -> infinity limit of
    variational dropout), so the layer has no KL term: it adds
    `kl_weight * 0` with `add_loss`, and `ks.kl_divergence` counts it as 0.

    The bias is a point estimate. The reference LeNet-5 variance networks
    use no bias in variance layers (`use_bias=False`). Works like
    `keras.layers.Dense` otherwise: same arguments, names and defaults.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. If you don't specify anything,
            no activation is applied (ie. "linear" activation: `a(x) = x`).
        use_bias: Boolean, whether the layer uses a bias vector.
        kernel_initializer: Initializer for the signed kernel scale, the
            layer's only kernel parameter (default `"glorot_uniform"`: each
            weight's variance starts at the squared magnitude of a Keras
            kernel entry, as in the reference code). Its sign is immaterial.
        bias_initializer: Initializer for the bias vector.
        kernel_regularizer: Regularizer applied to the kernel scale.
        bias_regularizer: Regularizer applied to the bias vector.
        activity_regularizer: Regularizer applied to the output of the layer.
        kernel_constraint: Constraint applied to the kernel scale.
        bias_constraint: Constraint applied to the bias vector.
        distribution: `"gaussian"` (default, `eps ~ N(0, 1)`), `"bernoulli"`
            (`eps = +-1` with probability 1/2 each) or `"uniform"`
            (`eps ~ U(-1, 1)`): the law of the noise in `w = scale * eps`.
        estimator: `"local_reparameterization"`, `"flipout"`,
            `"reparameterization"` or `"per_example"` (a weight sample per
            example, a slow baseline: `batch x in x units` draws and memory
            per call); `None` (default) picks `"local_reparameterization"`
            for Gaussian weights and `"flipout"` for the others.
            `"local_reparameterization"` is Gaussian-only.
        kl_weight: Non-negative float or `None` (the default, 1.0; no
            warning, the KL being 0), kept so that every
            keras_stochastic layer takes it. The layer adds
            `kl_weight * KL(q || p)` with `add_loss` on every call, and that KL
            is 0 here (see above), so it has no effect. (For the other layers,
            `fit` adds layer losses to the *batch-mean* data loss, so
            `1 / num_train_examples` is the ELBO value; `ks.set_kl_weight`
            and `ks.callbacks.KLAnnealing` change it.)
        inference: `"sample"` (default) or `"mean"`: what the layer does when
            `training` is false: sample with the estimator, or use the
            posterior mean kernel, which is zero (a warning says so). Training
            always samples. Switch it with `ks.set_inference`, even after
            `predict` was compiled; `ks.predict_mc` always samples.
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
        keras.layers.Dense(256, activation="relu"),
        ks.layers.DenseVariance(256, activation="relu", use_bias=False),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=5)
    probs = ks.predict_mc(model, x_test, num_samples=20, from_logits=True)
    ```

    References:
        - [Neklyudov et al., 2019](https://arxiv.org/abs/1803.03764), Variance
          Networks: When Expectation Does Not Meet Your Expectations.
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick.
        - [Wen et al., 2018](https://arxiv.org/abs/1803.04386), Flipout:
          Efficient Pseudo-Independent Weight Perturbations on Mini-Batches.
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        distribution="gaussian",
        estimator=None,
        kl_weight=None,
        inference="sample",
        seed=None,
        **kwargs,
    ):
        posterior = posteriors.ZeroMeanPosterior(distribution)
        estimator = resolve_estimator(distribution, estimator, self.allowed_estimators)
        super().__init__(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            posterior=posterior,
            kl_weight=kl_weight,
            inference=inference,
            seed=seed,
            **kwargs,
        )
        self._init_variance(estimator)
