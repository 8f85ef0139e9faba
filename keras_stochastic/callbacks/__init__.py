"""Callbacks for training stochastic and pruned models."""

from keras_stochastic.callbacks.flipout_pruning import FlipOutPruning
from keras_stochastic.callbacks.kl_annealing import KLAnnealing
from keras_stochastic.callbacks.phase_transition_monitor import PhaseTransitionMonitor

__all__ = [
    "FlipOutPruning",
    "KLAnnealing",
    "PhaseTransitionMonitor",
]
