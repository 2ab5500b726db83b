"""A user's function that trains a model through scaletrain's own training driver, with one rank slowed by a sleep
in every step: a straggler made from inside, as a slower device (``phase="compute"``) or a slow data loader
(``phase="data"``) makes one."""

import time

from scaletrain.rank.loops import driver
from scaletrain.workloads import synthetic


def main(ctx, slow_rank: int = 1, sleep_s: float = 0.02, phase: str = "compute", width: int = 64):
    task_config = synthetic.Config(num_samples=4096, input_dim=width // 2, width=width, depth=2)
    if ctx.strategy.framework == "torch":
        from scaletrain.rank.loops.torch_stepper import TorchStepper as Stepper
    else:
        from scaletrain.rank.loops.tf_stepper import TFStepper as Stepper
    stepper = Stepper(ctx, synthetic.PLUGIN.build(ctx.strategy.framework, task_config, ctx.job.seed))
    if ctx.rank == slow_rank and sleep_s > 0:
        if phase == "compute":
            step = stepper.train_step

            def slow_step(batch):
                time.sleep(sleep_s)
                return step(batch)

            stepper.train_step = slow_step
        else:
            batches = stepper.batches

            def slow_batches(epoch, skip):
                for batch in batches(epoch, skip):
                    time.sleep(sleep_s)
                    yield batch

            stepper.batches = slow_batches
    return driver.train(ctx, stepper)
