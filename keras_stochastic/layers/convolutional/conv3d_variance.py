"""`Conv3DVariance`: Conv3D with a zero-mean kernel (a variance layer)."""

import keras

from keras_stochastic.layers.base_variance import VarianceConv


@keras.saving.register_keras_serializable(package="keras_stochastic")
class Conv3DVariance(VarianceConv):
    """Conv3D layer whose kernel has zero mean and a learned variance (a variance layer).

    Each weight is `w = scale * eps` with zero-mean noise `eps`; the layer
    learns only the (signed) `scale`, so all the information it passes on is
    carried by the *variance* of its outputs (Neklyudov et al., 2019). With
    the default Gaussian weights and local reparameterization:

    ```
    outputs = activation(sqrt(conv(inputs**2, kernel_stddev**2) + eps0) * zeta + bias)
    ```

    with `zeta ~ N(0, 1)` of the output's shape, `kernel_stddev = |scale|`
    and `eps0` a tiny constant (1e-12; `delta` is float32) keeping the square
    root's derivative finite. With `distribution="bernoulli"` (`w = +-scale`)
    or `"uniform"` (`w = scale * u`, `u ~ U(-1, 1)`) the default estimator is
    flipout:

    ```
    outputs = activation(conv(inputs * S, scale * eps) * R + bias)
    ```

    with one `eps` per call and Rademacher signs `S`, `R` per example and
    channel, shared over spatial positions. Whatever the distribution, each
    output has mean `bias` (before the activation) and variance
    `conv(inputs**2, kernel_stddev**2)`, where `kernel_stddev**2` is
    `scale**2` (Gaussian, Bernoulli) or `scale**2 / 3` (uniform); the local
    reparameterization draws every output position independently, ignoring
    the correlation that one shared kernel induces between the positions of
    a feature map (as all convolutional LRT implementations do).

    Cost and variance: local reparameterization (Gaussian only) costs one
    convolution of the squared inputs and one Gaussian draw per output value,
    and samples each example independently (gradient variance falls as 1 /
    batch size). Flipout costs one kernel-sized draw, `batch * (in + out)`
    signs and one convolution, and decorrelates the examples of a batch as
    well. `estimator="reparameterization"` shares one kernel sample across
    the batch: cheapest, but its gradient variance does not fall with the
    batch size. Local reparameterization is refused for the non-Gaussian
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
    `keras.layers.Conv3D` otherwise: same arguments, names and defaults.

    Args:
        filters: int, the dimension of the output space (the number of filters
            in the convolution).
        kernel_size: int or tuple/list of 3 integer(s), specifying the size of
            the convolution window.
        strides: int or tuple/list of 3 integer(s), specifying the stride
            length of the convolution. `strides > 1` is incompatible with
            `dilation_rate > 1`.
        padding: string, either `"valid"` or `"same"` (case-insensitive).
            `"valid"` means no padding. `"same"` results in padding evenly to
            the left/right or up/down of the input such that output has the
            same height/width dimension as the input.
        data_format: string, either `"channels_last"` or `"channels_first"`.
            The ordering of the dimensions in the inputs. Defaults to the
            `image_data_format` value of your Keras config (`"channels_last"`
            if you never set it).
        dilation_rate: int or tuple/list of 3 integer(s), specifying the
            dilation rate to use for dilated convolution.
        groups: A positive int specifying the number of groups in which the
            input is split along the channel axis. Each group is convolved
            separately with `filters // groups` filters. Input channels and
            `filters` must both be divisible by `groups`.
        activation: Activation function. If `None`, no activation is applied.
        use_bias: bool, if `True`, bias will be added to the output.
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
        estimator: `"local_reparameterization"`, `"flipout"` or
            `"reparameterization"`; `None` (default) picks
            `"local_reparameterization"` for Gaussian weights and `"flipout"`
            for the others. `"local_reparameterization"` is Gaussian-only.
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
        - If `data_format="channels_last"`:
            A 5D tensor with shape: `(batch_size, spatial_dim1, spatial_dim2, spatial_dim3, channels)`
        - If `data_format="channels_first"`:
            A 5D tensor with shape: `(batch_size, channels, spatial_dim1, spatial_dim2, spatial_dim3)`

    Output shape:
        - If `data_format="channels_last"`:
            A 5D tensor with shape: `(batch_size, new_spatial_dim1, new_spatial_dim2, new_spatial_dim3, filters)`
        - If `data_format="channels_first"`:
            A 5D tensor with shape: `(batch_size, filters, new_spatial_dim1, new_spatial_dim2, new_spatial_dim3)`

    Example:

    ```python
    model = keras.Sequential([
        keras.Input((16, 16, 16, 1)),
        keras.layers.Conv3D(8, 3, activation="relu"),
        ks.layers.Conv3DVariance(16, 3, activation="relu", use_bias=False),
        keras.layers.MaxPooling3D(),
        keras.layers.Flatten(),
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

    rank = 3
