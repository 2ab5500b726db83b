"""A user's own TensorFlow training function: plain tf.distribute under the strategy scaletrain set up."""

import tensorflow as tf


def main(ctx, steps: int = 20, lr: float = 0.1):
    strategy = ctx.strategy.tf_strategy  # MirroredStrategy or MultiWorkerMirroredStrategy, ready to use
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        weight = tf.Variable(0.0, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    start = 0
    state = ctx.load_checkpoint()
    if state is not None:
        weight.assign(float(state["weight"]))
        start = state["step"]

    @tf.function
    def train_step():
        def replica():
            # Replica r pulls towards 2 + 2r / (R - 1): the average pull is towards 3 only if gradients are averaged.
            r = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
            target = 2.0 + 2.0 * r / max(replicas - 1, 1)
            grad = 2.0 * (weight - target) / replicas
            summed = tf.distribute.get_replica_context().all_reduce("sum", grad)
            weight.assign_sub(lr * summed)
            return tf.square(weight - target)

        return strategy.reduce("mean", strategy.run(replica), axis=None)

    for step in range(start + 1, steps + 1):
        loss = train_step()
        ctx.log({"loss": float(loss)}, step)
    ctx.save_checkpoint({"weight": weight.numpy()}, steps)
    return {"weight": float(weight.numpy()), "rank_seen": ctx.rank, "replicas_seen": replicas}
