"""Benchmarks of keras_stochastic; run each as `python -m benchmarks.<name>`."""
