"""Noise on a layer's inputs (Keras groups its dropout layers under `layers/regularization`)."""
