"""The Dense family (Keras groups it under `layers/core`)."""
