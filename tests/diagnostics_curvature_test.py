"""curvature_criterion: Hutchinson's diagonal Hessian against closed forms."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_stochastic as ks
from tests import testing


def half_squared_error(y_true, y_pred):
    return 0.5 * ops.sum(ops.square(y_true - y_pred), axis=-1)


def _stddev2(layer):
    return testing.to_numpy(layer.kernel_stddev).astype("float64") ** 2


def _check_hutchinson(kappa, variance, hessian, num_probes):
    """kappa = -variance * diag(H) within 5 standard errors of Hutchinson's estimator.

    `hessian` is the full Hessian of the summed loss over the flattened
    kernel; entry i of the estimator has variance sum_{k != i} H_ik^2 / K.
    """
    estimate = -kappa.ravel().astype("float64") / variance.ravel()
    off_diagonal = hessian - np.diag(np.diag(hessian))
    standard_error = np.sqrt(np.sum(off_diagonal**2, axis=1) / num_probes)
    assert np.all(
        np.abs(estimate - np.diag(hessian))
        <= 5 * standard_error + 1e-4 * np.abs(np.diag(hessian))
    )


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: ks.layers.DenseReparameterization(
            3, kernel_stddev_initializer=0.3, seed=0
        ),
        lambda: ks.layers.DenseVariance(3, seed=0),
    ],
    ids=["gaussian_mean", "variance"],
)
def test_linear_layer_squared_error(make_layer):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype("float32")
    y = rng.normal(size=(40, 3)).astype("float32")
    layer = make_layer()
    model = testing.sequential(layer, (4,))
    modes = layer.inference
    num_probes = 60
    kappa = ks.diagnostics.curvature_criterion(
        model,
        layer,
        x,
        y,
        loss=half_squared_error,
        num_probes=num_probes,
        batch_size=16,
        seed=1,
    )
    assert kappa.shape == (4, 3) and kappa.dtype == np.float32
    # d^2/dW_ij dW_kl of 0.5 ||y - x W||^2 = delta_jl (x^T x)_ik.
    gram = x.astype("float64").T @ x
    hessian = np.kron(gram, np.eye(3))
    _check_hutchinson(kappa, _stddev2(layer), hessian, num_probes)
    assert layer.inference == modes
    assert "_linear" not in vars(layer)


def test_orthogonal_design_is_exact_with_one_probe():
    # x^T x diagonal: the Hessian is diagonal and Hutchinson's estimate exact.
    x = np.array(
        [[2.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]], "float32"
    )
    y = np.zeros((4, 2), "float32")
    layer = ks.layers.DenseFlipout(2, kernel_stddev_initializer=0.5, seed=0)
    model = testing.sequential(layer, (3,))
    kappa = ks.diagnostics.curvature_criterion(
        model, layer, x, y, loss=half_squared_error, num_probes=1, seed=0
    )
    expected = -_stddev2(layer) * (x**2).sum(axis=0)[:, None]
    np.testing.assert_allclose(kappa, expected, rtol=1e-5)


def test_conv1d_squared_error():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 5, 2)).astype("float32")
    layer = ks.layers.Conv1DVariance(2, 3, seed=0)
    model = testing.sequential(layer, (5, 2))
    y = rng.normal(size=(6, 3, 2)).astype("float32")
    num_probes = 60
    kappa = ks.diagnostics.curvature_criterion(
        model, layer, x, y, loss=half_squared_error, num_probes=num_probes, seed=3
    )
    assert kappa.shape == (3, 2, 2)
    # Rows of `patches` are the (example, position) windows, columns the
    # (tap, channel) kernel entries; each filter's Hessian block is P^T P.
    patches = np.stack([x[:, t : t + 3, :].reshape(6, 6) for t in range(3)], axis=1)
    patches = patches.reshape(-1, 6).astype("float64")
    hessian = np.kron(patches.T @ patches, np.eye(2))
    _check_hutchinson(kappa, _stddev2(layer), hessian, num_probes)


def test_softmax_cross_entropy_with_compiled_loss():
    # logits = x W + b: d^2 CE / dW_ij dW_kl = sum_n x_ni x_nk p_nj (delta_jl - p_nl).
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3)).astype("float32")
    y = rng.integers(0, 3, size=50)
    layer = ks.layers.DenseLocalReparameterization(
        3, kernel_initializer="random_normal", kernel_stddev_initializer=0.2, seed=0
    )
    model = testing.sequential(layer, (3,))
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    num_probes = 80
    kappa = ks.diagnostics.curvature_criterion(
        model, layer, x, y, num_probes=num_probes, seed=5
    )
    logits = x.astype("float64") @ testing.to_numpy(
        layer.kernel_mean
    ) + testing.to_numpy(layer.bias)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    hessian = np.einsum("ni,nk,nj,njl->ijkl", x, x, p, np.eye(3)[None] - p[:, None, :])
    _check_hutchinson(kappa, _stddev2(layer), hessian.reshape(9, 9), num_probes)
    assert np.all(kappa <= 1e-6)


def test_bad_arguments():
    x = np.zeros((4, 3), "float32")
    y = np.zeros((4, 2), "float32")
    layer = ks.layers.DenseFlipout(2)
    model = testing.sequential(layer, (3,))
    other = ks.layers.DenseFlipout(2)
    testing.sequential(other, (3,))
    with pytest.raises(
        ValueError, match=r"Argument `layer` must be a keras_stochastic"
    ):
        ks.diagnostics.curvature_criterion(model, other, x, y, loss="mse")
    with pytest.raises(ValueError, match=r"Received: num_probes=0"):
        ks.diagnostics.curvature_criterion(model, layer, x, y, loss="mse", num_probes=0)
    with pytest.raises(ValueError, match=r"Pass `loss`"):
        ks.diagnostics.curvature_criterion(model, layer, x, y)
    keras_model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2), ks.layers.DenseFlipout(2)]
    )
    with pytest.raises(ValueError, match=r"Received: layer=<Dense"):
        ks.diagnostics.curvature_criterion(
            keras_model, keras_model.layers[0], x, y, loss="mse"
        )
    kappa = ks.diagnostics.curvature_criterion(
        model, layer.name, x, y, loss="mse", num_probes=2
    )
    assert kappa.shape == (3, 2)
