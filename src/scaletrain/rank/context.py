"""RunContext: what a training function gets on each rank — who it is, how to report, how to checkpoint."""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scaletrain.contract import atomic, jsonfile
from scaletrain.contract.beacon import Beacon
from scaletrain.contract.config import Job
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.contract.summary import RunSummary
from scaletrain.rank import checkpoint, flops, stopping, tracking
from scaletrain.rank.metrics import ThroughputMeter
from scaletrain.rank.model_size import model_size
from scaletrain.rank.strategies.base import Strategy

log = logging.getLogger("scaletrain")


class NullBeacon:
    """The beacon of a rank nobody watches: the training loop's calls cost one method call."""

    step = 0

    def at(self, phase: str, step: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def _logged_step(row: str) -> int:
    """The step of one metrics.jsonl line; a line cut short by a crash counts as past every step."""
    try:
        return int(json.loads(row)["step"])
    except (ValueError, KeyError, TypeError):
        return 2**63


class RunContext:
    """Per-rank handle given to built-in loops and to user training functions alike."""

    def __init__(self, job: Job, env: ClusterEnv, strategy: Strategy, restart_count: int = 0) -> None:
        self.job = job
        self.env = env
        self.strategy = strategy
        self.restart_count = restart_count
        self.output_dir = Path(job.output_dir)
        self.checkpoint_dir = Path(job.checkpoint.dir)
        self.stopped_at_step: int | None = None  # set when the ranks agreed to stop early (should_stop)
        self._metrics_file = None
        self.tracker: tracking.WandbRun | None = None
        self.beacon: Beacon | NullBeacon = NullBeacon()  # where this rank is, for the launcher's hang watchdog
        self._meter: ThroughputMeter | None = None  # a user loop's steps, once it marks them (step_done)
        self._steps_marked = 0
        self._model_figures: dict[str, int] | None = None  # a user loop's model size, once given to step_done
        self._loss_guarded = False  # the training driver checks the loss itself (rank/loops/nonfinite.py)
        self._nonfinite_warned = False
        if self.is_rank_zero:
            for stale in checkpoint.prepare_dir(self.checkpoint_dir):  # a write killed in an earlier attempt
                log.info("removed %s, left by a checkpoint write that was killed", stale)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._metrics_file = open(self.output_dir / "metrics.jsonl", "a", buffering=1)  # noqa: SIM115
            self.tracker = tracking.start(job, env.world_size, resume=self.should_resume)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_rank_zero(self) -> bool:
        return self.env.rank == 0

    @property
    def should_resume(self) -> bool:
        """True when this run continues earlier work: resume=true, or a restart after a failure."""
        return self.job.resume or self.restart_count > 0

    def step_done(self, samples: int, model: Any = None) -> None:
        """Mark one optimizer step of your own training loop that trained ``samples`` samples over every rank.

        Call it on every rank after each step: the run's summary then has its throughput and step time
        (``samples_per_s``, ``step_time_s``), so a scaling sweep of your function measures its efficiency. The
        first ``train.log_every_n_steps`` steps (start-up) are left out of the steady-state figures. Pass your
        ``model`` (a torch module, DDP-wrapped or not, or a Keras model; read once) and the summary also gets its
        ``num_parameters`` and ``gradient_bytes``, from which a sweep predicts the all-reduce's cost.
        """
        if model is not None and self._model_figures is None:
            self._model_figures = model_size(model)
        if self._meter is None:
            self._meter = ThroughputMeter(self._replicas(), measures_comm=False)  # a user loop's collectives: untimed
        self._meter.add_step(samples)
        self._steps_marked += 1
        self.beacon.step = self._steps_marked  # the hang watchdog watches a marked loop too
        if self._steps_marked % self.job.train.log_every_n_steps == 0:
            self._meter.read()  # closes a window: the first one (start-up) stays out of the totals

    def _replicas(self) -> int:
        return getattr(self.strategy, "num_replicas", None) or self.world_size * getattr(
            self.strategy, "devices_per_process", 1
        )

    def stop_vote(self) -> float:
        """1.0 if this rank was asked to stop, else 0.0: for a loop that sums it in one of its own collectives."""
        return 1.0 if stopping.requested() else 0.0

    def should_stop(self, step: int, votes: float | None = None) -> bool:
        """True on every rank at the same ``step`` once any rank was asked to stop (SLURM's warning signal before a
        time limit or preemption). Call it after every step, on every rank: every
        ``checkpoint.stop_check_every_n_steps``-th step (default: every ``train.log_every_n_steps``-th) it is a
        one-number collective, the other calls cost nothing. On True, save a checkpoint of ``step`` and return;
        the rank then exits with ``ExitCode.STOPPED``. A loop that already summed every rank's ``stop_vote()``
        at this step (the torch loop packs it into its loss all-reduce) passes the sum as ``votes``: no collective.
        """
        every = self.job.checkpoint.stop_check_every_n_steps
        if every is None:
            every = self.job.train.log_every_n_steps
        if every == 0 or step % every:
            return False
        agreed = votes > 0 if votes is not None else self.strategy.any_rank(stopping.requested())
        if agreed:
            self.stopped_at_step = step
            return True
        return False

    def log(self, metrics: Mapping[str, Any], step: int) -> None:
        """Record metrics for ``step`` (rank 0 writes them; other ranks' calls are no-ops). A non-finite ``loss``
        ends the run under train.on_nonfinite=stop (NonFiniteLossError, exit 4), and is recorded as null."""
        if self._metrics_file is None:
            return
        if not self._loss_guarded:  # the training driver checks its own windows, with the step and rank
            self._check_logged_loss(metrics.get("loss"), step)
        record = {"step": step, "time_unix_s": time.time(), "attempt": self.restart_count, **metrics}
        self._metrics_file.write(jsonfile.dumps(record) + "\n")
        if self.tracker is not None:
            self.tracker.log(metrics, step)

    def save_checkpoint(self, state: Mapping[str, Any], step: int) -> Path | None:
        """Rank 0 writes ``state`` atomically as the checkpoint of ``step``; other ranks return None."""
        if not self.is_rank_zero:
            return None
        payload = {**state, "step": step}
        path = checkpoint.save(
            self.checkpoint_dir,
            step,
            lambda f: self.strategy.save_state(payload, f),
            keep_last=self.job.checkpoint.keep_last,
            size={"processes": self.world_size, "replicas": self._replicas()},  # what a resume's pre-flight checks
        )
        log.debug("checkpoint saved: %s", path)
        return path

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The latest checkpoint's state when this run resumes, else None. Every rank reads the same file."""
        if not self.should_resume:
            return None
        path = checkpoint.latest(self.checkpoint_dir)
        if path is None:
            return None
        try:
            with open(path, "rb") as f:
                state = self.strategy.load_state(f)
        except Exception as exc:  # a format error surfaces as any of several types, per framework and library
            raise ConfigError(
                f"the checkpoint {path} cannot be read by +strategy={self.job.strategy.name} "
                f"({type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'no detail'}): "
                "it was written by another framework or is damaged; resume with the strategy that wrote it, or "
                "point checkpoint.dir elsewhere."
            ) from None
        log.info("resumed from %s (step %d)", path, state["step"])
        self._forget_metrics_after(int(state["step"]))
        return state

    def _forget_metrics_after(self, step: int) -> None:
        """Drop metrics.jsonl rows past the checkpoint's step: the resumed attempt logs those steps again, so each
        step appears once, with the figures of the attempt that finished it."""
        if self._metrics_file is None:
            return
        self._metrics_file.close()
        path = self.output_dir / "metrics.jsonl"
        rows = path.read_text().splitlines(keepends=True)
        kept = [row for row in rows if _logged_step(row) <= step]
        if len(kept) != len(rows):
            atomic.write(path, "".join(kept))
            log.info(
                "metrics.jsonl: %d row(s) past step %d, from the interrupted attempt, replaced",
                len(rows) - len(kept),
                step,
            )
        self._metrics_file = open(path, "a", buffering=1)  # noqa: SIM115

    def _check_logged_loss(self, loss: Any, step: int) -> None:
        try:
            value = float(loss)
        except (TypeError, ValueError):
            return  # no loss logged, or not a number
        if math.isfinite(value):
            return
        from scaletrain.rank.loops.nonfinite import kind, stop_error

        if self.job.train.on_nonfinite == "stop":
            raise stop_error(f"the loss logged at step {step} is {kind(value)}", self.checkpoint_dir)
        if not self._nonfinite_warned:
            self._nonfinite_warned = True
            log.warning("the loss logged at step %d is %s (train.on_nonfinite=warn): metrics.jsonl records it as "
                        "null", step, kind(value))  # fmt: skip

    def write_summary(self, figures: Mapping[str, Any]) -> None:
        """Rank 0 writes summary.json: this run's identity, then ``figures`` (the loop's or a user function's)."""
        if not self.is_rank_zero:
            return
        summary = RunSummary(
            workload=self.job.workload.name,
            strategy=self.job.strategy.name,
            framework=self.strategy.framework,
            processes=self.world_size,
            global_batch_size=self.job.train.global_batch_size,
            attempt=self.restart_count,
        )
        if self._meter is not None:  # a user loop that marked its steps: measured unless it reported its own
            if self._steps_marked % self.job.train.log_every_n_steps:
                self._meter.read()  # the last, partial window
            totals = self._meter.totals()
            summary.update({"steps": self._steps_marked, **totals, **(self._model_figures or {})})
            summary.update(self._utilisation(totals))
        summary.update(dict(figures))
        if self.tracker is not None:
            summary.wandb_run_id = self.tracker.id
            self.tracker.summary(jsonfile.strict(summary.to_dict()))  # W&B's API refuses NaN too
        summary.write(self.output_dir)

    def _utilisation(self, totals: dict[str, float]) -> dict[str, Any]:
        """MFU of a user loop that marked its steps, from the FLOPs per sample it states (train.flops_per_sample:
        scaletrain cannot see inside its step to count them) against its device's peak."""
        flops_per_sample = self.job.train.flops_per_sample
        if not flops_per_sample or "samples_per_s_per_device" not in totals:
            return {}
        peak = self._peak()
        figures: dict[str, Any] = {"flops_per_sample": flops_per_sample}
        if peak is not None:
            figures.update(peak_flops_per_s=peak.flops_per_s, peak_flops_source=peak.source)
        return {**figures, **flops.utilisation(flops_per_sample, totals["samples_per_s_per_device"], peak)}

    def _peak(self) -> flops.Peak | None:
        train = self.job.train
        if stated := flops.stated_peak(train):
            return stated
        if self.strategy.framework == "torch":
            from scaletrain.rank.loops import torch_flops

            return torch_flops.device_peak(self.strategy.device, train.precision, self.strategy.devices_per_process)
        from scaletrain.rank.loops import tf_flops

        return tf_flops.device_peak(self.strategy.tf_strategy, train.precision)

    def close(self, exit_code: int = 0) -> None:
        if self._metrics_file is not None:
            self._metrics_file.close()
            self._metrics_file = None
        if self.tracker is not None:
            self.tracker.finish(exit_code)
            self.tracker = None
