"""Neklyudov et al. (2019): adversarial robustness of variance networks, on MNIST-5k.

Four predictors of one LeNet-style architecture (conv `c1`@5x5 - pool -
conv `c2`@5x5 - pool - dense `d` - 10, `--widths`, default 10,20,200, a
reduced LeNet-5 for CPU time; the paper's is 20,50,500), trained with Adam
(learning rate 3e-3 decayed linearly to 1e-5, batch 100, `--epochs`) on the
MNIST-5k training digits less a validation split, with the best validation
epoch restored:

- `variance`: the dense layer is `ks.layers.DenseVariance` (zero-mean
  weights, no bias), an ensemble of `--samples` weight samples;
- `flipout`: the dense layer is `ks.layers.DenseFlipout` (Gaussian,
  `kl_weight = 1 / num_train`), the same ensemble;
- `deep_ensemble`: `--members` deterministic nets trained from different seeds;
- `deterministic`: the first of those members alone.

Attacks, on `--num-test` test digits, pixels kept in [0, 1]: FGSM for each
epsilon of `--epsilons` and PGD (`--pgd-steps` steps of size 2.5 eps /
steps, random start) at `--pgd-epsilons`. The loss differentiated is the
cross-entropy of the ensemble's averaged predictive: for the stochastic nets
the mean of `--attack-samples` sampled softmaxes (expectation over
transformation), for the deep ensemble the mean over its members, so noise
does not mask the gradients. `single_sample` entries attack one weight
sample per step instead (the weak attack). Accuracy is that of the
ensemble's averaged predictive on the adversarial digits.

The trained weights are saved under `--checkpoint-dir` for
`benchmarks.curvature_ensemble`.

Usage, from the repository root:

    PYTHONPATH=. python -m benchmarks.adversarial_robustness --epochs 10
"""

import argparse
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_stochastic as ks  # noqa: E402
from benchmarks import _common  # noqa: E402
from tutorials import common as tutorials_common  # noqa: E402

MODELS = ("variance", "flipout", "deep_ensemble", "deterministic")
LABELS = {
    "variance": "variance network (ensemble)",
    "flipout": "Gaussian flipout net (ensemble)",
    "deep_ensemble": "deep ensemble",
    "deterministic": "single deterministic net",
}
DEFAULT_CHECKPOINT_DIR = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "out", "adversarial_robustness"
)


def build_model(kind, widths, num_train, seed, activation="relu", batch_norm=False):
    """The LeNet of `kind` (`"variance"`, `"flipout"` or `"deterministic"`).

    `activation` follows the dense layer `d`, after a `BatchNormalization`
    if `batch_norm` (the curvature experiment uses the paper's softplus,
    which keeps the Hessian at a zero mean defined).
    """
    c1, c2, d = widths
    inner = None if batch_norm else activation
    if kind == "variance":
        dense = ks.layers.DenseVariance(
            d, activation=inner, use_bias=False, seed=seed, name="stochastic_dense"
        )
    elif kind == "flipout":
        dense = ks.layers.DenseFlipout(
            d,
            activation=inner,
            kl_weight=1.0 / num_train,
            seed=seed,
            name="stochastic_dense",
        )
    else:
        dense = keras.layers.Dense(d, activation=inner, name="dense")
    head = [dense]
    if batch_norm:
        head += [keras.layers.BatchNormalization(), keras.layers.Activation(activation)]
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(c1, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(c2, 5, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            *head,
            keras.layers.Dense(10, name="logits"),
        ],
        name=kind,
    )


def train(model, data, epochs, seed, samples):
    """Fits `model`; restores the epoch of best validation accuracy (sampled ensemble)."""
    (x, y), (x_val, y_val) = data
    keras.utils.set_random_seed(seed)
    steps = epochs * math.ceil(len(x) / 100)
    schedule = keras.optimizers.schedules.PolynomialDecay(3e-3, steps, 1e-5)
    model.compile(
        keras.optimizers.Adam(schedule),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    best, best_weights = -1.0, None
    for _ in range(epochs):
        model.fit(x, y, batch_size=100, epochs=1, verbose=0)
        accuracy = float(
            np.mean(np.argmax(predictive([model], x_val, samples), -1) == y_val)
        )
        if accuracy > best:
            best, best_weights = accuracy, model.get_weights()
    model.set_weights(best_weights)
    return best


def _stochastic(models):
    return models[0].name != "deterministic"


def predictive(models, x, samples):
    """Averaged softmax: over `samples` weight samples, or over the deterministic `models`."""
    if _stochastic(models):
        return np.asarray(
            ks.predict_mc(
                models[0], x, num_samples=samples, batch_size=250, from_logits=True
            )
        )
    return np.mean(
        [
            keras.ops.convert_to_numpy(
                keras.ops.softmax(m.predict(x, batch_size=250, verbose=0))
            )
            for m in models
        ],
        axis=0,
    )


def _ensemble_loss(models, x, y, samples):
    """Cross-entropy of the averaged predictive, summed over the batch (a tensor)."""
    calls = [models[0]] * samples if _stochastic(models) else list(models)
    probabilities = sum(keras.ops.softmax(m(x, training=False)) for m in calls) / len(
        calls
    )
    picked = keras.ops.take_along_axis(probabilities, keras.ops.reshape(y, (-1, 1)), 1)
    return -keras.ops.sum(keras.ops.log(picked + 1e-12))


def input_gradient(models, x, y, samples, batch_size=250):
    """d loss / d x of `_ensemble_loss`, as a NumPy array, in batches."""
    backend = keras.backend.backend()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        yb = y[start : start + batch_size].astype("int32")
        if backend == "tensorflow":
            import tensorflow as tf

            xt = tf.convert_to_tensor(xb)
            with tf.GradientTape() as tape:
                tape.watch(xt)
                loss = _ensemble_loss(models, xt, yb, samples)
            out.append(tape.gradient(loss, xt).numpy())
        elif backend == "jax":
            import jax

            out.append(
                np.asarray(
                    jax.grad(lambda v, yb=yb: _ensemble_loss(models, v, yb, samples))(
                        xb
                    )
                )
            )
        else:
            raise ValueError(f"Unsupported backend. Received: backend={backend!r}")
    return out and np.concatenate(out)


def fgsm(models, x, y, epsilons, samples):
    """`{epsilon: adversarial x}`: one gradient sign, scaled per epsilon."""
    sign = np.sign(input_gradient(models, x, y, samples))
    return {e: np.clip(x + e * sign, 0.0, 1.0).astype("float32") for e in epsilons}


def pgd(models, x, y, epsilon, steps, samples, seed):
    """L-infinity projected gradient ascent with a uniform random start."""
    rng = np.random.default_rng(seed)
    step = 2.5 * epsilon / steps
    adv = np.clip(x + rng.uniform(-epsilon, epsilon, x.shape), 0.0, 1.0)
    for _ in range(steps):
        adv = adv + step * np.sign(
            input_gradient(models, adv.astype("float32"), y, samples)
        )
        adv = np.clip(np.clip(adv, x - epsilon, x + epsilon), 0.0, 1.0)
    return adv.astype("float32")


def _accuracy(models, x, y, samples):
    return float(np.mean(np.argmax(predictive(models, x, samples), -1) == y))


def attack_all(predictors, x, y, settings, seed):
    """`{model: {"fgsm": {eps: acc}, "pgd": {eps: acc}, "fgsm_single_sample": ...}}`."""
    results = {}
    for kind, models in predictors.items():
        start = time.perf_counter()
        if _stochastic(models):
            ks.set_inference(models[0], "sample")
        entry = {"clean": _accuracy(models, x, y, settings["eval_samples"])}
        adversarial = fgsm(
            models, x, y, settings["epsilons"], settings["attack_samples"]
        )
        entry["fgsm"] = {
            str(e): _accuracy(models, a, y, settings["eval_samples"])
            for e, a in adversarial.items()
        }
        entry["pgd"] = {}
        for e in settings["pgd_epsilons"]:
            a = pgd(
                models, x, y, e, settings["pgd_steps"], settings["attack_samples"], seed
            )
            entry["pgd"][str(e)] = _accuracy(models, a, y, settings["eval_samples"])
        if _stochastic(models):
            adversarial = fgsm(models, x, y, settings["epsilons"], 1)
            entry["fgsm_single_sample"] = {
                str(e): _accuracy(models, a, y, settings["eval_samples"])
                for e, a in adversarial.items()
            }
        entry["seconds"] = time.perf_counter() - start
        results[kind] = entry
        print(
            f"[adversarial_robustness] {kind}: clean {entry['clean']:.3f}, FGSM "
            f"{entry['fgsm']}, PGD {entry['pgd']} ({entry['seconds']:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return results


def _markdown(payload):
    s = payload["settings"]
    text = _common.header_markdown(
        "Neklyudov et al. (2019): adversarial robustness on MNIST-5k",
        payload["environment"],
        payload["versions"],
    )
    text += (
        f"LeNet {s['widths']}, {s['epochs']} epochs, {s['num_test']} test digits; "
        f"attack gradients through {s['attack_samples']} samples (EOT), accuracy "
        f"of a {s['eval_samples']}-sample ensemble; deep ensemble of "
        f"{s['members']} nets. Seed {s['seed']}.\n\n"
    )
    header = ["predictor", "val acc", "clean"] + [f"FGSM {e}" for e in s["epsilons"]]
    header += [f"PGD-{s['pgd_steps']} {e}" for e in s["pgd_epsilons"]]
    rows = []
    for kind, entry in payload["results"].items():
        rows.append(
            [
                LABELS[kind],
                f"{payload['validation_accuracy'][kind]:.3f}",
                f"{entry['clean']:.3f}",
            ]
            + [f"{entry['fgsm'][str(e)]:.3f}" for e in s["epsilons"]]
            + [f"{entry['pgd'][str(e)]:.3f}" for e in s["pgd_epsilons"]]
        )
        if "fgsm_single_sample" in entry:
            rows.append(
                [LABELS[kind] + ", FGSM through 1 sample", "", ""]
                + [f"{entry['fgsm_single_sample'][str(e)]:.3f}" for e in s["epsilons"]]
                + ["" for _ in s["pgd_epsilons"]]
            )
    return text + _common.markdown_table(header, rows)


def plot(payload, path):
    plt = tutorials_common.pyplot()
    s = payload["settings"]
    figure, axis = plt.subplots(figsize=(6, 4.5))
    for kind, entry in payload["results"].items():
        line = axis.plot(
            s["epsilons"],
            [entry["fgsm"][str(e)] for e in s["epsilons"]],
            marker="o",
            label=f"{LABELS[kind]}, FGSM",
        )[0]
        if entry["pgd"]:
            axis.plot(
                s["pgd_epsilons"],
                [entry["pgd"][str(e)] for e in s["pgd_epsilons"]],
                marker="x",
                linestyle="--",
                color=line.get_color(),
                label=f"{LABELS[kind]}, PGD-{s['pgd_steps']}",
            )
    axis.set_xlabel("epsilon (L-infinity, pixels in [0, 1])")
    axis.set_ylabel("test accuracy")
    axis.set_title(f"MNIST-5k, EOT attacks ({s['attack_samples']} samples)")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def load_data(num_train, validation, num_test):
    """MNIST-5k images: ((train, validation) split, strided test subset).

    The first `num_train` training digits (all if None), less a stratified
    validation split of `validation`; `num_test` test digits, strided since
    the test split is ordered by class.
    """
    (x, y), (x_test, y_test) = tutorials_common.load_mnist()
    if num_train:
        x, y = x[:num_train], y[:num_train]
    data = tutorials_common.stratified_split(x, y, validation, seed=1)
    index = np.linspace(0, len(x_test) - 1, min(num_test, len(x_test))).astype(int)
    return data, (x_test[index], y_test[index])


def _floats(text):
    return [float(v) for v in text.split(",") if v]


def train_all(args, data, num_train):
    widths = [int(v) for v in args.widths.split(",")]
    predictors, validation = {}, {}
    for kind in ("variance", "flipout"):
        model = build_model(kind, widths, num_train, args.seed)
        validation[kind] = train(model, data, args.epochs, args.seed, args.eval_samples)
        predictors[kind] = [model]
    members = []
    for member in range(args.members):
        model = build_model("deterministic", widths, num_train, args.seed + member)
        accuracy = train(model, data, args.epochs, args.seed + member, 1)
        if member == 0:
            validation["deterministic"] = accuracy
        members.append(model)
    predictors["deep_ensemble"] = members
    predictors["deterministic"] = members[:1]
    validation["deep_ensemble"] = _accuracy(members, *data[1], 1)
    for kind in predictors:
        print(
            f"[adversarial_robustness] trained {kind}: val {validation[kind]:.3f}",
            file=sys.stderr,
            flush=True,
        )
    return widths, predictors, validation


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--widths", default="10,20,200", help="c1,c2,d (paper: 20,50,500)"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--members", type=int, default=5, help="deep ensemble size")
    parser.add_argument("--epsilons", default="0,0.05,0.1,0.15,0.2,0.3")
    parser.add_argument("--pgd-epsilons", default="0.1")
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--attack-samples", type=int, default=10, help="K of EOT")
    parser.add_argument("--eval-samples", type=int, default=20)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--num-train", type=int, default=None, help="first K digits")
    parser.add_argument("--validation", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-dir", default=DEFAULT_CHECKPOINT_DIR)
    parser.add_argument("--output-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--name", default="adversarial_robustness")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    env = _common.environment()
    data, (x_test, y_test) = load_data(args.num_train, args.validation, args.num_test)
    widths, predictors, validation = train_all(args, data, len(data[0][0]))
    os.makedirs(args.checkpoint_dir, exist_ok=True)
    for kind in ("variance", "flipout", "deterministic"):
        predictors[kind][0].save_weights(
            os.path.join(args.checkpoint_dir, f"{kind}.weights.h5")
        )
    settings = {
        "widths": widths,
        "epochs": args.epochs,
        "members": args.members,
        "epsilons": _floats(args.epsilons),
        "pgd_epsilons": _floats(args.pgd_epsilons),
        "pgd_steps": args.pgd_steps,
        "attack_samples": args.attack_samples,
        "eval_samples": args.eval_samples,
        "num_test": len(x_test),
        "num_train": len(data[0][0]),
        "validation": len(data[1][0]),
        "seed": args.seed,
    }
    results = attack_all(predictors, x_test, y_test, settings, args.seed)
    payload = {
        "benchmark": "adversarial_robustness",
        "environment": env,
        "versions": _common.versions(),
        "settings": settings,
        "validation_accuracy": validation,
        "results": results,
        "checkpoint_dir": os.path.relpath(args.checkpoint_dir),
        "seconds": time.perf_counter() - start,
    }
    _common.write_outputs(args.output_dir, args.name, payload, _markdown(payload), plot)
    return payload


if __name__ == "__main__":
    main()
