"""Callbacks for training stochastic and pruned models."""

from keras_stochastic.callbacks.kl_annealing import KLAnnealing
from keras_stochastic.callbacks.phase_transition_monitor import PhaseTransitionMonitor

__all__ = [
    "KLAnnealing",
    "PhaseTransitionMonitor",
]
