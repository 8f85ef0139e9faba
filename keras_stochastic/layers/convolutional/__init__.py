"""The convolution family, rank-generic (Keras's `layers/convolutional`)."""
