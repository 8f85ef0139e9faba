"""The recurrent family: stochastic cells and the layers that loop them (Keras's `layers/rnn`)."""
