"""Command-line pieces shared by the tests that interrupt, kill or restart a real job."""

from __future__ import annotations

# A two-rank-friendly synthetic DDP job: 64 steps per epoch of a few ms each, checkpointed every 20 steps.
SYNTHETIC_DDP = (
    "+strategy=ddp",
    "workload=synthetic",
    "workload.num_samples=4096",
    "workload.width=256",
    "workload.depth=3",
    "train.global_batch_size=64",
    "train.epochs=2",
    "train.log_every_n_steps=5",
    "checkpoint.every_n_steps=20",
    "seed=3",
)

# Appended by tests that only interrupt the job, so that a fast machine cannot finish it before the interruption
# lands (a later override of the same key wins).
ENDLESS = ("train.epochs=1000",)

# Appended by tests that kill the job mid-run and let it restart to the end: 512 steps, so a kill at step 45 lands
# well before the end on any machine.
LONGER = ("train.epochs=8",)
