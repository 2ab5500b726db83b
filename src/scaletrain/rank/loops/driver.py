"""The one training driver every built-in run goes through, whatever the framework: the cadence of training.

Steps and epochs, log windows with the loss averaged over ranks, validation at each epoch's end, checkpoints
every N steps and at the end, the ranks' agreement to stop, resume at the exact step, and the summary. Everything
that touches a framework is the stepper's (``rank/loops/stepper.py``), so a feature written here reaches every strategy.
"""

from __future__ import annotations

import logging
import statistics
import time
from typing import Any

from scaletrain.common.alpha_beta import FIT_QUANTILE, fit_alpha_beta_range, quantile
from scaletrain.rank import flops, metrics
from scaletrain.rank.context import RunContext
from scaletrain.rank.loops.nonfinite import NonFiniteGuard
from scaletrain.rank.loops.progress import Progress, log_done
from scaletrain.rank.loops.stepper import Stepper
from scaletrain.rank.metrics import ThroughputMeter
from scaletrain.rank.stragglers import StragglerDetector, own_times

log = logging.getLogger("scaletrain")


def train(ctx: RunContext, stepper: Stepper) -> dict[str, Any] | None:
    """Train on this rank until the last step or an agreed stop; returns the figures for summary.json, or None when
    a resume finds the run already at its last step (its summary is the finished run's, and stays)."""
    cfg = ctx.job.train
    total_steps = stepper.steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    step = start_step = _resume(ctx, stepper)
    if start_step >= total_steps and start_step > 0:
        if ctx.is_rank_zero:
            log.info("nothing left to train: the checkpoint is at step %d of %d; summary.json is the finished run's "
                     "(raise train.epochs or train.max_steps to train on)", start_step, total_steps)  # fmt: skip
        return None
    stepper.start(step)
    beacon = ctx.beacon  # where this rank is, for the launcher's hang watchdog: two attribute stores a phase
    window = LogWindow(ctx, stepper, total_steps, step)
    last_loss, last_checkpoint_step, validated = None, step, None
    first_step_unix_s, started = None, time.perf_counter()
    stopped = False
    while step < total_steps and not stopped:
        epoch, skip = divmod(step, stepper.steps_per_epoch)
        batches = stepper.batches(epoch, skip)
        while step < total_steps:
            beacon.at("data")
            fetch_started = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            data_s = time.perf_counter() - fetch_started
            beacon.at("compute")  # the gradient all-reduce runs inside it (DDP's hooks, the compiled TF/XLA step)
            last_loss = stepper.train_step(batch)
            window.add(batch, last_loss, time.perf_counter() - fetch_started, data_s)
            step += 1
            beacon.step = step
            first_step_unix_s = first_step_unix_s or time.time()
            votes = None  # every rank's stop request rides on the log step's loss reduction: no extra collective
            if step % cfg.log_every_n_steps == 0 or step == total_steps:
                beacon.at("communication")
                votes = window.report(step, epoch)
            if ctx.job.checkpoint.every_n_steps and step % ctx.job.checkpoint.every_n_steps == 0:
                beacon.at("checkpoint")
                window.check_before_checkpoint(step)
                ctx.save_checkpoint(stepper.state(), step)
                last_checkpoint_step = step
            if step < total_steps and ctx.should_stop(step, votes):  # e.g. SLURM's warning signal: all ranks agree
                stopped = True
                break
        if not stopped and step % stepper.steps_per_epoch == 0 and stepper.has_validation:
            beacon.at("validation")
            validated = (step, stepper.evaluate())
            ctx.log({"epoch": epoch, **validated[1]}, step)
    window.close()
    beacon.at("checkpoint")
    if last_checkpoint_step != step:
        window.check_before_checkpoint(step)
        ctx.save_checkpoint(stepper.state(), step)
    if stopped:
        if ctx.is_rank_zero:
            log.info("stop requested: checkpoint of step %d of %d written to %s", step, total_steps, ctx.checkpoint_dir)
        return {"steps": step, "stopped_at_step": step}
    elapsed_s = time.perf_counter() - started
    run = {"steps": (start_step, step), "elapsed_s": elapsed_s, "first_step_unix_s": first_step_unix_s}
    summary = _summary(ctx, stepper, window, run | {"last_loss": last_loss}, validated)
    if ctx.is_rank_zero:
        log_done(summary)
    return summary


class LogWindow:
    """The steps since the last log step: their loss handles (reduced over the ranks at the log step, and checked
    for a non-finite loss there), this rank's step, data and wait seconds (for the straggler detector), and the
    run's throughput meter."""

    def __init__(self, ctx: RunContext, stepper: Stepper, total_steps: int, step: int) -> None:
        self.ctx, self.stepper = ctx, stepper
        # MFU: rank 0 logs it; its device's peak is looked up or measured (once per host) before the meter starts
        self.peak = stepper.peak() if ctx.is_rank_zero and stepper.flops_per_sample else None
        self.meter = ThroughputMeter(stepper.replicas, stepper.measures_comm)  # its first window starts now
        self.progress = Progress(ctx.is_rank_zero, total_steps, step)
        self.stragglers = _detector(ctx, stepper)
        self.guard = NonFiniteGuard(ctx, stepper)
        self.losses: list[Any] = []
        self.own_s = [0.0, 0.0, 0.0]  # step, data, exposed communication

    def add(self, batch: Any, loss: Any, step_s: float, data_s: float) -> None:
        self.losses.append(loss)
        comm_s, exposed_comm_s = self.stepper.comm_times()
        self.meter.add_step(self.stepper.samples(batch), data_s, comm_s, exposed_comm_s)
        own = self.own_s
        self.own_s = [own[0] + step_s, own[1] + data_s, own[2] + exposed_comm_s]

    def report(self, step: int, epoch: int) -> list[float] | None:
        """Reduce the window over the ranks, log its figures and start a new one; returns every rank's stop vote."""
        stepper, steps = self.stepper, len(self.losses)
        row = tuple(seconds / steps for seconds in self.own_s) if self.stragglers else ()
        loss, votes, rows = stepper.reduce_window(self.losses, self.ctx.stop_vote(), row)
        self.guard.check(loss, self.losses, step)
        compiled = stepper.compile_stats()  # cumulative; the window's compile time is not step time
        figures = {"epoch": epoch, "loss": loss, **stepper.window_figures()}
        figures.update({**self.meter.read(compiled.get("compile_time_s", 0.0)), **compiled})
        figures.update(self.utilisation(figures))
        if self.stragglers:
            figures.update(_straggler_figures(self.stragglers, rows, stepper.measures_comm, steps))
        self.ctx.log(figures, step)
        self.progress.update(step, figures)
        self.losses, self.own_s = [], [0.0, 0.0, 0.0]
        return votes

    def utilisation(self, rates: dict[str, float]) -> dict[str, float]:
        """FLOP/s per device and MFU at the rates of a window or of the run."""
        if "samples_per_s_per_device" not in rates:
            return {}
        return flops.utilisation(self.stepper.flops_per_sample, rates["samples_per_s_per_device"], self.peak)

    def check_before_checkpoint(self, step: int) -> None:
        """No checkpoint of a diverged model: steps not yet reduced at a log step are reduced now (one collective,
        only when the checkpoint step is not a log step)."""
        if self.losses:
            self.guard.check(self.stepper.reduce_window(self.losses, 0.0)[0], self.losses, step, window=False)

    def close(self) -> None:
        self.progress.close()


def _summary(
    ctx: RunContext, stepper: Stepper, window: LogWindow, run: dict[str, Any], validated: tuple[int, dict] | None
) -> dict[str, Any]:
    """The figures of a run that reached its last step. ``run``: first and last step, seconds, the first step's
    time, the last loss handle; ``validated``: (step, figures) of the last validation."""
    (start_step, step), cfg = run["steps"], ctx.job.train
    summary: dict[str, Any] = {
        "replicas": stepper.replicas,
        **metrics.run_summary(step, start_step, cfg.epochs, stepper.steps_per_epoch, run["elapsed_s"]),
        **window.meter.totals(),
        **window.utilisation(window.meter.totals()),
        "comm_measured": stepper.measures_comm,
        **stepper.measurements(),
    }
    if stepper.flops_per_sample:
        summary["flops_per_sample"] = stepper.flops_per_sample
    if window.peak is not None:
        summary.update(peak_flops_per_s=window.peak.flops_per_s, peak_flops_source=window.peak.source)
    if run["first_step_unix_s"] is not None:
        summary["first_step_unix_s"] = run["first_step_unix_s"]
    if run["last_loss"] is not None:
        summary["final_loss"] = stepper.reduce_window([run["last_loss"]], 0.0)[0]
    if window.stragglers:
        summary["stragglers"] = window.stragglers.summary()
    if window.guard.windows:  # train.on_nonfinite=warn trained on through them
        summary["nonfinite_loss_windows"] = window.guard.windows
    if ctx.job.scaling.measure_allreduce and stepper.replicas > 1:
        summary["allreduce"] = allreduce_benchmark(ctx, stepper)
    if stepper.has_validation:
        summary.update(validated[1] if validated and validated[0] == step else stepper.evaluate())
    if ctx.is_rank_zero:
        summary.update(stepper.report())
    summary.update(stepper.compile_stats())
    return summary


def _detector(ctx: RunContext, stepper: Stepper) -> StragglerDetector | None:
    """The straggler detector of a multi-process run (the same decisions on every rank), else None."""
    if ctx.world_size < 2:
        return None
    cfg = ctx.job.watchdog
    return StragglerDetector(stepper.hosts(), cfg.straggler_slowdown, cfg.straggler_windows)


def _straggler_figures(
    detector: StragglerDetector, rows: list[list[float]], wait_measured: bool, steps: int
) -> dict[str, Any]:
    """The log window's per-rank own step times and the ranks named as stragglers now (metrics.jsonl, W&B)."""
    own_s = own_times(rows, wait_measured)
    named = detector.update(own_s, steps, span_s=max(step_s for step_s, _, _ in rows) * steps)
    figures: dict[str, Any] = {"own_step_time_s": {f"rank_{rank}": value for rank, value in enumerate(own_s)}}
    if named:
        figures["stragglers"] = [{"rank": s.rank, "host": s.host, "slowdown": s.slowdown} for s in named]
    return figures


def _resume(ctx: RunContext, stepper: Stepper) -> int:
    """The step to start from: the latest checkpoint's when this run resumes, else 0."""
    state = ctx.load_checkpoint()
    if state is None:
        return 0
    stepper.restore(state)
    return int(state["step"])


def allreduce_benchmark(ctx: RunContext, stepper: Stepper) -> dict[str, Any]:
    """Time all-reduces of several sizes on the training collectives and fit the α-β model with its range
    (scaling.model.fit_alpha_beta_range: a low quantile of the repeats per size, a bootstrap over them)."""
    cfg = ctx.job.scaling
    started = time.perf_counter()
    sizes = list(cfg.allreduce_sizes_bytes)
    repeats: list[list[float]] = [[] for _ in sizes]
    for round_ in range(cfg.allreduce_repeats + 2):  # two warm-up rounds
        # Interleaved: every round times each size once, so a busy spell on the host slows all sizes alike
        # instead of the one being timed (which would tilt the fit's line).
        for i, nbytes in enumerate(sizes):
            t = stepper.allreduce_time_s(nbytes)
            if round_ >= 2:
                # The collective ends for everyone when it ends for the slowest rank: a repeat's time is the largest.
                repeats[i].append(max(stepper.per_rank(t)))
    medians = [statistics.median(r) for r in repeats]
    fitted = fit_alpha_beta_range(cfg.allreduce_sizes_bytes, repeats, stepper.replicas)
    fit = fitted.fit
    return {
        "sizes_bytes": list(cfg.allreduce_sizes_bytes),
        "median_time_s": medians,
        "time_s": [quantile(r, FIT_QUANTILE) for r in repeats],  # what the fit used
        "time_quantile": FIT_QUANTILE,
        "repeats": cfg.allreduce_repeats,
        "alpha_s": fit.alpha_s,
        "beta_s_per_byte": fit.beta_s_per_byte,
        "bandwidth_gbit_per_s": fit.bandwidth_gbit_per_s,
        "alpha_s_low": fitted.alpha_s_low,
        "alpha_s_high": fitted.alpha_s_high,
        "beta_s_per_byte_low": fitted.beta_s_per_byte_low,
        "beta_s_per_byte_high": fitted.beta_s_per_byte_high,
        "devices": stepper.replicas,
        "measure_time_s": time.perf_counter() - started,  # timing and fitting, all sizes and repeats
    }
