"""What a NaN or infinite loss does (``train.on_nonfinite``): it is found where the loss is already read, the log
window's reduction over the ranks (a non-finite loss on any rank makes the mean non-finite), and before every
checkpoint, so a diverged model is never checkpointed. Only then is each rank's own loss read, to say where."""

from __future__ import annotations

import logging
import math
from typing import Any

from scaletrain.contract.errors import NonFiniteLossError
from scaletrain.rank import checkpoint
from scaletrain.rank.loops.stepper import Stepper

log = logging.getLogger("scaletrain")


def kind(value: float) -> str:
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def last_good_checkpoint(directory) -> str:
    """Where to resume from, in words."""
    path = checkpoint.latest(directory)
    if path is None:
        return "no checkpoint was written before it"
    return f"the last good checkpoint is step {checkpoint.step_of(path)} in {directory}"


def stop_error(cause: str, checkpoint_dir) -> NonFiniteLossError:
    """The one sentence that ends a run under train.on_nonfinite=stop: what happened, and where to resume from."""
    return NonFiniteLossError(
        f"{cause} (train.on_nonfinite=stop); {last_good_checkpoint(checkpoint_dir)}: resume from it with resume=true "
        "and a smaller train.lr, or set train.on_nonfinite=warn to train on."
    )


class NonFiniteGuard:
    """Checks a log window's reduced loss; every rank calls it with the same value, so all agree on what follows."""

    def __init__(self, ctx: Any, stepper: Stepper) -> None:
        self.ctx, self.stepper = ctx, stepper
        ctx._loss_guarded = True  # the driver's windows are checked here, with step and rank: not again in ctx.log
        self.policy = ctx.job.train.on_nonfinite
        self.windows = 0  # log windows whose loss was not finite (warn)
        self._said = False  # where it happened was found and said (on every rank alike)

    def check(self, loss: float, losses: list[Any], last_step: int, window: bool = True) -> None:
        """``loss``: the mean over steps and ranks of a log window (``window``) or of the steps before a
        checkpoint; ``losses``: this rank's handles of those steps, the last of which is ``last_step``. Raises
        NonFiniteLossError under stop (exit 4); logs the first one under warn."""
        if math.isfinite(loss):
            return
        if window:
            self.windows += 1
        if self._said:  # warn: said once; every rank skips the collective below alike
            return
        self._said = True
        step, ranks = self._where(losses, last_step)
        on = f"rank {ranks[0]}" if len(ranks) == 1 else f"ranks {', '.join(map(str, ranks))}"
        where = f"at step {step} on {on}" if ranks else f"by step {last_step}"
        if self.policy == "stop":
            raise stop_error(f"the loss became {kind(loss)} {where}", self.ctx.checkpoint_dir)
        if self.ctx.is_rank_zero:
            log.warning("the loss became %s %s (train.on_nonfinite=warn): training goes on; metrics.jsonl records "
                        "the loss as null", kind(loss), where)  # fmt: skip

    def _where(self, losses: list[Any], last_step: int) -> tuple[int, list[int]]:
        """The first step whose loss was not finite, and the ranks where it was (one small collective: every rank
        is here, since they all read the same mean)."""
        values = self.stepper.local_losses(losses)
        first = next((last_step - len(values) + 1 + i for i, v in enumerate(values) if not math.isfinite(v)), 0)
        bad = {rank: int(s) for rank, s in enumerate(self.stepper.per_rank(float(first))) if s}
        if not bad:
            return last_step, []
        step = min(bad.values())
        return step, sorted(rank for rank, s in bad.items() if s == step)
