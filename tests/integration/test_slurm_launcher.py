"""scaletrain on the real local SLURM cluster (slurm/local-cluster.sh): the sbatch scripts, launcher=slurm,
requeue on the warning signal, real preemption, and pre-flight failures that submit nothing."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import child_env, ranks_catching, scaletrain_argv
from job_args import SYNTHETIC_DDP
from slurm_jobs import (
    REPO,
    capture_envs,
    job_state,
    run,
    sacct_history,
    submitted_with_name,
    wait_for_step,
    wait_gone,
    wait_idle,
)
from wandb_files import offline_runs, read_run

from scaletrain.contract.env import detect, slurm_master_port

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# Long enough to be interrupted mid-run even on an idle machine (1024 steps of a few ms); no periodic checkpoint,
# so a resume can only start from the checkpoint written on the stop request.
WORKLOAD = (*SYNTHETIC_DDP, "train.epochs=16", "checkpoint.every_n_steps=100000")  # later overrides win


@pytest.fixture(autouse=True)
def _idle_cluster() -> None:
    wait_idle()


def _cli(run_dir: Path, *overrides: str, cwd: Path, env: dict | None = None, timeout: float = 300):
    argv = scaletrain_argv(run_dir, *overrides)
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=child_env(env), timeout=timeout)


def _submit(run_dir: Path, *overrides: str, cwd: Path, env: dict | None = None) -> str:
    """launcher=slurm on 2 nodes without waiting; returns the job id it reported."""
    done = _cli(run_dir, "launcher=slurm", "launcher.nodes=2", *overrides, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = (run_dir / "slurm_job_id").read_text().strip()
    assert f"submitted SLURM job {job_id}" in done.stdout + done.stderr
    return job_id


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """WORKLOAD uninterrupted: 2 local ranks, the same world size as the 2-node SLURM jobs."""
    tmp = tmp_path_factory.mktemp("reference")
    done = _cli(tmp / "run", *WORKLOAD, "launcher.nproc_per_node=2", cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads((tmp / "run" / "summary.json").read_text())


def _assert_resumed_to_reference(run_dir: Path, job_id: str, reference: dict) -> str:
    """The job's log shows a stop checkpoint at step N > 0 and a resume from exactly N; the result is the reference."""
    log = (run_dir / f"slurm-{job_id}.out").read_text()
    stopped = re.search(r"stop requested: checkpoint of step (\d+) of (\d+)", log)
    assert stopped, log
    step = int(stopped[1])
    assert 0 < step < reference["steps"]
    assert f"resumed from {run_dir}/checkpoints/step_{step:09d}.ckpt (step {step})" in log
    assert f"scaletrain: job {job_id} (restart 1)" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] >= 1 and summary["steps"] == reference["steps"]
    assert summary["final_loss"] == pytest.approx(reference["final_loss"], rel=1e-6, abs=1e-7)
    assert summary["replica_fingerprints"] == pytest.approx(reference["replica_fingerprints"], rel=1e-6)
    # Both runs wrote into the same run directory: checkpoints (and a W&B run id file kept there) survive.
    attempts = {json.loads(line)["attempt"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()}
    assert attempts == {0, 1}
    return log


def test_sbatch_script_trains_linear_across_two_nodes(tmp_path: Path) -> None:
    env = child_env({"SCALETRAIN_PYTHON": sys.executable})
    done = run("sbatch", "--parsable", str(REPO / "slurm" / "ddp.sbatch"), "+strategy=ddp", "workload=linear",
               env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip().split(";")[0]
    wait_gone(job_id)
    log = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert "(SLURM_NODEID 0, SLURM_LOCALID 0)" in log and "rank 0 of 2 on n1" in log, log
    assert "(SLURM_NODEID 1, SLURM_LOCALID 0)" in log and "rank 1 of 2 on n2" in log, log
    summary = json.loads((tmp_path / "outputs" / f"slurm-{job_id}" / "summary.json").read_text())
    assert summary["processes"] == 2
    assert summary["weight"] == pytest.approx(2.0, abs=0.05)
    assert summary["bias"] == pytest.approx(1.0, abs=0.1)
    assert sacct_history(job_id) == [("COMPLETED", "0:0")]


def test_launcher_slurm_waits_streams_the_log_and_passes_overrides_verbatim(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    weird = tmp_path / "ck it's $(touch pwned1) `touch pwned2`; touch pwned3 | cat"
    secret = {"WANDB_API_KEY": f"secret-{uuid.uuid4().hex}"}
    done = _cli(run_dir, "launcher=slurm", "launcher.nodes=2", "launcher.wait=true", "+strategy=ddp",
                "workload=linear", f'checkpoint.dir="{weird}"', cwd=tmp_path, env=secret)  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job_id = (run_dir / "slurm_job_id").read_text().strip()
    assert f"job {job_id} completed" in out
    # the job's log, streamed while waiting: one rank on each node
    assert "rank 0 of 2 on n1 (SLURM_NODEID 0" in out and "rank 1 of 2 on n2 (SLURM_NODEID 1" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["weight"] == pytest.approx(2.0, abs=0.05)
    assert (weird / "step_000000450.ckpt").is_file()  # the value reached the ranks verbatim
    assert not list(tmp_path.rglob("pwned*"))
    assert secret["WANDB_API_KEY"] not in (run_dir / "submit.sbatch").read_text()


def test_multirun_submits_one_job_per_point(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    argv = [sys.executable, "-m", "scaletrain", "-m", f"hydra.sweep.dir={sweep}", "launcher=slurm", "+strategy=ddp",
            "workload=linear", "train.epochs=20", "seed=0,1"]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, env=child_env(), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = [(sweep / str(i) / "slurm_job_id").read_text().strip() for i in (0, 1)]
    assert len(set(jobs)) == 2
    for i, job_id in enumerate(jobs):
        wait_gone(job_id)
        assert json.loads((sweep / str(i) / "job.json").read_text())["seed"] == i
        assert json.loads((sweep / str(i) / "summary.json").read_text())["steps"] == 60
    # the comparison is a job of its own, after every run's job: nobody has to run it by hand
    compare = re.search(r"comparison job (\d+)", done.stdout + done.stderr)[1]
    assert f"--dependency=afterany:{':'.join(jobs)}\n" in (sweep / "compare.sbatch").read_text()
    wait_gone(compare)
    assert sacct_history(compare) == [("COMPLETED", "0:0")]
    table = (sweep / "comparison.md").read_text()
    assert "| seed=0 " in table and "| seed=1 " in table


SWEEP = (
    "launcher=slurm",
    "+strategy=ddp",
    "workload=linear",
    "scaling.device_counts=[2]",
    "scaling.allreduce_repeats=3",
)


def test_scaling_sweep_submits_sized_points_and_an_analysis_job_that_reports_to_wandb(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = _cli(sweep, *SWEEP, "launcher.wait=true", "logger=wandb", cwd=tmp_path, env={"WANDB_MODE": "offline"})
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    ids = [(sweep / f"devices_{n}" / "slurm_job_id").read_text().strip() for n in (1, 2)]
    assert "#SBATCH --nodes=1\n" in (sweep / "devices_1" / "submit.sbatch").read_text()
    second = (sweep / "devices_2" / "submit.sbatch").read_text()
    assert "#SBATCH --nodes=2\n" in second and f"#SBATCH --dependency=afterany:{ids[0]}\n" in second
    assert f"--dependency=afterany:{ids[0]}:{ids[1]}\n" in (sweep / "analyse.sbatch").read_text()
    # both points and the analysis job ran on the cluster; the table came back through the analysis job's log
    assert "rank 1 of 2 on n2" in out and "| devices | global batch |" in out and "α-β fit at N=2" in out
    result = json.loads((sweep / "scaling.json").read_text())
    assert [(r["devices"], r["status"]) for r in result["rows"]] == [(1, "ok"), (2, "ok")]
    assert result["rows"][1]["efficiency"] > 0 and (sweep / "scaling.png").is_file()
    runs = [read_run(p) for p in offline_runs(sweep)]
    summary_runs = [r for r in runs if "scaling_table/nrows" in r.summary]
    assert len(runs) == 3 and len(summary_runs) == 1 and len({r.group for r in runs}) == 1
    assert sorted(r.config["devices"] for r in runs if r not in summary_runs) == [1, 2]
    assert {r.config["launcher"] for r in runs if r not in summary_runs} == {"slurm"}


def test_a_cancelled_point_is_a_failed_row_and_the_sweep_can_be_analysed_again(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done = _cli(sweep, *SWEEP, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    analysis = re.search(r"then analysis job (\d+)", done.stdout + done.stderr)[1]
    second = (sweep / "devices_2" / "slurm_job_id").read_text().strip()
    assert run("scancel", second).returncode == 0  # still pending: it waits for the first point
    wait_gone(analysis)
    assert sacct_history(analysis) == [("FAILED", "1:0")]  # one point failed: the analysis says so in its code
    text = (sweep / "scaling.md").read_text()
    assert "| 1 | 2 |" in text and "| 2 (failed) |" in text
    assert f"Failed: 2 device(s): SLURM job {second} ended CANCELLED" in text
    # python -m scaletrain.scaling DIR re-analyses it (here after the directory moved, and with a point removed)
    moved = tmp_path / "moved"
    sweep.rename(moved)
    again = subprocess.run([sys.executable, "-m", "scaletrain.scaling", str(moved), "--no-wandb"],
                           capture_output=True, text=True, env=child_env(), timeout=120)  # fmt: skip
    assert again.returncode == 1, again.stdout + again.stderr
    assert "| 2 (failed) |" in again.stdout
    assert (moved / "scaling.md").read_text() == text.replace(str(sweep), str(moved))  # the same, where it is now
    (moved / "devices_1" / "summary.json").unlink()
    again = subprocess.run([sys.executable, "-m", "scaletrain.scaling", str(moved)],
                           capture_output=True, text=True, env=child_env(), timeout=120)  # fmt: skip
    assert again.returncode == 2 and "no point left a summary.json" in again.stderr


def test_usr1_checkpoints_requeues_and_resumes_to_the_uninterrupted_result(tmp_path: Path, reference: dict) -> None:
    run_dir = tmp_path / "run"
    job_id = _submit(run_dir, *WORKLOAD, "logger=wandb", "logger.mode=offline", cwd=tmp_path)
    wait_for_step(run_dir / "metrics.jsonl", 20)
    assert run("scancel", "--batch", "--signal=USR1", job_id).returncode == 0
    wait_gone(job_id)
    log = _assert_resumed_to_reference(run_dir, job_id, reference)
    assert f"requeueing job {job_id} (restart 1 of at most 10)" in log
    assert sacct_history(job_id) == [("REQUEUED", "0:0"), ("COMPLETED", "0:0")]
    # The requeued run continues the same W&B run: both attempts' offline files carry one id, kept with the checkpoint.
    runs = [read_run(p) for p in offline_runs(run_dir)]
    assert len(runs) == 2 and runs[0].run_id == runs[1].run_id
    assert (run_dir / "checkpoints" / "wandb_run_id").read_text().strip() == runs[0].run_id


# The other strategies' rows of the parity matrix: mirrored over the 2 nodes (MultiWorkerMirrored, one process
# each), xla on one node (XLA's CPU device serves one process). y = 2x + 1, stop votes every 10 steps. SLURM's
# signal is sent once every rank catches it, so it lands at the first vote however fast the steps are (a signal
# that lands mid-run: the ddp test above).
STOP_ANY = ("workload=linear", "seed=4", "train.log_every_n_steps=10")
STOP_ANY += ("checkpoint.every_n_steps=0",)  # a resume can only start from the checkpoint of the stop request
OTHER_STRATEGIES = {  # (strategy, local, slurm, rank processes)
    "mirrored": (("+strategy=mirrored",), ("launcher.nproc_per_node=2",), ("launcher.nodes=2",), 2),
    "xla": (("+strategy=xla", "strategy.device=CPU", "strategy.num_devices=2"), (), ("launcher.nodes=1",), 1),
}


@pytest.mark.parametrize(
    "name", [pytest.param("mirrored", marks=pytest.mark.tf), pytest.param("xla", marks=pytest.mark.xla)]
)
def test_usr1_stops_requeues_and_resumes_tensorflow_and_xla_jobs(tmp_path: Path, name: str) -> None:
    strategy, local, slurm, processes = OTHER_STRATEGIES[name]
    done = _cli(tmp_path / "reference", *strategy, *local, *STOP_ANY, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    reference = json.loads((tmp_path / "reference" / "summary.json").read_text())
    run_dir = tmp_path / "run"
    done = _cli(run_dir, "launcher=slurm", *slurm, *strategy, *STOP_ANY, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = (run_dir / "slurm_job_id").read_text().strip()
    ranks_catching(run_dir, processes, signal.SIGUSR1, alive=lambda: job_state(job_id) in ("PENDING", "RUNNING"))
    assert run("scancel", "--batch", "--signal=USR1", job_id).returncode == 0
    wait_gone(job_id)
    _assert_resumed_to_reference(run_dir, job_id, reference)
    assert sacct_history(job_id) == [("REQUEUED", "0:0"), ("COMPLETED", "0:0")]


def test_preemption_by_a_higher_priority_partition_ends_resumed_and_finished(tmp_path: Path, reference: dict) -> None:
    run_dir = tmp_path / "run"
    victim = _submit(run_dir, *WORKLOAD, cwd=tmp_path)
    wait_for_step(run_dir / "metrics.jsonl", 20)
    urgent = run("sbatch", "--parsable", "--partition=urgent", "--nodes=2", "--exclusive", "--output=/dev/null",
                 "--job-name=st-urgent", "--wrap", "sleep 1")  # fmt: skip
    assert urgent.returncode == 0, urgent.stderr
    wait_gone(victim, timeout=240)
    wait_gone(urgent.stdout.strip())
    log = _assert_resumed_to_reference(run_dir, victim, reference)
    assert "SIGUSR1 received" in log  # SLURM's preemption warning, sent through --signal=B:USR1
    history = sacct_history(victim)
    assert history[0][0] in ("REQUEUED", "PREEMPTED") and history[-1] == ("COMPLETED", "0:0"), history


def test_missing_scontrol_inside_the_job_is_reported(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"  # the job's PATH: srun, but no scontrol
    bin_dir.mkdir()
    (bin_dir / "srun").symlink_to("/usr/bin/srun")
    env = child_env({"PATH": str(bin_dir), "SCALETRAIN_PYTHON": sys.executable, "SCALETRAIN_RUN_DIR": "run"})
    done = run("/usr/bin/sbatch", "--parsable", str(REPO / "slurm" / "ddp.sbatch"), *WORKLOAD, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.strip()
    wait_for_step(tmp_path / "run" / "metrics.jsonl", 10)
    run("scancel", "--batch", "--signal=USR1", job_id)
    wait_gone(job_id)
    log = (tmp_path / f"slurm-{job_id}.out").read_text()
    assert "scaletrain: error: scontrol is not on PATH inside the job, so it cannot requeue itself; " in log
    assert sacct_history(job_id) == [("FAILED", "75:0")]
    assert list((tmp_path / "run" / "checkpoints").glob("step_*.ckpt"))  # the checkpoint to resume from is there


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        (("launcher.partition=nope",), None, "launcher.partition=nope does not exist on this cluster; choose one of: "
         "debug, urgent."),
        (("launcher.nodes=3", "train.global_batch_size=6"), None,
         "launcher.nodes=3 is more than the 2 node(s) of the default partition debug;"),
        (("launcher.gpus_per_node=2", "launcher.ntasks_per_node=1"), None,
         "launcher.ntasks_per_node=1 does not match the GPUs: ddp runs one task per GPU and launcher.gpus_per_node=2;"),
        ((), "/nonexistent", "sbatch was not found on PATH, so launcher=slurm cannot submit;"),
    ],
)  # fmt: skip
def test_preflight_failure_exits_2_and_submits_nothing(tmp_path: Path, overrides, path, message) -> None:
    name = f"preflight-{uuid.uuid4().hex[:8]}"
    env = {"PATH": path} if path else None
    done = _cli(tmp_path / "run", "launcher=slurm", f"launcher.job_name={name}", "+strategy=ddp", *overrides,
                cwd=tmp_path, env=env)  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and message in errors[0] and errors[0].endswith("."), done.stderr
    assert submitted_with_name(name) == []
    assert not (tmp_path / "run" / "slurm_job_id").exists()


def test_stored_environment_fixtures_match_a_live_job(tmp_path: Path) -> None:
    """tests/unit/fixtures/slurm/ was captured on this cluster; a fresh capture parses the same way."""
    fixtures = REPO / "tests" / "unit" / "fixtures" / "slurm"
    batch, tasks = capture_envs(tmp_path, nodes=2, tasks_per_node=2)
    assert detect(batch).source == "local"
    for task in tasks:
        stored = json.loads((fixtures / f"srun_2x2_task{task['SLURM_PROCID']}.json").read_text())
        assert set(task) == set(stored)
        live, saved = detect(task), detect(stored)
        # A live task of this job (job ids restart with a fresh cluster, so they may equal the fixture's):
        assert live.job_id == batch["SLURM_JOB_ID"] and live.master_port == slurm_master_port(live.job_id)
        fields = ("rank", "local_rank", "world_size", "local_world_size", "node_rank", "num_nodes", "master_addr")
        assert [getattr(live, f) for f in fields] == [getattr(saved, f) for f in fields]
        assert live.hosts == saved.hosts == ("n1", "n2")
