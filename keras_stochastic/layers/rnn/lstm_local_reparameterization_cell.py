"""`LSTMLocalReparameterizationCell`."""

import keras

from keras_stochastic.layers.rnn.base_lstm import BaseLSTMCell


@keras.saving.register_keras_serializable(package="keras_stochastic")
class LSTMLocalReparameterizationCell(BaseLSTMCell):
    """Cell of `LSTMLocalReparameterization`: Gaussian kernels, local reparameterization.

    Processes one step of a sequence inside `keras.layers.RNN`; at step `t`
    (inputs `x_t`, previous output `h_{t-1}`):

    ```
    mu_t  = matmul(x_t, kernel_mean) + matmul(h_{t-1}, recurrent_kernel_mean) + bias
    var_t = matmul(x_t ** 2, kernel_stddev ** 2)
          + matmul(h_{t-1} ** 2, recurrent_kernel_stddev ** 2)
    z_t   = mu_t + sqrt(var_t + eps0) * zeta_t
    z_i, z_f, z_c, z_o = split(z_t, 4)
    c_t = recurrent_activation(z_f) * c_{t-1}
        + recurrent_activation(z_i) * activation(z_c)
    h_t = recurrent_activation(z_o) * activation(c_t)
    ```

    with `eps0` a small constant and a FRESH `zeta_t ~ N(0, 1)` of shape
    `(batch_size, gates * units)` at EVERY time step: each step's
    pre-activations follow their marginal under weights resampled for every
    example and every step (the weights are not held fixed along a sequence, as
    they are with flipout). A cell does not know the step index, so step `t`
    draws `zeta_t` from a counter-based stream keyed by a seed drawn once per
    call (before the loop) folded with a digest of the bits of `h_{t-1}`: fresh
    at every step (the noise changes the state), reproducible for a given seed,
    and without a stateful draw inside the loop (which JAX forbids). Two steps
    whose whole batch of previous states is bit-identical (all zero, say) would
    share their noise. The KL term is added once per call,
    whatever the sequence length.

    The per-sequence draws happen in the hooks `keras.layers.RNN` calls
    before its loop (`get_dropout_mask`, `get_recurrent_dropout_mask`,
    where Keras draws its dropout masks); the reset hooks after the loop
    clear them. A cell called directly (outside an RNN layer) draws on its
    first call and reuses that draw until `reset_dropout_mask()` and
    `reset_recurrent_dropout_mask()` are called.

    Cost and variance: no weight-sized draw; at every step one extra pair of
    matmuls (`x ** 2` and `h ** 2` by the variances) and `batch * gates * units`
    normal draws. The pre-activation noise is independent across examples, so
    the gradient variance falls as 1/batch size; but the noise is also
    independent across steps, which is a different (per-step) model of the
    weights than flipout's per-sequence sample. The measured train-step cost against the Keras twin is in
    `benchmarks/RESULTS.md` ("Recurrent layers"): dearer than
    flipout, whose per-step work is matmuls only.

    Works like `keras.layers.LSTMCell` otherwise: same arguments, names and
    defaults, and in mean inference it computes exactly what
    `keras.layers.LSTMCell` computes with the posterior means as weights.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function to use. Default: hyperbolic tangent
            (`tanh`). If you pass None, no activation is applied
            (ie. "linear" activation: `a(x) = x`).
        recurrent_activation: Activation function to use for the recurrent
            step. Default: sigmoid (`sigmoid`). If you pass `None`, no
            activation is applied (ie. "linear" activation: `a(x) = x`).
        use_bias: Boolean, (default `True`), whether the layer should use a
            bias vector (a point estimate, added after the estimator).
        kernel_initializer: Initializer for the posterior mean of the
            `kernel` weights matrix, used for the linear transformation of
            the inputs. Default: `"glorot_uniform"`.
        recurrent_initializer: Initializer for the posterior mean of the
            `recurrent_kernel` weights matrix, used for the linear
            transformation of the recurrent state. Default: `"orthogonal"`.
        bias_initializer: Initializer for the bias vector. Default: `"zeros"`.
        unit_forget_bias: Boolean (default `True`). If `True`, add 1 to the
            bias of the forget gate at initialization. Setting it to `True`
            will also force `bias_initializer="zeros"` for the other gates.
            This is recommended in [Jozefowicz et al.](
            https://github.com/mlresearch/v37/blob/gh-pages/jozefowicz15.pdf)
        kernel_regularizer: Regularizer function applied to the posterior
            mean of the `kernel`. Default: `None`.
        recurrent_regularizer: Regularizer function applied to the posterior
            mean of the `recurrent_kernel`. Default: `None`.
        bias_regularizer: Regularizer function applied to the bias vector.
            Default: `None`.
        kernel_constraint: Constraint function applied to the posterior mean
            of the `kernel`. Default: `None`.
        recurrent_constraint: Constraint function applied to the posterior
            mean of the `recurrent_kernel`. Default: `None`.
        bias_constraint: Constraint function applied to the bias vector.
            Default: `None`.
        dropout: Float between 0 and 1. Fraction of the units to drop for
            the linear transformation of the inputs (one mask per sequence,
            as in Keras). Default: 0.
        recurrent_dropout: Float between 0 and 1. Fraction of the units to
            drop for the linear transformation of the recurrent state (one
            mask per sequence). Default: 0.
        kernel_stddev_initializer: Initializer for the posterior standard
            deviation of the `kernel`, or a positive float for a constant
            value (default 0.01). Its values must be positive; they are
            stored as `rho` with `stddev = softplus(rho) + 1e-7`.
        recurrent_kernel_stddev_initializer: The same for the
            `recurrent_kernel`; `None` (default) uses
            `kernel_stddev_initializer`. Must be `None` when
            `stochastic_recurrent_kernel=False`.
        stochastic_recurrent_kernel: Boolean (default `True`). If `False`,
            the `recurrent_kernel` is a deterministic point estimate (a
            plain weight named `recurrent_kernel`, no KL term): only the
            input kernel is perturbed, which saves one matmul per step.
        prior: The prior of both kernels: `"normal"` (`ks.priors.Normal(1.0)`,
            analytic KL, the default), `"scale_mixture_normal"`, or a
            `ks.priors.Prior` instance such as `ks.priors.Normal(0.1)` or
            `ks.priors.ScaleMixtureNormal(...)` (Monte Carlo KL).
        kl_weight: Non-negative float, or `None` (the default: 1.0, with a
            warning when the layer trains, because 1.0 is almost never the
            right value). The layer adds
            `kl_weight * KL(q || p)` of each stochastic kernel (a float32 sum
            over its weights) with `add_loss`, once per call. `fit` adds
            layer losses to the *batch-mean* data loss, so the value that
            makes the loss the negative ELBO per example is
            `kl_weight = 1 / num_train_examples`. Change it later with
            `ks.set_kl_weight` or `ks.callbacks.KLAnnealing`; the change
            reaches already compiled train steps.
        inference: `"mean"` (default) or `"sample"`: what the layer does when
            `training` is false: use the posterior mean kernels
            (deterministic, exactly the Keras twin with those weights), or
            sample with the estimator. Training always samples. Switch it
            with `ks.set_inference`, even after `predict` was compiled;
            `ks.predict_mc` always samples.
        seed: Integer or None. Every random draw of the cell (its weight
            noise, signs and dropout masks) comes from a
            `keras.random.SeedGenerator(seed)`; equal seeds give equal
            outputs.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Call arguments:
        inputs: A 2D tensor, with shape `(batch_size, features)`.
        states: The previous state(s): `[h, c]`, two tensors of shape `(batch_size, units)`.
        training: Python boolean. `True` samples with the estimator (and
            applies dropout); `False` (the default) follows `inference`.

    Input shape:
        2D tensor with shape `(batch_size, features)` per step; inside
        `keras.layers.RNN`, 3D `(batch_size, timesteps, features)`.

    Output shape:
        `h_t` of shape `(batch_size, units)`, and the new states, as the
        previous ones.

    Example:

    ```python
    inputs = np.random.random((32, 10, 8)).astype("float32")
    rnn = keras.layers.RNN(
        ks.layers.LSTMLocalReparameterizationCell(4, kl_weight=1 / 32, seed=0),
        return_sequences=True,
        return_state=True,
    )
    outputs, *final_states = rnn(inputs, training=True)
    ```

    References:
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick.
        - [Fortunato et al., 2017](https://arxiv.org/abs/1704.02798),
          Bayesian Recurrent Neural Networks.
    """

    estimator = "local_reparameterization"
