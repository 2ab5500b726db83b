"""Progress shown by rank 0, shared by every training loop: a bar in a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from scaletrain.contract.rank_env import PROGRESS

log = logging.getLogger("scaletrain")


def fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def log_done(summary: dict[str, Any]) -> None:
    hidden = ("first_step_unix_s", "replica_fingerprints", "peak_rss_mib")
    shown = {k: v for k, v in summary.items() if k not in hidden}
    log.info("done: %s", ", ".join(f"{k}={fmt(v)}" for k, v in shown.items()))


def _stragglers(named: list[dict[str, Any]]) -> str:
    return "; ".join(f"rank {s['rank']} on {s['host']} ({s['slowdown']:.2f}x the others' own step time)" for s in named)


class Progress:
    """A progress bar on rank 0 in an interactive terminal; plain log lines otherwise.

    Plain lines come at most every ``line_every_s`` seconds (and always for the last step): a tiny model's log steps
    can be milliseconds apart, and each line travels through the launcher's output relay. Every log step's figures
    still go to metrics.jsonl and the tracker; only the console is thinned.
    """

    def __init__(self, is_rank_zero: bool, total_steps: int, initial: int, line_every_s: float = 1.0) -> None:
        self.total_steps = total_steps
        self.line_every_s = line_every_s
        self.last_line_s: float | None = None
        self.bar = None
        self.enabled = is_rank_zero
        self.stragglers: set[int] = set()  # the ranks named in the last window, warned about once
        if self.enabled and os.environ.get(PROGRESS) == "1":
            from tqdm import tqdm

            self.bar = tqdm(total=total_steps, initial=initial, unit="step", ncols=100, mininterval=0.5)

    def update(self, step: int, figures: dict[str, Any]) -> None:
        if not self.enabled:
            return
        named = figures.get("stragglers", [])
        if {s["rank"] for s in named} - self.stragglers:
            log.warning("straggler at step %d: %s", step, _stragglers(named))
        self.stragglers = {s["rank"] for s in named}
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            mfu = {"mfu": f"{100 * figures['mfu']:.1f}%"} if "mfu" in figures else {}
            self.bar.set_postfix(loss=f"{figures['loss']:.4g}", sps=f"{figures['samples_per_s']:.0f}", **mfu)
            return
        now_s = time.monotonic()
        if step < self.total_steps and self.last_line_s is not None and now_s - self.last_line_s < self.line_every_s:
            return
        self.last_line_s = now_s
        log.info(
            "step %d/%d epoch %d loss %.6g samples_per_s %.1f step_time_s %.6f%s%s",
            step,
            self.total_steps,
            figures["epoch"],
            figures["loss"],
            figures["samples_per_s"],
            figures["step_time_s"],
            f" mfu {100 * figures['mfu']:.2f}%" if "mfu" in figures else "",
            f" straggler: {_stragglers(named)}" if named else "",
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
