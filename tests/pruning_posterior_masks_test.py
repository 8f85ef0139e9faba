"""Pruned weights of stochastic layers are exactly zero in every sample.

Pruning masks a stochastic kernel's mean through `GradientNoise`; the
posterior's mask (`posteriors/masks.py`) removes its noise and KL too, and the
optimizer keeps its noise parameters fixed.
"""

import keras
import numpy as np
import pytest
from keras import ops

import keras_stochastic as ks
from keras_stochastic import kl as kl_lib

IN, OUT = 12, 10
LAYERS = {
    "flipout": ks.layers.DenseFlipout,
    "lrt": ks.layers.DenseLocalReparameterization,
    "reparameterization": ks.layers.DenseReparameterization,
    "variational_dropout": ks.layers.DenseVariationalDropout,
}


def _data(n=128, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, IN)).astype("float32")
    return x, (x[:, :3].argmax(axis=1)).astype("int32")


def _pruned_model(kind, target_sparsity=0.5, inner=None, epochs=3, seed=0):
    keras.utils.set_random_seed(seed)
    cls = LAYERS[kind]
    kwargs = {"kernel_stddev_initializer": 0.1} if kind != "variational_dropout" else {}
    if kind == "variational_dropout":
        # Start noisy, so that the masked noise is far from zero.
        kwargs = {"log_variance_initializer": -2.0}
    model = keras.Sequential(
        [
            keras.Input((IN,)),
            cls(OUT, use_bias=False, kl_weight=1e-2, name="pruned", seed=1, **kwargs),
            keras.layers.Dense(3, name="head"),
        ]
    )
    inner = inner or keras.optimizers.Adam(1e-2)
    model.compile(
        ks.optimizers.GradientNoise(inner, scale=0.5, seed=2),
        "sparse_categorical_crossentropy",
    )
    x, y = _data()
    callback = ks.callbacks.FlipOutPruning(
        target_sparsity=target_sparsity,
        prune_every=1,
        prune_rate=target_sparsity,
        include=["pruned"],
    )
    model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=[callback])
    return model, callback


def _kernel_samples(layer, draws):
    """`draws` samples of the layer's kernel, from its training-mode outputs.

    Without a bias, the outputs for the identity matrix are the kernel's rows
    (one weight sample per row for flipout and LRT, one per call for
    reparameterization).
    """
    eye = np.eye(IN, dtype="float32")
    return np.stack(
        [ops.convert_to_numpy(layer(eye, training=True)) for _ in range(draws)]
    )


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_pruned_weights_carry_no_noise(kind):
    model, _ = _pruned_model(kind)
    layer = model.get_layer("pruned")
    mask = ops.convert_to_numpy(layer.posterior.mask)
    optimizer_masks = [m.numpy() for _, m, _ in model.optimizer.pruning_slots()]
    np.testing.assert_array_equal(mask, optimizer_masks[0])
    pruned = mask == 0
    assert 0.4 < pruned.mean() < 0.6
    samples = _kernel_samples(layer, draws=200)
    # Exactly zero in every sample, while the kept weights still vary. LRT
    # samples outputs, not weights: a pruned weight adds no variance, and
    # what remains is the estimator's floor, sqrt(LRT_EPSILON) = 1e-6.
    floor = 0.0
    if layer.estimator == "local_reparameterization":
        floor = 6 * np.sqrt(ks.estimators.LRT_EPSILON)
    assert np.all(np.abs(samples[:, pruned]) <= floor)
    kept_std = samples[:, ~pruned].std(axis=0)
    assert np.all(kept_std > 0)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.posterior.mean)[pruned], 0)


def test_sample_mode_predictions_ignore_pruned_weights():
    model, _ = _pruned_model("flipout")
    layer = model.get_layer("pruned")
    mask = ops.convert_to_numpy(layer.posterior.mask)
    layer.inference = "sample"
    # Inputs only on pruned rows' columns cannot reach a pruned weight's
    # noise; instead compare: the sampled kernel's pruned entries are zero
    # in predict too (one-hot inputs, the first layer's outputs).
    probe = keras.Model(model.inputs, layer.output)
    eye = np.eye(IN, dtype="float32")
    outputs = np.stack([probe.predict(eye, verbose=0) for _ in range(20)])
    assert np.all(outputs[:, mask == 0] == 0.0)
    assert np.all(outputs[:, mask == 1].std(axis=0) > 0)


@pytest.mark.parametrize("kind", ["flipout", "lrt"])
def test_the_kl_charges_only_the_kept_weights(kind):
    model, _ = _pruned_model(kind)
    layer = model.get_layer("pruned")
    posterior = layer.posterior
    kept = ops.convert_to_numpy(posterior.mask) == 1
    mean = ops.convert_to_numpy(posterior.mean).astype("float64")
    stddev = np.log1p(np.exp(ops.convert_to_numpy(posterior.rho).astype("float64")))
    stddev = stddev + kl_lib.STDDEV_FLOOR
    prior = posterior.prior.stddev
    per_weight = np.log(prior / stddev) + (stddev**2 + mean**2) / (2 * prior**2) - 0.5
    expected = per_weight[kept].sum()
    np.testing.assert_allclose(float(layer.kl_divergence()), expected, rtol=1e-5)
    # The unmasked sum would be larger: pruned weights are not charged.
    assert per_weight.sum() > expected + 1.0


def test_the_variational_dropout_kl_charges_only_the_kept_weights():
    model, _ = _pruned_model("variational_dropout")
    layer = model.get_layer("pruned")
    posterior = layer.posterior
    kept = ops.convert_to_numpy(posterior.mask) == 1
    log_alpha = ops.convert_to_numpy(posterior.log_alpha())
    per_weight = ops.convert_to_numpy(kl_lib.log_uniform_kl_elementwise(log_alpha))
    np.testing.assert_allclose(
        float(layer.kl_divergence()), per_weight[kept].sum(), rtol=1e-5
    )


@pytest.mark.parametrize(
    "inner",
    [
        lambda: keras.optimizers.Adam(1e-2),
        lambda: keras.optimizers.SGD(0.05, momentum=0.9),
        lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1),
    ],
    ids=["adam", "momentum", "adamw"],
)
def test_noise_parameters_of_pruned_weights_stay_fixed(inner):
    model, callback = _pruned_model("flipout", inner=inner(), epochs=2)
    posterior = model.get_layer("pruned").posterior
    pruned = ops.convert_to_numpy(posterior.mask) == 0
    rho = ops.convert_to_numpy(posterior.rho).copy()
    x, y = _data()
    # The optimizer has momentum from before the event: without freezing, the
    # pruned entries would keep moving.
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[callback])
    after = ops.convert_to_numpy(posterior.rho)
    np.testing.assert_array_equal(after[pruned], rho[pruned])
    assert not np.allclose(after[~pruned], rho[~pruned])


def test_masks_survive_save_load_and_strip(tmp_path):
    model, _ = _pruned_model("lrt")
    mask = ops.convert_to_numpy(model.get_layer("pruned").posterior.mask)
    path = str(tmp_path / "pruned.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    layer = loaded.get_layer("pruned")
    np.testing.assert_array_equal(ops.convert_to_numpy(layer.posterior.mask), mask)
    samples = _kernel_samples(layer, draws=20)
    floor = 6 * np.sqrt(ks.estimators.LRT_EPSILON)
    assert np.all(np.abs(samples[:, mask == 0]) <= floor)
    x, _ = _data()
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
    stripped = ks.pruning.strip(model)
    stripped_layer = stripped.get_layer("pruned")
    np.testing.assert_array_equal(
        ops.convert_to_numpy(stripped_layer.posterior.mask), mask
    )
    samples = _kernel_samples(stripped_layer, draws=20)
    assert np.all(np.abs(samples[:, mask == 0]) <= floor)
    assert ks.sparsity(stripped)["pruned"]["zeros"] == int((mask == 0).sum())


def test_snip_masks_the_noise_too():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((IN,)),
            ks.layers.DenseFlipout(OUT, use_bias=False, name="pruned", seed=1),
            keras.layers.Dense(3, name="head"),
        ]
    )
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.SGD(0.01), scale=0.0),
        "sparse_categorical_crossentropy",
    )
    x, y = _data()
    ks.pruning.snip(model, x[:64], y[:64], 0.6, exclude=["head"])
    layer = model.get_layer("pruned")
    mask = ops.convert_to_numpy(layer.posterior.mask)
    assert abs((mask == 0).mean() - 0.6) < 0.01
    assert np.all(_kernel_samples(layer, draws=20)[:, mask == 0] == 0.0)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert np.all(_kernel_samples(layer, draws=20)[:, mask == 0] == 0.0)


def test_a_prior_whose_kl_takes_no_mask_is_refused():
    @keras.saving.register_keras_serializable(package="tests")
    class NoMaskPrior(ks.priors.GaussianPrior):
        def kl(self, mean, stddev, seed, epsilon=None):
            return kl_lib.normal_kl(mean, stddev)

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((IN,)), ks.layers.DenseFlipout(3, prior=NoMaskPrior())]
    )
    model.compile(
        ks.optimizers.GradientNoise(keras.optimizers.SGD(0.01)),
        "sparse_categorical_crossentropy",
    )
    x, y = _data()
    with pytest.raises(ValueError, match="accept a `mask` argument"):
        model.fit(
            x,
            y,
            epochs=2,
            verbose=0,
            callbacks=[ks.callbacks.FlipOutPruning(target_sparsity=0.5)],
        )
