"""Time from a frozen rank to the job's end: the hang watchdog's report against the collective timeout alone.

    .venv/bin/python benchmarks/hang_report_time.py [--repeats N] [--quick] [--launcher local|ray]

A 2-rank job (ddp, or mirrored with --strategy mirrored) trains; once it has logged step 20, rank 1 is frozen
with SIGSTOP and the clock runs until the job has ended. "watchdog" runs with watchdog.hang_timeout_s=10 and names
the frozen rank; "timeout only" runs with the watchdog off and strategy.timeout_s=30 (ddp: gloo's collective
timeout; the default is 300 s), so the healthy rank fails and is blamed. Medians over interleaved rounds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import _common as c

HANG_TIMEOUT_S = 10
COLLECTIVE_TIMEOUT_S = 30
JOB = ("workload=synthetic", "workload.num_samples=4096", "workload.width=256", "workload.depth=3",
       "train.global_batch_size=64", "train.epochs=1000", "train.log_every_n_steps=5")  # fmt: skip
LAUNCHERS = {"local": ("launcher.nproc_per_node=2",), "ray": ("launcher=ray", "launcher.nproc=2")}


def frozen_run(strategy: str, launcher: str, watchdog: bool, env: dict[str, str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="hang-bench-") as tmp:
        run_dir = Path(tmp) / "run"
        extra = (f"watchdog.hang_timeout_s={HANG_TIMEOUT_S}",) if watchdog else ("watchdog.enabled=false",)
        if strategy == "ddp":
            extra += (f"strategy.timeout_s={COLLECTIVE_TIMEOUT_S}",)
        cmd = [c.PYTHON, "-m", "scaletrain", f"hydra.run.dir={run_dir}", f"+strategy={strategy}", *JOB,
               *LAUNCHERS[launcher], *extra]  # fmt: skip
        proc = subprocess.Popen(cmd, cwd=c.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            pid = _rank_1_pid(run_dir, proc)
            os.kill(pid, signal.SIGSTOP)
            frozen = time.perf_counter()
            output, _ = proc.communicate(timeout=COLLECTIVE_TIMEOUT_S * 12)
            ended_s = time.perf_counter() - frozen
        finally:
            proc.kill()
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, UnboundLocalError):
                pass
        named = "wait for rank 1 on" in output
        return {"to_end_s": ended_s, "named_rank_1": float(named), "exit_code": float(proc.returncode)}


def _rank_1_pid(run_dir: Path, proc: subprocess.Popen) -> int:
    """Rank 1's pid once rank 0 logged step 20 (local: its beacon or /proc; ray: ray_ranks.json)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stdout.read()[-3000:])
        metrics = run_dir / "metrics.jsonl"
        steps = [json.loads(x)["step"] for x in metrics.read_text().splitlines() if x] if metrics.exists() else []
        if steps and max(steps) >= 20:
            placed = run_dir / "ray_ranks.json"
            if placed.exists():
                return next(r["pid"] for r in json.loads(placed.read_text()) if r["rank"] == 1)
            for pid in map(int, Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()):
                if b"RANK=1" in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    return pid
        time.sleep(0.1)
    raise RuntimeError("rank 1 never reached step 20")


def main() -> None:
    def extra(parser):
        parser.add_argument("--launcher", choices=sorted(LAUNCHERS), default="local")
        parser.add_argument("--strategy", choices=("ddp", "mirrored"), default="ddp")

    args = c.parse_args(__doc__.splitlines()[0], repeats=5, quick_repeats=1, extra=extra)
    env = c.bench_env(1)
    res = c.interleave(
        {
            "watchdog": lambda _: frozen_run(args.strategy, args.launcher, True, env),
            "timeout only": lambda _: frozen_run(args.strategy, args.launcher, False, env),
        },
        args.repeats,
    )
    rows = [
        [name, c.median([r["to_end_s"] for r in runs]), c.spread([r["to_end_s"] for r in runs]),
         f"{sum(r['named_rank_1'] for r in runs):.0f}/{len(runs)}", sorted({int(r['exit_code']) for r in runs})]
        for name, runs in res.items()
    ]  # fmt: skip
    print(c.table(["alternative", "freeze → end, median s", "range s", "named rank 1", "exit codes"], rows))
    ratio = c.paired_ratio(res["timeout only"], res["watchdog"], "to_end_s")
    print(f"\n{args.strategy} under {args.launcher}: the watchdog ends a frozen job {ratio:.2f}x sooner "
          f"(hang_timeout_s={HANG_TIMEOUT_S}; collective timeout {COLLECTIVE_TIMEOUT_S} s)")  # fmt: skip


if __name__ == "__main__":
    main()
