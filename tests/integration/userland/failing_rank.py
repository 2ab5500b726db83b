"""A user's function that trains through scaletrain's driver (DDP's all-reduce in every step) and raises on one rank
at a given step: the other ranks then fail inside a collective, and the launcher must name this rank, not them."""

from scaletrain.rank.loops import driver
from scaletrain.rank.loops.torch_stepper import TorchStepper
from scaletrain.workloads import synthetic


def main(ctx, fail_rank: int = 1, fail_step: int = 20):
    config = synthetic.Config(num_samples=2048, input_dim=16, width=32, depth=2)
    stepper = TorchStepper(ctx, synthetic.PLUGIN.build("torch", config, ctx.job.seed))
    if ctx.rank == fail_rank:
        step, done = stepper.train_step, [0]

        def failing_step(batch):
            done[0] += 1
            if done[0] == fail_step:
                raise ValueError(f"a bad batch on rank {ctx.rank}")
            return step(batch)

        stepper.train_step = failing_step
    return driver.train(ctx, stepper)
