"""Callbacks for training stochastic and pruned models."""

from keras_stochastic.callbacks.kl_annealing import KLAnnealing

__all__ = ["KLAnnealing"]
