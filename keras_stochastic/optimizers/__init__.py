"""Optimizer wrappers."""

from keras_stochastic.optimizers.gradient_noise import GradientNoise

__all__ = ["GradientNoise"]
