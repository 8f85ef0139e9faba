"""Recurrent flipout and LRT: the noise's structure over time and its distribution.

- Flipout draws one perturbation per sequence: with a linear cell, each
  example's outputs are those of one fixed effective kernel pair at every
  step, recovered here by least squares; the pairs differ across examples
  only by sign flips of one shared `Delta W`.
- LRT draws fresh pre-activation noise at every step: recovered exactly with
  a linear cell, it is standard normal and uncorrelated between steps.
- For one step from a given state, both estimators give each example the
  distribution of the cell under weights drawn from the posterior: compared
  with a NumPy Monte Carlo that samples the weights themselves.
"""

import keras
import numpy as np
import pytest
from scipy import special

import keras_stochastic as ks
from tests import testing


def linear_flipout(units, features, recurrent_scale, stddev, seed):
    return dict(
        units=units,
        activation=None,
        use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=seed),
        recurrent_initializer=keras.initializers.Orthogonal(
            gain=recurrent_scale, seed=seed
        ),
        kernel_stddev_initializer=stddev,
        return_sequences=True,
        seed=seed,
    )


def effective_kernels(x, h, features, units):
    """Per example, `(K, R, residual)` with `h_t = x_t K + h_{t-1} R` by least squares."""
    previous = np.concatenate([np.zeros_like(h[:, :1]), h[:, :-1]], axis=1)
    kernels = []
    for n in range(len(x)):
        design = np.concatenate([x[n], previous[n]], axis=1).astype("float64")
        solution, *_ = np.linalg.lstsq(design, h[n].astype("float64"), rcond=None)
        residual = np.abs(design @ solution - h[n]).max()
        kernels.append((solution[:features], solution[features:], residual))
    return kernels


def check_one_perturbation_per_sequence(outputs, x, mean_kernel, mean_recurrent):
    features, units = mean_kernel.shape
    kernels = effective_kernels(x, outputs, features, units)
    # The same effective kernels explain every step of a sequence...
    assert max(k[2] for k in kernels) < 1e-4
    for mean, index in ((mean_kernel, 0), (mean_recurrent, 1)):
        deltas = np.stack([k[index] - mean for k in kernels])
        # ... they are one shared `Delta W` up to per-example sign flips ...
        np.testing.assert_allclose(
            np.abs(deltas), np.abs(deltas[:1]).repeat(len(x), 0), atol=1e-3
        )
        # (stddev 0.2 over 9 weights: an RMS below 0.05 has probability ~1e-5)
        assert np.sqrt(np.mean(np.square(deltas))) > 0.05
        # ... and the signs differ across examples (read where |Delta W| is
        # well above the least-squares error). A 3x3 kernel has 32 sign
        # patterns `s_i r_j` up to a global flip, so 6 examples may share some;
        # at most 2 distinct patterns among 6 has probability ~3e-5.
        signs = np.sign(deltas[:, np.abs(deltas[0]) > 1e-2])
        assert len({tuple(s) for s in signs}) >= 3


@pytest.mark.parametrize("wrapper", ["layer", "rnn_cell"])
def test_flipout_perturbation_is_per_sequence_and_per_example(wrapper):
    units, features, steps = 3, 3, 10
    kwargs = linear_flipout(units, features, recurrent_scale=0.3, stddev=0.2, seed=5)
    if wrapper == "layer":
        layer = ks.layers.SimpleRNNFlipout(**kwargs)
    else:
        loop = {"return_sequences": kwargs.pop("return_sequences")}
        layer = keras.layers.RNN(ks.layers.SimpleRNNFlipoutCell(**kwargs), **loop)
    model = testing.sequential(layer, (steps, features))
    x = np.random.default_rng(0).normal(size=(6, steps, features)).astype("float32")
    cell = layer.cell
    mean_kernel = testing.to_numpy(cell.kernel_mean)
    mean_recurrent = testing.to_numpy(cell.recurrent_kernel_mean)
    eager = testing.to_numpy(layer(x, training=True))
    check_one_perturbation_per_sequence(eager, x, mean_kernel, mean_recurrent)
    # The same inside a compiled predict (a `lax.scan` under `jit` on JAX).
    ks.set_inference(model, "sample")
    compiled = model.predict(x, verbose=0)
    check_one_perturbation_per_sequence(compiled, x, mean_kernel, mean_recurrent)
    assert not np.allclose(compiled, eager, atol=1e-3)


@pytest.mark.parametrize("wrapper", ["layer", "rnn_cell"])
def test_lrt_noise_is_fresh_at_every_step(wrapper):
    units, features, steps, batch = 4, 3, 8, 64
    kwargs = dict(
        units=units,
        activation=None,
        use_bias=False,
        recurrent_initializer="zeros",
        stochastic_recurrent_kernel=False,
        kernel_stddev_initializer=0.5,
        return_sequences=True,
        seed=3,
    )
    if wrapper == "layer":
        layer = ks.layers.SimpleRNNLocalReparameterization(**kwargs)
    else:
        loop = {"return_sequences": kwargs.pop("return_sequences")}
        layer = keras.layers.RNN(
            ks.layers.SimpleRNNLocalReparameterizationCell(**kwargs), **loop
        )
    # The same input at every step: only the noise can change over time.
    x = np.random.default_rng(1).normal(size=(batch, 1, features)).astype("float32")
    x = np.repeat(x, steps, axis=1)
    outputs = testing.to_numpy(layer(x, training=True)).astype("float64")
    cell = layer.cell
    mean = x @ testing.to_numpy(cell.kernel_mean)
    stddev = np.sqrt(np.square(x) @ np.square(testing.to_numpy(cell.kernel_stddev)))
    zeta = (outputs - mean) / stddev
    n = zeta.size
    assert abs(zeta.mean()) < 5 / np.sqrt(n)
    assert abs(zeta.var() - 1) < 5 * np.sqrt(2 / n)
    lag = np.corrcoef(zeta[:, :-1].ravel(), zeta[:, 1:].ravel())[0, 1]
    assert abs(lag) < 5 / np.sqrt(zeta[:, 1:].size)


def sigmoid(x):
    return special.expit(x)


def numpy_step(family, reset_after, x, h, c, kernel, recurrent, bias):
    """One step of Keras's cells with per-example weights `(n, in, gates * units)`."""
    units = h.shape[-1]
    xk = np.einsum("ni,nij->nj", x, kernel)
    if family == "SimpleRNN":
        return np.tanh(xk + np.einsum("ni,nij->nj", h, recurrent) + bias)
    if family == "LSTM":
        z = xk + np.einsum("ni,nij->nj", h, recurrent) + bias
        i, f, g, o = np.split(z, 4, axis=-1)
        carry = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        return sigmoid(o) * np.tanh(carry)
    input_bias, recurrent_bias = (bias[0], bias[1]) if reset_after else (bias, 0.0)
    xk = xk + input_bias
    if reset_after:
        hr = np.einsum("ni,nij->nj", h, recurrent) + recurrent_bias
        update = sigmoid(xk[:, :units] + hr[:, :units])
        reset = sigmoid(xk[:, units : 2 * units] + hr[:, units : 2 * units])
        candidate = np.tanh(xk[:, 2 * units :] + reset * hr[:, 2 * units :])
    else:
        hr = np.einsum("ni,nij->nj", h, recurrent[:, :, : 2 * units])
        update = sigmoid(xk[:, :units] + hr[:, :units])
        reset = sigmoid(xk[:, units : 2 * units] + hr[:, units:])
        candidate = np.tanh(
            xk[:, 2 * units :]
            + np.einsum("ni,nij->nj", reset * h, recurrent[:, :, 2 * units :])
        )
    return update * h + (1 - update) * candidate


# The default run covers each way the cells combine noise: LSTM's fused
# gates (LRT), GRU's reset gate scaling the recurrent LRT variance, and GRU's
# reset gate applied before a column slice of the flipout recurrent kernel.
MOMENT_DEFAULT = {
    ("LSTM", "LocalReparameterization", None),
    ("GRU", "LocalReparameterization", True),
    ("GRU", "Flipout", False),
}
MOMENT_CASES = [
    case if case in MOMENT_DEFAULT else pytest.param(*case, marks=pytest.mark.slow)
    for case in [
        (family, estimator, reset_after)
        for family, reset_after in [
            ("SimpleRNN", None),
            ("LSTM", None),
            ("GRU", True),
            ("GRU", False),
        ]
        for estimator in ["Flipout", "LocalReparameterization"]
    ]
]


@pytest.mark.parametrize("family,estimator,reset_after", MOMENT_CASES)
def test_one_step_matches_sampling_the_weights(family, estimator, reset_after):
    units, features, calls, batch = 3, 2, 400, 50
    rng = np.random.default_rng(0)
    kwargs = {} if reset_after is None else {"reset_after": reset_after}
    layer = getattr(ks.layers, family + estimator)(
        units,
        kernel_stddev_initializer=0.8,
        recurrent_kernel_stddev_initializer=0.6,
        seed=2,
        **kwargs,
    )
    states = 2 if family == "LSTM" else 1
    x_in = keras.Input((1, features))
    state_in = [keras.Input((units,)) for _ in range(states)]
    model = keras.Model([x_in, *state_in], layer(x_in, initial_state=state_in))
    cell = layer.cell
    bias = rng.normal(size=cell.bias.shape).astype("float32")
    if family == "GRU":
        # A mostly closed update gate: the output is mostly the candidate.
        bias[..., :units] = -2.0
    cell.bias.assign(bias)
    x = 0.5 * rng.normal(size=(1, features)).astype("float32")
    h = rng.uniform(-1, 1, size=(1, units)).astype("float32")
    c = rng.normal(size=(1, units)).astype("float32")
    n = calls * batch
    inputs = [np.repeat(x[:, None], n, 0), np.repeat(h, n, 0)] + (
        [np.repeat(c, n, 0)] * (states - 1)
    )
    ks.set_inference(model, "sample")
    sampled = model.predict(inputs, batch_size=batch, verbose=0).astype("float64")
    # Examples of one call share flipout's `Delta W`: use call means as the samples.
    per_call = sampled.reshape(calls, batch, units)
    moments = [per_call.mean(1), np.square(per_call).mean(1)]

    m = 40000
    kernel = testing.to_numpy(cell.kernel_mean)
    recurrent = testing.to_numpy(cell.recurrent_kernel_mean)
    kernels = kernel + testing.to_numpy(cell.kernel_stddev) * rng.normal(
        size=(m,) + kernel.shape
    )
    recurrents = recurrent + testing.to_numpy(
        cell.recurrent_kernel_stddev
    ) * rng.normal(size=(m,) + recurrent.shape)
    oracle = numpy_step(
        family,
        reset_after,
        np.repeat(x, m, 0).astype("float64"),
        np.repeat(h, m, 0).astype("float64"),
        np.repeat(c, m, 0).astype("float64"),
        kernels,
        recurrents,
        testing.to_numpy(cell.bias).astype("float64"),
    )
    for ours, theirs in zip(moments, [oracle, np.square(oracle)]):
        tolerance = 5 * np.sqrt(ours.var(0) / calls + theirs.var(0) / m)
        np.testing.assert_array_less(np.abs(ours.mean(0) - theirs.mean(0)), tolerance)
    # The test has power: it would catch an output variance off by half
    # (at least on one unit; it catches GRU's LRT without the `r^2` scaling).
    assert (oracle.var(0) > 2 * tolerance).any()
