"""`Conv3DLocalReparameterization`: Conv3D with a Gaussian kernel, local reparameterization estimator."""

import keras

from keras_stochastic.layers.convolutional.base_conv import GaussianConv


@keras.saving.register_keras_serializable(package="keras_stochastic")
class Conv3DLocalReparameterization(GaussianConv):
    """Conv3D layer with a Gaussian kernel, trained with the local reparameterization trick.

    ```
    outputs = activation(gamma + sqrt(delta + eps0) * zeta + bias)
    ```

    with `gamma = conv(inputs, kernel_mean)`, `delta = conv(inputs**2,
    kernel_stddev**2)`, `zeta ~ N(0, 1)` of the output's shape and `eps0` a tiny
    constant (1e-12; `delta` is float32) keeping the square root's derivative
    finite.

    Cost and variance: two convolutions but only `batch x output` Gaussian draws
    per call, the cheapest estimator in random numbers. Sampling the
    pre-activations of each example independently gives gradient variance
    falling as 1/batch size, typically below flipout's.

    Note that `delta` treats the kernel as drawn independently at every spatial
    position, which ignores the correlation a single shared kernel induces
    between positions of one feature map (as in Kingma et al. and all known
    convolutional LRT implementations).

    The bias is a point estimate, added after the estimator. Works like
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
        ks.layers.Conv3DLocalReparameterization(16, 3, activation="relu", kl_weight=1 / num_train),
        keras.layers.MaxPooling3D(),
        keras.layers.Flatten(),
        ks.layers.DenseFlipout(10, kl_weight=1 / num_train),
    ])
    ```

    References:
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick.
    """

    rank = 3
    estimator = "local_reparameterization"
