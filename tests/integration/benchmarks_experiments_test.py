"""Issue 14's experiment scripts run end to end in a tiny configuration.

The numbers mean nothing at this size; the tests check that each script
trains, writes consistent JSON, markdown and a plot, and that the pieces
the reported figures rest on behave (the curvature sweep's weight
replacement is exact and undone, the Figure 1a sweep resumes).
"""

import json

import keras
import numpy as np
import pytest

import keras_stochastic as ks
from benchmarks import adversarial_robustness
from benchmarks import curvature_ensemble
from benchmarks import kingma_figure1a
from tests import testing


def _read(tmp_path, name):
    with open(tmp_path / f"{name}.json") as f:
        payload = json.load(f)
    assert (tmp_path / f"{name}.md").read_text().startswith("# ")
    assert (tmp_path / f"{name}.png").stat().st_size > 0
    return payload


# The scripts' training is backend-independent Keras; to keep the default
# run short, the end-to-end smoke tests run on TensorFlow only. The attack
# script's input gradient, which has a branch per backend, is checked on
# every backend below.
@testing.tensorflow_only
def test_kingma_figure1a_tiny_and_resumes(tmp_path):
    argv = [
        "--widths=8",
        "--seeds=0",
        "--variants=none,variational_a",
        "--max-epochs=1",
        "--patience=1",
        "--num-train=300",
        "--validation=100",
        f"--output-dir={tmp_path}",
        "--name=tiny",
    ]
    kingma_figure1a.main(argv)
    first = _read(tmp_path, "tiny")
    assert [(r["variant"], r["width"]) for r in first["runs"]] == [
        ("none", 8),
        ("variational_a", 8),
    ]
    for run in first["runs"]:
        assert 0.0 <= run["test_error"] <= 1.0
    kingma_figure1a.main(argv)
    assert _read(tmp_path, "tiny")["runs"] == first["runs"]


def test_kingma_figure1a_refuses_unknown_variant(tmp_path):
    with pytest.raises(SystemExit):
        kingma_figure1a.main(["--variants=none,typo", f"--output-dir={tmp_path}"])


@testing.tensorflow_only
def test_adversarial_robustness_tiny(tmp_path):
    payload = adversarial_robustness.main(
        [
            "--widths=2,4,8",
            "--epochs=1",
            "--members=2",
            "--epsilons=0,0.2",
            "--pgd-epsilons=0.2",
            "--pgd-steps=1",
            "--attack-samples=2",
            "--eval-samples=2",
            "--num-test=40",
            "--num-train=300",
            "--validation=100",
            f"--checkpoint-dir={tmp_path / 'weights'}",
            f"--output-dir={tmp_path}",
            "--name=tiny",
        ]
    )
    written = _read(tmp_path, "tiny")
    assert written["results"] == json.loads(json.dumps(payload["results"]))
    assert set(payload["results"]) >= set(adversarial_robustness.MODELS)
    for name in ("variance", "flipout", "deterministic"):
        assert (tmp_path / "weights" / f"{name}.weights.h5").exists()


def test_ensemble_input_gradient_matches_finite_differences():
    model = adversarial_robustness.build_model("deterministic", (2, 4, 8), 100, 0)
    rng = np.random.default_rng(0)
    x = rng.random((3, 28, 28, 1)).astype("float32")
    y = np.array([0, 1, 2])
    gradient = adversarial_robustness.input_gradient([model], x, y, samples=1)
    assert gradient.shape == x.shape

    def loss(inputs):
        return float(
            keras.ops.convert_to_numpy(
                adversarial_robustness._ensemble_loss([model], inputs, y, 1)
            )
        )

    # Central differences along the gradient's own direction (float32: a
    # loose relative tolerance).
    direction = gradient / np.linalg.norm(gradient)
    step = 1e-2
    slope = (loss(x + step * direction) - loss(x - step * direction)) / (2 * step)
    np.testing.assert_allclose(slope, np.linalg.norm(gradient), rtol=0.05)


def test_curvature_replacer_is_exact_and_undone():
    model = adversarial_robustness.build_model(
        "flipout", (2, 4, 8), 100, seed=0, activation="softplus"
    )
    layer = model.get_layer(curvature_ensemble.LAYER)
    replacer = curvature_ensemble.Replacer(layer)
    before = keras.ops.convert_to_numpy(layer.kernel_stddev)
    shape = tuple(layer.posterior.rho.shape)
    kept = curvature_ensemble.top_fraction(
        np.arange(np.prod(shape)).reshape(shape), 0.25
    )
    assert kept.sum() == round(0.25 * kept.size)
    replacer.keep(kept)
    stddev = keras.ops.convert_to_numpy(layer.kernel_stddev)
    # Replaced weights keep only the posterior's 1e-7 floor: their mean.
    assert np.all(stddev[~kept] <= 1.01e-7)
    np.testing.assert_array_equal(stddev[kept], before[kept])
    replacer.restore()
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer.posterior.rho), replacer.original
    )
    variance = adversarial_robustness.build_model("variance", (2, 4, 8), 100, seed=0)
    variance_layer = variance.get_layer(curvature_ensemble.LAYER)
    assert isinstance(variance_layer, ks.layers.DenseVariance)
    replacer = curvature_ensemble.Replacer(variance_layer)
    replacer.keep(np.zeros(variance_layer.kernel_scale.shape, bool))
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype("float32")
    # Every weight replaced by its mean, zero: the dense output is 0 up to
    # the local reparameterization's documented output-noise floor (1e-6).
    features = keras.Sequential(variance.layers[:-1])(x, training=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(features), 0.0, atol=1e-5)


@testing.tensorflow_only
def test_curvature_ensemble_tiny(tmp_path):
    payload = curvature_ensemble.main(
        [
            "--widths=2,4,8",
            "--epochs=1",
            "--fractions=1,0.5,0",
            "--curvature-examples=50",
            "--probes=2",
            "--eval-samples=2",
            "--random-draws=1",
            "--num-test=40",
            "--num-train=300",
            "--validation=100",
            f"--output-dir={tmp_path}",
            "--name=tiny",
        ]
    )
    written = _read(tmp_path, "tiny")
    assert written["results"] == json.loads(json.dumps(payload["results"]))
    for kind in curvature_ensemble.MODELS:
        entry = payload["results"][kind]
        for criterion in curvature_ensemble.CRITERIA:
            assert len(entry[criterion]) == 3
    # Keeping no weight of the variance layer zeroes it: every criterion
    # then gives the same constant prediction.
    variance = payload["results"]["variance"]
    assert variance["curvature"][-1] == variance["stddev"][-1] == variance["random"][-1]


def test_cost_analysis_counts_weight_sized_instructions():
    from benchmarks import cost_analysis

    hlo = "\n".join(
        [
            "  %p0 = f32[1024,1024]{1,0} parameter(0)",
            "  %dot.1 = f32[1024,1024]{1,0} dot(%p0, %p0), lhs_contracting_dims={1}",
            "  %fusion.2 = f32[1024,1024]{1,0} fusion(%dot.1), kind=kLoop",
            "  ROOT %fusion.3 = f32[2048,1024]{1,0} fusion(%dot.1), kind=kLoop",
            "  %small = f32[10]{0} fusion(%p0), kind=kLoop",
        ]
    )
    assert cost_analysis.large_instructions(hlo, 1024 * 1024) == {
        "dot": 1,
        "fusion": 2,
    }


@pytest.mark.skipif(
    keras.backend.backend() not in ("jax", "tensorflow"), reason="XLA cost analysis"
)
def test_cost_analysis_keras_reference(tmp_path):
    from benchmarks import cost_analysis

    payload = cost_analysis.main(["--variants=keras", f"--output-dir={tmp_path}"])
    entry = payload["results"]["keras"]
    # The weight gradient of the 1024 x 1024 kernel and Adam's passes over
    # it (the moments and the update: at least one fusion each).
    assert entry["weight_sized_instructions"].get("dot") == 1
    assert entry["weight_sized_instructions"].get("fusion", 0) >= 3
    if keras.backend.backend() == "jax":
        # Adam alone reads and writes the 1.86M parameters and both moments.
        assert entry["bytes accessed"] > 7 * 4 * entry["parameters"]
        # Forward and weight-gradient matmuls: 2 * 2 * batch flops per weight.
        assert entry["flops"] > 4 * 128 * entry["parameters"]
    name = f"cost_analysis_{keras.backend.backend()}.md"
    assert (tmp_path / name).read_text().startswith("# ")


def test_profile_xla_step_kinds_from_fused_opcodes():
    from benchmarks import profile_xla_step

    hlo = "\n".join(
        [
            "%fused_draw (p: u32[4]) -> f32[4] {",
            "  %iota.1 = u32[4]{0} iota(), iota_dimension=0",
            "  ROOT %gather.1 = f32[4]{0} gather(%p, %iota.1)",
            "}",
            "%fused_softplus (p: f32[4]) -> f32[4] {",
            "  ROOT %log1p.1 = f32[4]{0} log-plus-one(%p)",
            "}",
            "%fused_adam (p: f32[4]) -> f32[4] {",
            "  ROOT %sqrt.1 = f32[4]{0} sqrt(%p)",
            "}",
            "ENTRY %main (p0: f32[4]) -> f32[4] {",
            "  %p0 = f32[4]{0} parameter(0)",
            '  %d = f32[4]{0} fusion(%p0), kind=kLoop, calls=%fused_draw, metadata={op_name="jit(train_step)/jvp(dense)/mul"}',
            '  %s = f32[4]{0} fusion(%p0), kind=kLoop, calls=%fused_softplus, metadata={op_name="jit(train_step)/jvp(dense)/log1p"}',
            '  %a = f32[4]{0} fusion(%p0), kind=kLoop, calls=%fused_adam, metadata={op_name="jit(train_step)/adam/sub"}',
            "  %m = f32[4]{0} dot(%p0, %p0), lhs_contracting_dims={0}",
            "  ROOT %c = f32[4]{0} copy(%m)",
            "}",
        ]
    )
    kinds = profile_xla_step.instruction_kinds(hlo)
    assert kinds == {
        "p0": "other",
        "d": "noise draw",
        "s": "softplus / KL / variance",
        "a": "optimizer",
        "m": "matmul",
        "c": "copy",
    }


def test_profile_xla_step_times_the_keras_step():
    # JAX's profiler trace, or TensorFlow's host trace of the XLA thunks.
    from benchmarks import profile_xla_step

    times = profile_xla_step.profile_variant("keras", steps=2)
    assert set(times) == set(profile_xla_step.KINDS)
    # The Dense step is mostly its matmuls and Adam; it draws nothing.
    assert times["matmul"] > 0 and times["optimizer"] > 0
    assert times["noise draw"] < 0.1 * times["matmul"]
