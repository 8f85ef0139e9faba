"""`VariationalGaussianDropout`: Gaussian dropout with a learned rate (variational dropout, type A)."""

import math

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic import kl as kl_lib
from keras_stochastic import priors as priors_lib
from keras_stochastic import rng
from keras_stochastic.layers.base_stochastic import StochasticLayer

PARAMETERIZATIONS = ("layer", "neuron")


class _Interval(keras.constraints.Constraint):
    """Projects a variable onto `[low, high]` after every optimizer step."""

    def __init__(self, low, high):
        self.low = low
        self.high = high

    def __call__(self, w):
        return ops.clip(w, self.low, self.high)

    def get_config(self):
        return {"low": self.low, "high": self.high}


@keras.saving.register_keras_serializable(package="keras_stochastic")
class VariationalGaussianDropout(StochasticLayer):
    """Multiplicative Gaussian noise on the inputs with a learned variance (variational dropout, type A).

    ```
    outputs = inputs * xi,   xi ~ N(1, alpha)
    ```

    with `xi` drawn independently for every element of the inputs, as
    `keras.layers.GaussianDropout(rate)` does with the fixed `alpha = rate /
    (1 - rate)`; here `alpha` is learned. Kingma et al. (2015, section 3.2)
    read this noise as a posterior over the weights of the layer that
    follows: row `i` of its kernel is `s_i * theta_i` with a scale `s_i ~
    q(s_i) = N(1, alpha)` per input feature (correlated weight noise, sampled
    independently for each example), against the scale-invariant log-uniform
    prior, whose KL depends on `alpha` only. The layer adds
    `kl_weight * KL(q(s) || p(s))`, one term per feature of the last axis of
    the inputs, with `add_loss` on every call; maximizing the ELBO then
    learns the dropout rate.

    `alpha` is one number for the layer (`parameterization="layer"`) or one
    per feature of the inputs' last axis (`"neuron"`: per unit of the layer
    before, or per channel of a feature map). `log alpha` lives in
    `[-8, 0]` with `kl_approximation="kingma"` (`alpha <= 1`, a dropout rate
    of at most 0.5, the constraint Kingma et al. train with, which keeps
    `alpha` out of the poor local optima at large values, and the domain of
    their polynomial KL) or `[-8, 8]` otherwise: the variable is projected
    onto that interval after every optimizer step and clipped where it is
    used.

    When `training` is false the layer is the identity in `"mean"` inference
    (the default: the mean of `xi` is 1) and samples in `"sample"` inference
    (Monte Carlo dropout, as `ks.predict_mc` does). Cost: one Gaussian number
    per input element and call, and a KL over `alpha`'s few entries.

    Args:
        parameterization: `"layer"` (default: one `alpha`) or `"neuron"`
            (one `alpha` per feature of the inputs' last axis).
        initial_alpha: Positive float, the initial `alpha` (default 0.25, the
            noise of a dropout rate of 0.2; `alpha = rate / (1 - rate)`, so
            1.0 is a rate of 0.5). At most 1.0 with `kl_approximation=
            "kingma"`, and within `[exp(-8), exp(8)]`.
        kl_approximation: The KL to the log-uniform prior per feature (see
            `ks.kl.log_uniform_kl`): `"kingma"` (default; Kingma et al.'s
            polynomial, valid for `alpha <= 1`, which it constrains `alpha`
            to), `"molchanov"` (Molchanov et al.'s fit, valid for any
            `alpha`, which can then grow to `exp(8)`), or `"monte_carlo"`
            (unbiased one-sample estimate, one draw per feature and call).
        kl_weight: Non-negative float, or `None` (the default: 1.0, with a
            warning when the layer trains, because 1.0 is almost never the
            right value). The layer adds
            `kl_weight * KL(q || p)` (a float32 sum over the features; a
            shared `alpha` counts once per feature) with `add_loss` on every
            call. `fit` adds layer losses to the *batch-mean* data loss, so
            the value that makes the loss the negative ELBO per example is
            `kl_weight = 1 / num_train_examples` (Kingma et al. found a
            third of it slightly better). Change it later with
            `ks.set_kl_weight` or `ks.callbacks.KLAnnealing`; the change
            reaches already compiled train steps.
        inference: `"mean"` (default) or `"sample"`: what the layer does when
            `training` is false: the identity, or multiply by fresh noise.
            Training always samples. Switch it with `ks.set_inference`, even
            after `predict` was compiled; `ks.predict_mc` always samples.
        seed: Integer or None. Every random draw of the layer comes from a
            `keras.random.SeedGenerator(seed)`; equal seeds give equal outputs.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Attributes:
        log_alpha: The clipped `log alpha` (float32 tensor), of shape `()`
            (`"layer"`) or `(features,)` (`"neuron"`).
        alpha: `exp(log_alpha)`.

    Call arguments:
        inputs: Input tensor (of any rank; its last axis must be known).
        training: Python boolean. `True` multiplies by the noise; `False`
            (the default) follows `inference`.

    Input shape:
        Arbitrary. Use the keyword argument `input_shape` (tuple of
        integers, does not include the samples axis) when using this layer
        as the first layer in a model.

    Output shape:
        Same shape as input.

    Example:

    ```python
    num_train = len(x_train)
    model = keras.Sequential([
        keras.Input((784,)),
        ks.layers.VariationalGaussianDropout(kl_weight=1 / num_train),
        keras.layers.Dense(300, activation="relu"),
        ks.layers.VariationalGaussianDropout(initial_alpha=1.0, kl_weight=1 / num_train),
        keras.layers.Dense(10),
    ])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=20)
    print(model.layers[0].alpha)  # the learned noise of the input layer
    ```

    References:
        - [Kingma et al., 2015](https://arxiv.org/abs/1506.02557), Variational
          Dropout and the Local Reparameterization Trick (sections 3.2-3.4).
        - [Srivastava et al., 2014](https://jmlr.org/papers/v15/srivastava14a.html),
          Dropout: A Simple Way to Prevent Neural Networks from Overfitting
          (Gaussian dropout).
    """

    def __init__(
        self,
        parameterization="layer",
        initial_alpha=0.25,
        kl_approximation="kingma",
        kl_weight=None,
        inference="mean",
        seed=None,
        **kwargs,
    ):
        super().__init__(kl_weight=kl_weight, inference=inference, seed=seed, **kwargs)
        self.parameterization = _validation.choice(
            "parameterization", parameterization, PARAMETERIZATIONS
        )
        self.prior = priors_lib.LogUniform(
            _validation.choice(
                "kl_approximation",
                kl_approximation,
                kl_lib.LOG_UNIFORM_APPROXIMATIONS,
            )
        )
        high = self.prior.log_alpha_max
        self.initial_alpha = _validation.real(
            "initial_alpha",
            initial_alpha,
            math.exp(kl_lib.LOG_ALPHA_MIN),
            math.exp(high),
            allowed=(
                f"a float in [exp({kl_lib.LOG_ALPHA_MIN:g}), exp({high:g})] = "
                f"[{math.exp(kl_lib.LOG_ALPHA_MIN):.3g}, {math.exp(high):.4g}] "
                f"with kl_approximation={kl_approximation!r}"
            ),
        )
        self.supports_masking = True

    @property
    def kl_approximation(self):
        return self.prior.approximation

    def build(self, input_shape):
        features = input_shape[-1]
        if features is None:
            raise ValueError(
                "The last axis of the inputs of VariationalGaussianDropout must "
                "be defined: the KL counts one scale variable per feature. "
                f"Received: input_shape={input_shape}"
            )
        self.features = int(features)
        self._log_alpha = self.add_weight(
            name="log_alpha",
            shape=() if self.parameterization == "layer" else (self.features,),
            initializer=keras.initializers.Constant(math.log(self.initial_alpha)),
            # Kingma et al.'s constraint alpha <= 1 ("kingma"), as a projection:
            # a log alpha held at the bound still gets gradients back inside.
            constraint=_Interval(kl_lib.LOG_ALPHA_MIN, self.prior.log_alpha_max),
            autocast=False,
        )
        self._build_stochastic_state()

    @property
    def log_alpha(self):
        """The clipped `log alpha`, float32, of shape `()` or `(features,)`."""
        return ops.clip(
            ops.convert_to_tensor(self._log_alpha),
            kl_lib.LOG_ALPHA_MIN,
            self.prior.log_alpha_max,
        )

    @property
    def alpha(self):
        """The variance of the noise `xi ~ N(1, alpha)`, float32."""
        return ops.exp(self.log_alpha)

    def _kl(self, log_alpha):
        # The scales s ~ N(1, alpha): a dropout posterior with theta = 1, one
        # scale per feature.
        return self.prior.kl(log_alpha, ops.ones((self.features,)), self.seed_generator)

    def call(self, inputs, training=False):
        log_alpha = self.log_alpha
        dtype = self.compute_dtype

        def sample(seed):
            stddev = ops.cast(ops.exp(0.5 * log_alpha), dtype)
            noise = rng.normal(ops.shape(inputs), seed, dtype)
            return inputs + inputs * (stddev * noise)

        if training:
            self._warn_if_default_kl_weight(training)
            outputs = sample(self.seed_generator)
        else:
            (seed,) = rng.predraw(self.seed_generator, 1)
            outputs = self._switch(training, lambda: sample(seed), lambda: inputs)
        self.add_loss(self._kl_weight * self._kl(log_alpha))
        return outputs

    def kl_divergence(self):
        """KL(q(s) || p(s)) of the scales, float32, without the kl_weight."""
        return self._kl(self.log_alpha)

    # No kernel: the noise scales the next layer's kernel rows.
    _has_kernel = False

    def _prunable_variables(self):
        return []

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "parameterization": self.parameterization,
                "initial_alpha": self.initial_alpha,
                "kl_approximation": self.kl_approximation,
            }
        )
        return config
