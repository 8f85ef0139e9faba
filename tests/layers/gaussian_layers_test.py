"""CONVENTIONS' per-layer checklist for the mean-field Gaussian layers."""

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from tests import testing

ESTIMATORS = ["Reparameterization", "Flipout", "LocalReparameterization"]
FAMILIES = {
    # family: (twin, constructor args, input shape without batch)
    "Dense": (keras.layers.Dense, (3,), (5,)),
    "Conv1D": (keras.layers.Conv1D, (3, 2), (6, 2)),
    "Conv2D": (keras.layers.Conv2D, (3, 2), (5, 5, 2)),
    "Conv3D": (keras.layers.Conv3D, (2, 2), (4, 4, 3, 2)),
}
CASES = [(family, estimator) for family in FAMILIES for estimator in ESTIMATORS]
# The dense-only per-example baseline, where public_api_test (config and
# .keras round trips) and estimators_test (statistics) do not reach.
WITH_PER_EXAMPLE = CASES + [("Dense", "PerExample")]


def make(family, estimator, **kwargs):
    cls = getattr(ks.layers, family + estimator)
    return cls(*FAMILIES[family][1], **kwargs)


def inputs(family, batch=4, seed=0):
    shape = FAMILIES[family][2]
    return np.random.default_rng(seed).normal(size=(batch,) + shape).astype("float32")


@pytest.mark.parametrize("family,estimator", WITH_PER_EXAMPLE)
def test_config_roundtrip_and_weight_counts(family, estimator):
    layer = make(
        family,
        estimator,
        activation="relu",
        kernel_stddev_initializer=0.03,
        prior=ks.priors.ScaleMixtureNormal(0.25, 1.0, 0.01),
        kl_weight=0.5,
        inference="sample",
        seed=7,
        kernel_regularizer="l2",
    )
    clone = testing.config_roundtrip(layer)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()
    assert clone.kl_weight == 0.5 and clone.inference == "sample" and clone.seed == 7
    assert clone.prior.get_config() == {"pi": 0.25, "stddev1": 1.0, "stddev2": 0.01}

    outputs = layer(inputs(family))
    assert [w.name for w in layer.weights] == [
        "kernel_mean",
        "kernel_rho",
        "bias",
        "kl_weight",
        "sample_at_inference",
    ]
    assert len(layer.trainable_weights) == 3
    # One KL term and one kernel regularization term.
    assert len(layer.losses) == 2
    assert tuple(outputs.shape) == tuple(
        layer.compute_output_shape((4,) + FAMILIES[family][2])
    )
    np.testing.assert_allclose(testing.to_numpy(layer.kernel_stddev), 0.03, rtol=1e-5)

    no_bias = make(family, estimator, use_bias=False)
    no_bias(inputs(family))
    assert len(no_bias.weights) == 4 and len(no_bias.trainable_weights) == 2
    assert len(no_bias.losses) == 1


@pytest.mark.parametrize("family,estimator", CASES)
def test_symbolic_and_eager_calls_agree_on_shapes(family, estimator):
    layer = make(family, estimator, seed=1)
    symbolic = layer(keras.KerasTensor((None,) + FAMILIES[family][2]))
    eager = layer(inputs(family), training=True)
    assert tuple(symbolic.shape[1:]) == tuple(eager.shape[1:])


@pytest.mark.parametrize("family,estimator", CASES)
def test_fit_predict_save_and_reload(family, estimator, tmp_path):
    x = inputs(family, batch=8)
    model = testing.sequential(make(family, estimator, seed=3), x.shape[1:])
    out_shape = model.output_shape[1:]
    y = np.zeros((8,) + out_shape, "float32")
    loss = testing.fit_steps(model, x, y)
    assert np.isfinite(loss)
    mean = model.predict(x, verbose=0)
    np.testing.assert_array_equal(mean, model.predict(x, verbose=0))
    reloaded = testing.save_and_reload(model, tmp_path)
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), mean, rtol=1e-6, atol=1e-6
    )
    layer = reloaded.layers[0]
    np.testing.assert_array_equal(
        testing.to_numpy(layer.kernel_mean),
        testing.to_numpy(model.layers[0].kernel_mean),
    )


@pytest.mark.parametrize("family,estimator", WITH_PER_EXAMPLE)
def test_mixed_float16_fit_step(family, estimator):
    keras.config.set_dtype_policy("mixed_float16")
    x = inputs(family, batch=8)
    layer = make(family, estimator, seed=2)
    model = testing.sequential(layer, x.shape[1:])
    y = np.zeros((8,) + model.output_shape[1:], "float32")
    outputs = layer(x, training=True)
    assert outputs.dtype == "float16"
    assert layer.kernel_mean.dtype == "float32"
    (kl_loss,) = layer.losses
    assert kl_loss.dtype == "float32"
    loss = testing.fit_steps(model, x, y, steps=2, batch_size=4)
    assert np.isfinite(loss)
    assert np.all(np.isfinite(testing.to_numpy(layer.kernel_mean)))


def test_jit_compiled_train_step():
    x = inputs("Conv2D", batch=8)
    model = keras.Sequential(
        [
            keras.Input(x.shape[1:]),
            ks.layers.Conv2DFlipout(3, 2, activation="relu", seed=1),
            keras.layers.Flatten(),
            ks.layers.DenseLocalReparameterization(2, seed=2),
            ks.layers.DenseReparameterization(2, seed=3),
        ]
    )
    loss = testing.fit_steps(
        model, x, np.zeros((8, 2)), steps=2, batch_size=4, jit_compile=True
    )
    assert model.jit_compile is True and np.isfinite(loss)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"kl_weight": -1.0},
            "Argument `kl_weight` must be a non-negative, finite float. Received: kl_weight=-1.0",
        ),
        (
            {"inference": "median"},
            "Argument `inference` must be one of \\['mean', 'sample'\\]. Received: inference='median'",
        ),
        (
            {"kernel_stddev_initializer": 0.0},
            "must produce positive standard deviations. Received: kernel_stddev_initializer=0.0",
        ),
        (
            {"kernel_stddev_initializer": "no_such"},
            "Received: kernel_stddev_initializer='no_such'",
        ),
        ({"prior": "cauchy"}, "Argument `prior` must be .* Received: prior='cauchy'"),
        ({"prior": lambda x: x}, "Argument `prior` must be"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ks.layers.DenseFlipout(3, **kwargs)


def test_bad_types_and_shapes():
    with pytest.raises(TypeError, match="Received: seed='1'"):
        ks.layers.DenseFlipout(3, seed="1")
    with pytest.raises(TypeError, match="Received: kl_weight='1'"):
        ks.layers.DenseFlipout(3, kl_weight="1")
    with pytest.raises(ValueError, match="Received: units=0"):
        ks.layers.DenseLocalReparameterization(0)
    with pytest.raises(ValueError, match="Received: filters=-2"):
        ks.layers.Conv2DFlipout(-2, 3)
    with pytest.raises(ValueError, match="divisible by the number of groups"):
        ks.layers.Conv2DFlipout(3, 3, groups=2)
    with pytest.raises(ValueError, match="strides"):
        ks.layers.Conv1DFlipout(3, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError):
        ks.layers.Conv2DFlipout(3, 3, padding="causal")
    stddev = keras.initializers.RandomNormal(0.0, 1.0)
    layer = ks.layers.DenseFlipout(3, kernel_stddev_initializer=stddev)
    with pytest.raises(
        ValueError, match="must produce standard deviations greater than"
    ):
        layer.build((None, 4))


def test_kernel_regularizer_and_constraint_apply_to_the_mean():
    layer = ks.layers.DenseFlipout(
        2,
        kernel_regularizer=keras.regularizers.L2(0.5),
        kernel_constraint=keras.constraints.NonNeg(),
        kernel_initializer="ones",
        seed=0,
    )
    layer(np.ones((1, 3), "float32"))
    regularization = [float(testing.to_numpy(loss)) for loss in layer.losses][1]
    np.testing.assert_allclose(regularization, 0.5 * 6.0, rtol=1e-6)
    assert layer.kernel_mean.constraint is not None


def test_conv_options_match_keras_twin_in_mean_mode():
    rng = np.random.default_rng(0)
    cases = [
        (
            ks.layers.Conv1DFlipout,
            keras.layers.Conv1D,
            dict(filters=4, kernel_size=3, padding="causal", dilation_rate=2),
            (2, 9, 2),
        ),
        (
            ks.layers.Conv2DLocalReparameterization,
            keras.layers.Conv2D,
            dict(filters=4, kernel_size=3, strides=2, padding="same", groups=2),
            (2, 7, 7, 4),
        ),
        (
            ks.layers.Conv3DReparameterization,
            keras.layers.Conv3D,
            dict(filters=2, kernel_size=2, data_format="channels_first"),
            (2, 3, 4, 4, 3),
        ),
    ]
    for cls, twin_cls, kwargs, shape in cases:
        x = rng.normal(size=shape).astype("float32")
        if (
            kwargs.get("data_format") == "channels_first"
            and testing.BACKEND == "tensorflow"
        ):
            continue  # TF's CPU kernels have no channels_first Conv3D.
        layer = cls(**kwargs, seed=0)
        twin = twin_cls(**kwargs)
        out = layer(x)
        twin(x)
        twin.kernel.assign(layer.kernel_mean)
        twin.bias.assign(rng.normal(size=twin.bias.shape))
        layer.bias.assign(twin.bias)
        np.testing.assert_allclose(
            testing.to_numpy(layer(x)), testing.to_numpy(twin(x)), rtol=1e-5, atol=1e-5
        )
        assert tuple(out.shape) == tuple(twin(x).shape)
