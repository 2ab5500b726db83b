"""The parity matrix: every strategy gets every capability of the one training driver, each cell a real run.

Rows are the four ways scaletrain trains data-parallel on this machine; columns are the capabilities the README's
matrix lists. The cheapest run that proves each cell: y = 2x + 1 (``workload=linear``), 3 steps an epoch.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import child_env, ranks_catching, scaletrain_argv
from wandb_files import offline_runs, read_run

from scaletrain.rank.loops.schedule import Schedule

pytestmark = [pytest.mark.slow]

USERLAND = Path(__file__).parent / "userland"
# y = 2x + 1 with the managed loop's optimizer features on, so that every cell proves them too: a warm-up and cosine
# decay of the learning rate (it must resume exactly), and clipping by the global gradient norm (active early on).
# A global batch of 4: two samples per device, so that a run can also accumulate them one at a time (ACCUMULATE).
LINEAR = ("workload=linear", "seed=4", "train.global_batch_size=4", "train.lr_schedule=cosine", "train.warmup_steps=30",
          "train.clip_grad_norm=5")  # fmt: skip
# Stop votes every 10 steps, and a resume can only start from the stop request's checkpoint.
STOPPABLE = (*LINEAR, "train.log_every_n_steps=10", "checkpoint.every_n_steps=0")
# Every framework logs these each window; the communication split only where it is measured (docs/operations.md).
CORE_METRICS = {"epoch", "loss", "samples_per_s", "samples_per_s_per_device", "step_time_s", "data_time_s",
                "compute_time_s", "lr", "grad_norm", "flops_per_s_per_device", "mfu"}  # fmt: skip
MEASURED_ONLY = {"comm_time_s", "exposed_comm_s", "comm_fraction", "compiles", "compile_time_s"}
# A resume after a pause longer than the hang timeout must not be judged by the earlier run's beacons (issue 27):
# the runs before such a resume use this short timeout, and the resume comes after PAUSE_S.
SHORT_HANG_TIMEOUT = ("watchdog.hang_timeout_s=5",)
BF16 = ("train.precision=bf16",)  # the Ray and SLURM columns' runs: mixed precision learns under every strategy
# Each device's 2 samples of a step as 2 micro-batches of 1: the same optimizer steps as the whole batch at once
ACCUMULATE = ("train.micro_batch_size=1",)
PAUSE_S = 6.0


@dataclass(frozen=True)
class Row:
    strategy: tuple[str, ...]  # the strategy's own overrides
    local: tuple[str, ...]  # how launcher=local runs it
    ray: tuple[str, ...]
    slurm: tuple[str, ...]
    processes: int
    marks: tuple = ()
    # Whether its resumes come after a pause past a short hang timeout: one ddp and one mirrored row, the cheapest
    # that proves it for each framework's watchdog path on each launcher.
    resumed_later: bool = False
    says: str = ""  # a line rank 0 logs: which of the framework's strategies runs it

    def pause_before_resume(self) -> tuple[str, ...]:
        """The overrides of the runs before and at a resume (a short hang timeout), when the row is resumed later."""
        return SHORT_HANG_TIMEOUT if self.resumed_later else ()


ROWS = {
    "ddp-2-ranks": Row(
        ("+strategy=ddp",),
        ("launcher.nproc_per_node=2",),
        ("launcher.nproc=2",),
        ("launcher.nodes=2",),
        2,
        resumed_later=True,
    ),
    "mirrored-1-process-2-devices": Row(
        ("+strategy=mirrored", "strategy.cpu_devices=2"),
        ("launcher.nproc_per_node=1",),
        ("launcher.nproc=1",),
        ("launcher.nodes=1",),
        1,
        (pytest.mark.tf,),
        resumed_later=True,
        says="MirroredStrategy: 2 replica(s) in sync",
    ),
    "mirrored-2-processes": Row(
        ("+strategy=mirrored",),
        ("launcher.nproc_per_node=2",),
        ("launcher.nproc=2",),
        ("launcher.nodes=2",),
        2,
        (pytest.mark.tf,),
        says="MultiWorkerMirroredStrategy: 2 replica(s) in sync",
    ),
    "xla-2-cpu-devices": Row(
        ("+strategy=xla", "strategy.device=CPU", "strategy.num_devices=2"),
        (),
        ("launcher.nproc=1",),
        ("launcher.nodes=1",),
        1,
        (pytest.mark.xla,),
    ),
}
PARAMS = [pytest.param(row, id=name, marks=row.marks) for name, row in ROWS.items()]


def _local(row: Row, *overrides: str) -> tuple[str, ...]:
    return (*row.strategy, *row.local, *overrides)


def _run(run_dir: Path, *overrides: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    argv = scaletrain_argv(run_dir, *overrides)
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=child_env(), timeout=timeout)


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _assert_learned(summary: dict) -> None:
    assert summary["weight"] == pytest.approx(2.0, abs=0.05) and summary["bias"] == pytest.approx(1.0, abs=0.1)
    assert summary["replicas"] == 2  # two devices in sync in every row


_WHOLE: dict[tuple[str, ...], Path] = {}  # a row's uninterrupted run, shared by the tests that read it


@pytest.fixture
def whole(row: Row, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The row's uninterrupted run of y = 2x + 1, logged to W&B offline: run once, then read by every test here that
    needs it (what it learned and logged; the result a cut and resumed run must end with). Logging to W&B reads the
    figures rank 0 already has and changes nothing in training, so the cut runs compare with it without logging."""
    key = _local(row)
    if key not in _WHOLE:
        run_dir = tmp_path_factory.mktemp("whole") / "run"
        done = _run(run_dir, *_local(row, *LINEAR, "logger=wandb", "logger.mode=offline"), cwd=run_dir.parent)
        assert done.returncode == 0, done.stdout + done.stderr
        _WHOLE[key] = run_dir
    return _WHOLE[key]


@pytest.mark.parametrize("row", PARAMS)
def test_learns_and_logs_one_wandb_run_with_the_shared_metric_names(row: Row, whole: Path) -> None:
    summary = _summary(whole)
    _assert_learned(summary)
    (path,) = offline_runs(whole)  # one run, from rank 0 only
    wb = read_run(path)
    names = {key for h in wb.history if "loss" in h for key in h if not key.startswith("_")}
    per_process = {f"own_step_time_s/rank_{rank}" for rank in range(row.processes)} if row.processes > 1 else set()
    assert CORE_METRICS | per_process <= names and names - CORE_METRICS - per_process <= MEASURED_ONLY, names
    # one straggler check per process (whether it names a rank here depends on what else runs on the machine)
    assert isinstance(summary.get("stragglers"), list) if row.processes > 1 else summary.get("stragglers") is None
    assert wb.summary["final_loss"] == pytest.approx(summary["final_loss"])
    assert len(summary["peak_rss_mib"]) == row.processes and min(summary["peak_rss_mib"]) > 100  # each process's
    assert summary["strategy"] == row.strategy[0].removeprefix("+strategy=")
    assert summary["precision"] == "fp32" and summary["compute_dtype"] == "float32"
    # y = wx + b: per sample, 2 FLOPs forward and 2 for the weight's gradient (counted, in either framework)
    assert (
        summary["flops_per_sample"] == 4
        and 0 < summary["mfu"] < 1
        and summary["peak_flops_source"].startswith("measured: ")
    )
    assert summary["processes"] == row.processes and len(set(summary["replica_fingerprints"])) == 1
    assert summary["samples_per_s_per_device"] == pytest.approx(summary["samples_per_s"] / 2)  # 2 devices in each row
    assert sorted(p.name for p in (whole / "logs").iterdir()) == [f"rank_{r}.log" for r in range(row.processes)]
    assert row.says in (whole / "logs" / "rank_0.log").read_text()
    logged = [m for m in read_metrics(whole) if "loss" in m]
    assert logged[-1]["loss"] < 1e-3 < logged[0]["loss"]
    # the logged rate follows the warm-up and the cosine to ~0 at the last step; the first window was clipped
    steps = summary["steps"]
    expected = [0.02 * Schedule("cosine", 30, steps).factor(m["step"] - 1) for m in logged]
    assert [m["lr"] for m in logged] == pytest.approx(expected, rel=1e-5, abs=1e-9)
    assert logged[0]["grad_norm"] > 5 > logged[-1]["grad_norm"]
    assert (whole / "checkpoints" / f"step_{summary['steps']:09d}.ckpt").is_file()  # the last step's, at the end


@pytest.mark.parametrize("row", PARAMS)
def test_cut_run_resumes_to_the_uninterrupted_result(row: Row, whole: Path, tmp_path: Path) -> None:
    """A run cut at step 100 (mid-epoch), resumed from its checkpoint, ends where an uninterrupted run does, though it
    computes each device's share of a step in two micro-batches and the uninterrupted run at once (accumulation gives
    the large batch's result); for ddp and mirrored the resume comes after a pause longer than the (short) hang
    timeout, and no earlier beacon makes it a false hang."""
    watched = (*row.pause_before_resume(), *ACCUMULATE)
    cut = _run(tmp_path / "cut", *_local(row, *LINEAR, "train.max_steps=100", *watched), cwd=tmp_path)
    assert cut.returncode == 0, cut.stdout + cut.stderr
    assert _summary(tmp_path / "cut")["steps"] == 100
    if row.resumed_later:
        time.sleep(PAUSE_S)
    resumed = _run(tmp_path / "cut", *_local(row, *LINEAR, "resume=true", *watched), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "hang:" not in resumed.stdout + resumed.stderr
    assert "(step 100)" in resumed.stdout + resumed.stderr
    _assert_same_result(_summary(tmp_path / "cut"), _summary(whole))
    rates = {m["step"]: m["lr"] for m in read_metrics(whole) if "lr" in m}  # the schedule resumed where it stood
    resumed_rates = [(m["step"], m["lr"]) for m in read_metrics(tmp_path / "cut") if "lr" in m and m["step"] > 100]
    assert resumed_rates and all(
        lr == pytest.approx(rates[step], rel=1e-6) for step, lr in resumed_rates if step in rates
    )
    summary = _summary(tmp_path / "cut")
    assert (summary["accumulation_steps"], summary["micro_batch_size"]) == (2, 1)
    assert _summary(whole)["accumulation_steps"] == 1
    if row.resumed_later:  # the same command once more: nothing left to train, the finished summary unchanged
        finished = _summary(tmp_path / "cut")
        again = _run(tmp_path / "cut", *_local(row, *LINEAR, "resume=true", *watched), cwd=tmp_path)
        assert again.returncode == 0 and "nothing left to train" in again.stdout + again.stderr, again.stderr
        assert _summary(tmp_path / "cut") == finished


def _assert_same_result(resumed: dict, whole: dict) -> None:
    assert resumed["steps"] == whole["steps"]
    for key in ("final_loss", "weight", "bias"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-5, abs=1e-6), key
    assert resumed["replica_fingerprints"] == pytest.approx(whole["replica_fingerprints"], rel=1e-5)


@pytest.mark.parametrize("row", PARAMS)
def test_stop_request_checkpoints_at_one_agreed_step_and_resumes(row: Row, whole: Path, tmp_path: Path) -> None:
    """SIGUSR1 to the last rank only (as SLURM's warning would reach one of them first), sent as soon as that rank
    catches it, so the stop lands at the first vote whatever the machine's speed: every rank stops at that step,
    exit 75, and a resume ends with the uninterrupted result. (A signal that lands mid-run: test_slurm_launcher.)"""
    run_dir = tmp_path / "run"
    argv = scaletrain_argv(run_dir, *_local(row, *STOPPABLE))
    launcher = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                                env=child_env())  # fmt: skip
    try:
        ranks = ranks_catching(run_dir, row.processes, signal.SIGUSR1, alive=lambda: launcher.poll() is None)
        os.kill(ranks[-1], signal.SIGUSR1)
        output, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    assert launcher.returncode == 75, output
    stopped = [line for line in output.splitlines() if "stop requested: checkpoint of step" in line]
    assert len(stopped) == 1, output  # rank 0 reports the step every rank agreed on
    assert "checkpoint of step 10 " in stopped[0], stopped  # the first stop vote (every 10 steps)
    assert (run_dir / "checkpoints" / "step_000000010.ckpt").is_file()
    resumed = _run(run_dir, *_local(row, *STOPPABLE, "resume=true"), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "(step 10)" in resumed.stdout + resumed.stderr
    _assert_same_result(_summary(run_dir), _summary(whole))  # logging and checkpoint settings change no weight


@pytest.mark.parametrize("row", PARAMS)
def test_sweep_writes_measured_and_predicted_efficiency(row: Row, tmp_path: Path) -> None:
    sweep = (*row.strategy, *LINEAR, "train.epochs=20", "train.warmup_steps=5", "scaling.device_counts=[1,2]",
             "scaling.per_device_batch_size=2", "scaling.allreduce_repeats=2")  # fmt: skip
    done = _run(tmp_path / "sweep", *sweep, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with open(tmp_path / "sweep" / "scaling.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["devices"] for r in rows] == ["1", "2"]
    assert all(float(r["efficiency"]) > 0 and float(r["predicted_efficiency"]) > 0 for r in rows), rows
    assert json.loads((tmp_path / "sweep" / "scaling.json").read_text())["alpha_beta"]["fitted_at_devices"] == 2


@pytest.mark.parametrize("row", PARAMS)
def test_user_function_gets_the_same_run_context(row: Row, tmp_path: Path) -> None:
    probe = ("workload=function", "workload.fn._target_=context_probe.main")
    done = _run(tmp_path / "run", *_local(row, *probe), cwd=USERLAND)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = _summary(tmp_path / "run")
    assert summary["context_type"] == "RunContext"
    assert summary["api"] == [
        "beacon", "checkpoint_dir", "close", "env", "is_rank_zero", "job", "load_checkpoint", "log", "output_dir",
        "rank", "restart_count", "save_checkpoint", "should_resume", "should_stop", "step_done", "stop_vote",
        "stopped_at_step", "strategy", "tracker", "world_size", "write_summary",
    ]  # fmt: skip
    assert summary["world_size_seen"] == row.processes and summary["stop_agreed"] is False
    assert (tmp_path / "run" / "checkpoints" / "step_000000001.ckpt").is_file()


def _runs_then_resumes_later(row: Row, tmp_path: Path, *launcher: str) -> None:
    """The row learns under ``launcher`` in mixed bf16 (the forward pass computes in bfloat16, weights stay fp32),
    accumulating micro-batches; for ddp and mirrored, the finished run is then extended by 10 epochs with resume=true
    after a pause past its short hang timeout, in the same directory, with no false hang."""
    watched = (*row.pause_before_resume(), *BF16, *ACCUMULATE)
    done = _run(tmp_path / "run", *row.strategy, *launcher, *LINEAR, *watched, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = _summary(tmp_path / "run")
    assert summary["processes"] == row.processes
    assert summary["precision"] == "bf16" and summary["compute_dtype"] == "bfloat16"
    assert summary["accumulation_steps"] == 2
    _assert_learned(summary)
    if not row.resumed_later:
        return
    time.sleep(PAUSE_S)
    later = _run(tmp_path / "run", *row.strategy, *launcher, *LINEAR, *watched, "resume=true", "train.epochs=160",
                 cwd=tmp_path)  # fmt: skip
    assert later.returncode == 0 and "hang:" not in later.stdout + later.stderr, later.stdout + later.stderr
    assert _summary(tmp_path / "run")["steps"] == summary["steps"] * 160 // 150  # 10 more epochs


@pytest.mark.ray
@pytest.mark.parametrize("row", PARAMS)
def test_ray_launcher_runs_it_and_resumes_it_later(row: Row, tmp_path: Path, local_ray_cluster) -> None:
    """On the session's two-node Ray cluster (a Ray the launcher starts itself: test_ray_launcher.py)."""
    _runs_then_resumes_later(row, tmp_path, "launcher=ray", f"launcher.address={local_ray_cluster.address}", *row.ray)


@pytest.mark.slurm
@pytest.mark.parametrize("row", PARAMS)
def test_slurm_launcher_runs_it_and_resumes_it_later(row: Row, tmp_path: Path) -> None:
    _runs_then_resumes_later(row, tmp_path, "launcher=slurm", *row.slurm, "launcher.wait=true")
