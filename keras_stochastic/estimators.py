"""Gradient estimators: how weight noise reaches a layer's activations.

An estimator is an object with three phases, shared by dense, convolution and
recurrent layers:

1. `draw(weights, inputs, seeds, channel_axis, out_channels)`: the random
   part, taken once per call (dense, conv) or once per sequence (recurrent
   cells, which reuse it at every time step): a `Draw` holding the mean
   kernel and the estimator's perturbation (flipout: `Delta W` and the sign
   vectors; reparameterization: `Delta W`; local reparameterization: the
   weight variances and a seed for the pre-activation noise).
2. `project(linear, inputs, draw)`: the layer's linear operator applied under
   the draw, a `Projection` (the value, and the pre-activation variance for
   local reparameterization). `linear(inputs, kernel)` is a matmul for dense
   layers, a convolution for conv layers, a gate projection in a recurrent
   cell. Projections add (a cell's input and recurrent projections) and scale
   (a GRU's reset gate) before they are sampled.
3. `sample(projection, noise)`: the pre-activations; only local
   reparameterization adds noise here, drawn by `pre_activation_noise`.

Before a call that will sample, layers also call `check_inputs(inputs,
channel_axis, out_channels)`, which raises when the estimator cannot sample
that call (the per-example estimator's memory limit).

`weights` is a per-call view of the posterior (see
`keras_stochastic.posteriors`): `mean` (or `None` for zero-mean posteriors),
`noise(seed, sample_shape=())` (a draw of `w - mean`, symmetric about zero
and independent across weights; `sample_shape` prepends axes of independent
draws), `variance` (float32) and `inference_kernel`.

None of them adds the bias: layers add it after the estimator, outside any
sign flips. A new estimator is one subclass of `Estimator` here, listed in
`ESTIMATORS`; nothing outside this module dispatches on estimator names.
Layer families accept the estimators listed for them here
(`DENSE_ESTIMATORS`, `CONV_ESTIMATORS`), through `get(name, allowed)`.
"""

import collections

import keras
from keras import ops

from keras_stochastic import _validation
from keras_stochastic import rng

_DRAW_FIELDS = ("mean", "noise", "sign_in", "sign_out", "variance", "seed")


class Draw(collections.namedtuple("Draw", _DRAW_FIELDS, defaults=(None,) * 5)):
    """One draw of a kernel's perturbation (fields the estimator does not use are None).

    - `mean`: the mean kernel in the compute dtype, or None (zero-mean);
    - `noise`: `Delta W` (flipout, reparameterization);
    - `sign_in`, `sign_out`: flipout's Rademacher signs, shaped to broadcast
      against the inputs and the outputs, or `GroupedSigns` (one row of
      signs per group of examples);
    - `variance`: the weight variances, float32 (local reparameterization);
    - `seed`: a seed value for the pre-activation noise (local
      reparameterization).
    """

    def columns(self, start, stop=None):
        """The draw of the kernel's output columns `start:stop` (a gate block)."""
        return self._replace(
            **{
                name: columns(getattr(self, name), start, stop)
                for name in ("mean", "noise", "sign_out", "variance")
            }
        )


def columns(value, start, stop=None):
    """Columns `start:stop` of the last axis of a tensor, or None."""
    if value is None or (start == 0 and stop is None):
        return value
    return value[..., start:stop]


class Projection(collections.namedtuple("Projection", ["value", "variance"])):
    """A linear map's output under a draw.

    `value` is the output; `variance` the variance of its Gaussian noise
    (float32, local reparameterization) or None. Projections add (summing
    both) and scale before `Estimator.sample` turns them into pre-activations.
    """

    def __new__(cls, value, variance=None):
        return super().__new__(cls, value, variance)

    def columns(self, start, stop=None):
        """The projection's output columns `start:stop`."""
        return Projection(
            columns(self.value, start, stop), columns(self.variance, start, stop)
        )

    def __add__(self, other):
        return Projection(self.value + other.value, _add(self.variance, other.variance))

    def plus_bias(self, bias):
        return self if bias is None else Projection(self.value + bias, self.variance)

    def scaled(self, scale):
        """`scale * self` for a tensor `scale` (the variance scales by `scale^2`)."""
        value = scale * self.value
        variance = None
        if self.variance is not None:
            variance = ops.square(ops.cast(scale, "float32")) * self.variance
        return Projection(value, variance)


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def flipout_signs(inputs, channel_axis, out_channels, seed):
    """Rademacher signs per example and channel, shared over other axes.

    Returns `(sign_in, sign_out)` shaped to broadcast against the inputs and
    the outputs: `(B, 1, ..., C_in)` and `(B, 1, ..., C_out)` for
    channels-last layouts, `(B, C_in, 1, ...)` and `(B, C_out, 1, ...)` for
    channels-first ones.
    """
    batch = ops.shape(inputs)[0]
    rank = len(inputs.shape)
    in_channels = inputs.shape[channel_axis]
    signs = rng.rademacher((batch, in_channels + out_channels), seed, inputs.dtype)

    def expand(sign, channels):
        ones = [1] * (rank - 2)
        if channel_axis in (-1, rank - 1):
            return ops.reshape(sign, [batch] + ones + [channels])
        return ops.reshape(sign, [batch, channels] + ones)

    return (
        expand(signs[:, :in_channels], in_channels),
        expand(signs[:, in_channels:], out_channels),
    )


class GroupedSigns(collections.namedtuple("GroupedSigns", ["signs", "channel_axis"])):
    """Signs shared by groups of consecutive examples, used in a `Draw`'s sign fields.

    `signs` is `(G, C)`: in a batch of `G * n` rows, row `i` is flipped by
    `signs[i // n]` along `channel_axis`. `ks.evolution.FlipoutES` evaluates
    a population this way: member `p`'s rows form group `p`, so the flipout
    pass below serves a whole population without repeating its signs per row.
    """

    def flip(self, values):
        return per_group(ops.multiply, values, self.signs, self.channel_axis)


def per_group(op, values, group_values, channel_axis=-1):
    """`op(values, g)` with row `i` of `values` (`G * n` rows) meeting `group_values[i // n]`.

    `group_values` is `(G, C)`, broadcast along `channel_axis` of `values`
    and over its other non-batch axes; nothing is repeated per row (the rows
    are viewed as `(G, n, ...)`).
    """
    groups, channels = group_values.shape
    rank = len(values.shape)
    rest = list(ops.shape(values)[1:])
    shape = [groups, 1] + [1] * (rank - 1)
    shape[channel_axis % rank + 1] = channels
    grouped = ops.reshape(values, [groups, -1] + rest)
    result = op(grouped, ops.reshape(ops.cast(group_values, values.dtype), shape))
    return ops.reshape(result, [-1] + rest)


def flip(values, sign):
    """`values` times flipout signs: a tensor that broadcasts, or `GroupedSigns`."""
    if isinstance(sign, GroupedSigns):
        return sign.flip(values)
    return values * sign


class Estimator:
    """Base class: `__call__` runs the three phases for a layer call.

    Subclasses set `name` and `num_seeds` (how many seeds `draw` consumes:
    layers predraw that many for draws inside `ops.cond` branches) and
    implement `draw` and `project`; `sample` and `pre_activation_noise`
    default to adding no noise. `apply` (project and sample) serves layers
    that drew already; `__call__` runs all three phases.
    """

    name = None
    num_seeds = 1
    # Whether the estimator is exact only for weights with Gaussian marginals.
    requires_gaussian_weights = False
    # Whether `project` hands the linear operator a batch of kernels, one per
    # example: a matmul broadcasts over it, a convolution cannot.
    batched_kernels = False

    def check_inputs(self, inputs, channel_axis=-1, out_channels=None):
        """Raises when a sampling call on `inputs` is not possible (default: never).

        Layers call it, at trace time, before calls that will sample
        (training, or inference in `"sample"` mode).
        """

    def draw(self, weights, inputs, seeds, channel_axis=-1, out_channels=None):
        raise NotImplementedError

    def project(self, linear, inputs, draw):
        raise NotImplementedError

    def pre_activation_noise(self, shape, draw, key=None):
        """The noise `sample` needs for pre-activations of `shape`, or None.

        `key` (an int32 scalar tensor) selects a stream of the draw's seed for
        callers that need fresh noise at every time step.
        """
        return None

    def sample(self, projection, noise=None):
        return projection.value

    def apply(self, linear, inputs, draw):
        """Projects and samples: the outputs of `linear` under `draw`."""
        projection = self.project(linear, inputs, draw)
        shape = None if projection.variance is None else ops.shape(projection.variance)
        return self.sample(projection, self.pre_activation_noise(shape, draw))

    def __call__(
        self, linear, inputs, weights, seeds, channel_axis=-1, out_channels=None
    ):
        """All three phases: draws from `weights` and applies the draw."""
        draw = self.draw(weights, inputs, seeds, channel_axis, out_channels)
        return self.apply(linear, inputs, draw)

    def __repr__(self):
        return f"{type(self).__name__}()"


class Mean(Estimator):
    """No noise: `y = x K` with the posterior's inference kernel (mean-mode inference)."""

    name = "mean"
    num_seeds = 0

    def draw(
        self, weights, inputs=None, seeds=None, channel_axis=-1, out_channels=None
    ):
        return Draw(mean=weights.inference_kernel)

    def project(self, linear, inputs, draw):
        return Projection(linear(inputs, draw.mean))


class Reparameterization(Estimator):
    """`y = x W` with one `W = M + Delta W` shared by the whole batch."""

    name = "reparameterization"

    def draw(self, weights, inputs, seeds, channel_axis=-1, out_channels=None):
        return Draw(mean=weights.mean, noise=weights.noise(seeds[0]))

    def project(self, linear, inputs, draw):
        kernel = draw.noise if draw.mean is None else draw.mean + draw.noise
        return Projection(linear(inputs, kernel))


class Flipout(Estimator):
    """`y = x M + ((x * S) Delta W) * R` (Wen et al., 2018).

    One `Delta W` per draw; each example sees it with its own random sign
    flips `S` (inputs) and `R` (outputs), which decorrelates the examples of
    a batch at the price of a second linear operation.
    """

    name = "flipout"
    num_seeds = 2

    def draw(self, weights, inputs, seeds, channel_axis=-1, out_channels=None):
        noise = weights.noise(seeds[0])
        sign_in, sign_out = flipout_signs(inputs, channel_axis, out_channels, seeds[1])
        return Draw(mean=weights.mean, noise=noise, sign_in=sign_in, sign_out=sign_out)

    def project(self, linear, inputs, draw):
        value = flip(linear(flip(inputs, draw.sign_in), draw.noise), draw.sign_out)
        if draw.mean is not None:
            value = linear(inputs, draw.mean) + value
        return Projection(value)


# Added under the square root of the LRT variance. A zero variance only occurs
# for an all-zero input patch, whose gradient through `x^2` is zero, so it only
# has to keep the square root's derivative finite (the variance is float32).
LRT_EPSILON = 1e-12


class LocalReparameterization(Estimator):
    """`y = x M + sqrt(x^2 sigma^2 + eps0) * zeta` (Kingma et al., 2015).

    Samples the pre-activations directly: `zeta ~ N(0, 1)` has the output's
    shape, so only `B x out` numbers are drawn per call. The variance
    `x^2 sigma^2`, its matmul and the square root are computed in float32
    whatever the compute dtype: under mixed precision, float16 would round
    small variances to zero and overflow `x^2` for |x| > 256.
    """

    name = "local_reparameterization"
    requires_gaussian_weights = True

    def draw(self, weights, inputs, seeds, channel_axis=-1, out_channels=None):
        # A seed value, not a generator: recurrent cells keep the draw for a
        # whole sequence, and a layer would track a generator attribute.
        return Draw(mean=weights.mean, variance=weights.variance, seed=seeds[0].next())

    def project(self, linear, inputs, draw):
        variance = linear(ops.square(ops.cast(inputs, "float32")), draw.variance)
        if draw.mean is None:
            # Zero mean: the value only carries the dtype of the outputs.
            return Projection(ops.zeros_like(variance, dtype=inputs.dtype), variance)
        return Projection(linear(inputs, draw.mean), variance)

    def pre_activation_noise(self, shape, draw, key=None):
        seed = rng.PredrawnSeed(draw.seed)
        if key is not None:
            seed = rng.fold_in(seed, key)
        return rng.normal(shape, seed, "float32")

    def sample(self, projection, noise=None):
        if projection.variance is None:
            return projection.value
        perturbation = ops.sqrt(projection.variance + LRT_EPSILON) * noise
        return projection.value + ops.cast(perturbation, projection.value.dtype)


# Largest per-example draw, in weights: batch size times kernel size. The
# draw, the sampled kernels and their gradient each hold this many numbers
# (4 bytes each in float32: 512 MiB), which bounds a layer's memory to a few
# GiB; beyond it the layer raises instead of failing to allocate.
PER_EXAMPLE_MAX_ELEMENTS = 2**27


def _per_example_size_message(received):
    return (
        "The 'per_example' estimator draws one kernel per example, batch size "
        "x kernel size weights per call, and allows at most "
        f"PER_EXAMPLE_MAX_ELEMENTS = {PER_EXAMPLE_MAX_ELEMENTS} "
        "(keras_stochastic.estimators). Use a smaller batch, or an estimator "
        "whose memory does not grow with the batch ('local_reparameterization' "
        f"or 'flipout'). Received: {received}"
    )


class PerExample(Estimator):
    """`y_n = x_n W_n`, an independent `W_n = M + Delta W_n` for every example.

    Kingma et al.'s (2015) "weight sample per data point": the plain
    reparameterization estimator made exact for minibatches, each example
    with its own weight sample, so no two examples share noise. A baseline
    for measurements, not for training: it draws `batch x in x out` numbers
    per call and does a batched vector-matrix product instead of one matmul,
    so time and memory grow as `O(batch * in * out)` (checked against
    `PER_EXAMPLE_MAX_ELEMENTS`). Valid for any posterior (it samples the
    weights themselves); only for operators that broadcast over a batch of
    kernels (dense layers: a matmul). An input with middle axes,
    `(batch, ..., in)`, uses one sample per example for all its rows.
    """

    name = "per_example"
    batched_kernels = True

    def check_inputs(self, inputs, channel_axis=-1, out_channels=None):
        batch = inputs.shape[0]
        if not isinstance(batch, int):
            batch = 1  # unknown until run time: one example must fit
        kernel_size = inputs.shape[channel_axis] * out_channels
        if batch * kernel_size > PER_EXAMPLE_MAX_ELEMENTS:
            raise ValueError(
                _per_example_size_message(
                    f"batch size {batch} x kernel size {kernel_size} = "
                    f"{batch * kernel_size}"
                )
            )

    def draw(self, weights, inputs, seeds, channel_axis=-1, out_channels=None):
        batch = ops.shape(inputs)[0]
        if not isinstance(batch, int):
            _check_size_at_run_time(batch, inputs.shape[channel_axis] * out_channels)
        noise = weights.noise(seeds[0], sample_shape=(batch,))
        return Draw(mean=weights.mean, noise=noise)

    def project(self, linear, inputs, draw):
        kernels = draw.noise if draw.mean is None else draw.mean + draw.noise
        shape = ops.shape(inputs)
        # (batch, rows, in) against (batch, in, out): one kernel per example.
        rows = ops.reshape(inputs, (shape[0], -1, shape[-1]))
        value = linear(rows, kernels)
        return Projection(ops.reshape(value, tuple(shape[:-1]) + (kernels.shape[-1],)))


def _check_size_at_run_time(batch, kernel_size):
    """`PerExample.check_inputs` for a batch size known only when the graph runs.

    TensorFlow traces `fit` with an unknown batch size; other backends trace
    with static shapes, checked at trace time.
    """
    if keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    requested = tf.cast(batch, "int64") * kernel_size
    tf.debugging.assert_less_equal(
        requested,
        tf.constant(PER_EXAMPLE_MAX_ELEMENTS, "int64"),
        message=_per_example_size_message(
            f"batch size x kernel size {kernel_size} = x below"
        ),
    )


ESTIMATORS = {
    estimator.name: estimator
    for estimator in (
        Reparameterization(),
        Flipout(),
        LocalReparameterization(),
        PerExample(),
    )
}
MEAN = Mean()
# What each layer family accepts. A convolution cannot apply a batch of
# kernels (and convolution libraries have no per-example filters), so the
# per-example estimator is for dense layers only.
DENSE_ESTIMATORS = tuple(ESTIMATORS)
CONV_ESTIMATORS = tuple(
    name for name, estimator in ESTIMATORS.items() if not estimator.batched_kernels
)


def get(name, allowed=tuple(ESTIMATORS)):
    """The estimator object named `name`, which must be one of `allowed`."""
    return ESTIMATORS[_validation.choice("estimator", name, allowed)]
