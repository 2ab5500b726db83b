"""A framework-neutral user function whose logged loss turns NaN at step 3, after a checkpoint at step 2."""


def main(ctx):
    for step, loss in enumerate([0.5, 0.25, float("nan"), 0.1], start=1):
        if step == 2:
            ctx.save_checkpoint({"step_state": [float(step)]}, step)
        ctx.log({"loss": loss}, step)
    return {"trained": True}
