"""The learning-rate schedule of the managed loops (``train.lr_schedule``, ``train.warmup_steps``): the factor the
base rate is multiplied by at each optimizer step, one formula for every framework. PyTorch sets it on the
optimizer's parameter groups before each step; Keras reads it as a ``LearningRateSchedule`` of the optimizer's own
step counter. Either way it is a function of the optimizer step alone, so a resume at step N continues it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scaletrain.contract.errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    kind: str = "constant"  # constant | cosine | linear | step, after the warm-up
    warmup_steps: int = 0  # the rate rises linearly to its base over these first steps
    total_steps: int = 1  # cosine and linear decay end here (then stay at the floor)
    min_ratio: float = 0.0  # cosine and linear: the floor, as a fraction of the base rate
    step_every: int = 1  # step: the rate is multiplied by step_gamma every this many steps after the warm-up
    step_gamma: float = 0.1

    @classmethod
    def of(cls, train: Any, epoch_steps: int) -> Schedule:
        """The schedule ``train`` (TrainConfig) asks for; cosine and linear decay over train.schedule_steps, else
        over the epochs' steps (train.max_steps stops a run early but does not shorten its schedule)."""
        schedule = cls(
            kind=train.lr_schedule,
            warmup_steps=train.warmup_steps,
            total_steps=train.schedule_steps or epoch_steps,
            min_ratio=train.min_lr_ratio,
            step_every=train.lr_step_every_n_steps or 1,
            step_gamma=train.lr_step_gamma,
        )
        if schedule.kind in ("cosine", "linear") and schedule.warmup_steps >= schedule.total_steps:
            raise ConfigError(
                f"train.warmup_steps={schedule.warmup_steps} leaves none of the run's {schedule.total_steps} steps "
                "to decay over; use fewer warm-up steps, more epochs or train.schedule_steps."
            )
        return schedule

    @property
    def varies(self) -> bool:
        """False for a constant rate: nothing to set at each step."""
        return self.kind != "constant" or self.warmup_steps > 0

    def factor(self, step: int) -> float:
        """The multiplier of the base rate for optimizer step ``step`` (0: the first update)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        after = step - self.warmup_steps
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.step_gamma ** (after // self.step_every)
        progress = min(1.0, after / max(1, self.total_steps - self.warmup_steps))
        shape = 0.5 * (1.0 + math.cos(math.pi * progress)) if self.kind == "cosine" else 1.0 - progress
        return self.min_ratio + (1.0 - self.min_ratio) * shape
