"""A framework-neutral user function that uses every part of the RunContext: the same under every strategy."""


def main(ctx):
    ctx.save_checkpoint({"probe": [1.0, 2.0]}, 1)  # through the strategy's own checkpoint format
    ctx.log({"probe": 1.0}, 1)
    every = ctx.job.checkpoint.stop_check_every_n_steps or ctx.job.train.log_every_n_steps
    stop_agreed = ctx.should_stop(every)  # a collective at a check step: every rank calls it
    return {
        "context_type": type(ctx).__name__,
        "api": sorted(name for name in dir(ctx) if not name.startswith("_")),
        "world_size_seen": ctx.world_size,
        "stop_agreed": stop_agreed,
    }
