"""What the package needs to know about multi-device training (TensorFlow).

Under `tf.distribute` strategies (`MirroredStrategy`,
`MultiWorkerMirroredStrategy`) each replica runs the train step on its part
of the global batch, with mirrored variables: seed generator states are the
same on every replica. `keras_stochastic.rng` folds `replica()`'s id into
every draw's seed, so replicas draw independent weight noise and flipout
signs (replica 0, and any single-device run, draws exactly what it drew
before). `GradientNoise` uses `num_replicas()` and `all_reduce_sum` to give
the *global* gradient the noise of DESIGN section 5 whatever the replica
count. `scope(model)` enters the strategy a model was compiled under, for
state that callbacks create when `fit` was called outside `strategy.scope()`.

On JAX, `keras.distribution.DataParallel` shards the global batch of one
compiled step: draws are global arrays, so every example already gets its
own signs and noise, and gradients are global; nothing here applies.
"""

import contextlib

import keras


def _is_tensorflow():
    return keras.backend.backend() == "tensorflow"


def replica():
    """`(replica id tensor, number of replicas)` inside a multi-replica step, else None."""
    if not _is_tensorflow():
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group, context.num_replicas_in_sync


def has_strategy():
    """Whether a `tf.distribute` strategy other than the default one is in use."""
    if not _is_tensorflow():
        return False
    import tensorflow as tf

    return tf.distribute.has_strategy()


def num_replicas():
    """The number of replicas of the current step (1 outside a multi-replica step)."""
    found = replica()
    return 1 if found is None else found[1]


def all_reduce_sum(values):
    """`values` (a list of tensors) summed over replicas (unchanged on one replica)."""
    if replica() is None:
        return values
    import tensorflow as tf

    return tf.distribute.get_replica_context().all_reduce(
        tf.distribute.ReduceOp.SUM, values
    )


def scope(model):
    """The scope of the strategy `model` was compiled under (a no-op if already in it)."""
    if not _is_tensorflow():
        return contextlib.nullcontext()
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or tf.distribute.has_strategy():
        return contextlib.nullcontext()
    return strategy.scope()
