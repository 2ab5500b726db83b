"""The rank contract (rank/spec.py): what each launcher starts a rank with, for every strategy, and the
table that declares every variable a rank can get."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from test_config import compose_job

from scaletrain.common import hardware
from scaletrain.contract import rank_env
from scaletrain.contract.env import ClusterEnv
from scaletrain.driver.launchers.local import LocalLauncher
from scaletrain.driver.launchers.ray import RayLauncher
from scaletrain.driver.launchers.slurm_script import BODY
from scaletrain.rank import slurm_rank
from scaletrain.rank import spec as rank_spec

STRATEGIES = ("ddp", "mirrored", "tpu", "xla")
OVERRIDES = {"xla": ("strategy.device=CPU", "strategy.num_devices=2")}
ARGV = ["/venv/bin/python", "-m", "scaletrain.rank.worker", "/run/job.json"]
BASE = {"PATH": "/usr/bin:/bin", "HOME": "/home/me"}  # a fixed environment to inherit, instead of os.environ
SOURCE = Path(__file__).resolve().parents[2] / "src" / "scaletrain"

# Rank 1 of 2, one rank on each of two hosts; the workers' addresses as launchers give them (SLURM: derived from
# the hosts and master_port, to the same addresses).
TORCHRUN = {
    "RANK": "1",
    "LOCAL_RANK": "0",
    "WORLD_SIZE": "2",
    "LOCAL_WORLD_SIZE": "1",
    "GROUP_RANK": "1",
    "NODE_RANK": "1",
    "MASTER_ADDR": "node-a",
    "MASTER_PORT": "29500",
}
WORKERS = ("node-a:29501", "node-b:29502")
TF_CONFIG = {"cluster": {"worker": list(WORKERS)}, "task": {"type": "worker", "index": 1}}
STRATEGY_ENV = {
    "ddp": {},
    "mirrored": {"TF_CONFIG": TF_CONFIG},
    "tpu": {},
    "xla": {"PJRT_DEVICE": "CPU", "CPU_NUM_DEVICES": "2"},
}


def _cluster(source: str) -> ClusterEnv:
    if source == "slurm":  # SLURM names the hosts, not each worker
        return ClusterEnv(1, 0, 2, 1, 1, 2, "node-a", 29500, "slurm", hosts=("node-a", "node-b"), job_id="7")
    return ClusterEnv(1, 0, 2, 1, 1, 2, "node-a", 29500, source, worker_addresses=WORKERS)


def _job(launcher: str, strategy: str, *extra: str):
    return compose_job(f"+strategy={strategy}", f"launcher={launcher}", *OVERRIDES.get(strategy, ()), *extra)


def _decoded(env: dict[str, str]) -> dict:
    """The spec's environment with TF_CONFIG read as JSON, so a mismatch shows which part differs."""
    return {k: json.loads(v) if k == "TF_CONFIG" else v for k, v in env.items()}


@pytest.fixture(autouse=True)
def _fixed_host(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)  # a TF_CONFIG of the developer's would supply the workers
    monkeypatch.delenv("PJRT_DEVICE", raising=False)
    monkeypatch.setattr(hardware, "cpu_count", lambda: 8)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_local_rank_spec(strategy):
    job = _job("local", strategy, "launcher.nnodes=2", "launcher.node_rank=1", "launcher.master_addr=node-a",
               "launcher.master_port=29500", "launcher.nproc_per_node=1")  # fmt: skip
    launcher = LocalLauncher(job)
    env = launcher.rank_env(0, 29500, WORKERS)
    assert env == _cluster("local")
    spec = launcher.spec(env, ARGV, 1, Path("/run/beacons/attempt_1"), Path("/run/logs"), environ=BASE)
    assert spec.rank == 1 and spec.argv == ARGV and spec.log_path == Path("/run/logs/rank_1.log")
    assert _decoded(spec.env) == {
        **BASE,
        **TORCHRUN,
        **STRATEGY_ENV[strategy],
        "SCALETRAIN_BEACON_DIR": "/run/beacons/attempt_1",
        "SCALETRAIN_RESTART_COUNT": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "8",  # the host's 8 cores over its one rank
    }


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_ray_rank_spec_holds_only_the_contract_which_the_actor_lays_over_its_node(strategy):
    spec = RayLauncher(_job("ray", strategy)).spec(_cluster("ray"), ARGV, 2, "3", Path("/run/logs"))
    assert spec.rank == 1 and spec.argv == ARGV and spec.log_path == Path("/run/logs/rank_1.log")
    assert _decoded(spec.env) == {
        **TORCHRUN,
        **STRATEGY_ENV[strategy],
        "SCALETRAIN_RESTART_COUNT": "2",
        "PYTHONUNBUFFERED": "1",
        "CUDA_VISIBLE_DEVICES": "3",
    }
    no_gpu = RayLauncher(_job("ray", strategy)).spec(_cluster("ray"), ARGV, 0, None)
    assert "CUDA_VISIBLE_DEVICES" not in no_gpu.env and no_gpu.log_path is None


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_slurm_rank_spec(strategy):
    environ = {**BASE, "SLURM_RESTART_COUNT": "2", "SCALETRAIN_HANG_RESTARTS": "1", "SLURM_CPUS_PER_TASK": "6"}
    job = _job("slurm", strategy, "launcher.signal=USR2")
    restarts = slurm_rank.restart_count(environ)
    assert restarts == 3  # two requeues, then one restart after a hang
    spec = slurm_rank.spec(job, _cluster("slurm"), ARGV, restarts, environ)
    assert spec.rank == 1 and spec.argv == ARGV and spec.log_path is None  # the job's log is slurm-<id>.out
    assert _decoded(spec.env) == {
        **environ,
        **TORCHRUN,
        **STRATEGY_ENV[strategy],
        "SCALETRAIN_BEACON_DIR": "/tmp/x/beacons/job_7/attempt_3",  # the rank agent's, in the run directory, per job id
        "SCALETRAIN_RESTART_COUNT": "3",
        "SCALETRAIN_STOP_SIGNAL": "USR2",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "6",
    }


def test_slurm_keeps_an_omp_num_threads_of_its_own_and_the_watchdog_off_means_no_beacons():
    job = _job("slurm", "ddp", "watchdog.enabled=false")
    environ = {"SLURM_CPUS_PER_TASK": "6", "OMP_NUM_THREADS": "2"}
    spec = slurm_rank.spec(job, _cluster("slurm"), ARGV, slurm_rank.restart_count(environ), environ)
    assert spec.env["OMP_NUM_THREADS"] == "2" and spec.env["SCALETRAIN_RESTART_COUNT"] == "0"
    assert "SCALETRAIN_BEACON_DIR" not in spec.env
    assert "OMP_NUM_THREADS" not in slurm_rank.spec(job, _cluster("slurm"), ARGV, 0, {}).env


def test_local_threads_split_the_cores_unless_given_and_a_terminal_gets_a_progress_bar(monkeypatch):
    launcher = LocalLauncher(_job("local", "ddp", "launcher.nproc_per_node=2"))
    env = launcher.rank_env(1, 29500)
    assert launcher.spec(env, ARGV, 0, environ={}).env["OMP_NUM_THREADS"] == "4"  # 8 cores over 2 ranks
    assert launcher.spec(env, ARGV, 0, environ={"OMP_NUM_THREADS": "1"}).env["OMP_NUM_THREADS"] == "1"
    fixed = LocalLauncher(_job("local", "ddp", "launcher.nproc_per_node=2", "launcher.threads_per_rank=3"))
    assert fixed.spec(env, ARGV, 0, environ={"OMP_NUM_THREADS": "1"}).env["OMP_NUM_THREADS"] == "3"
    assert "SCALETRAIN_PROGRESS" not in launcher.spec(env, ARGV, 0, environ={}).env  # pytest captures stdout
    assert "SCALETRAIN_BEACON_DIR" not in launcher.spec(env, ARGV, 0, environ={}).env
    monkeypatch.setattr(sys, "stdout", type("Terminal", (), {"isatty": staticmethod(lambda: True)})())
    assert launcher.spec(env, ARGV, 0, environ={}).env["SCALETRAIN_PROGRESS"] == "1"


@pytest.mark.parametrize("strategy", [*STRATEGIES, "xla-cuda"])
def test_every_variable_the_builder_can_set_is_in_the_table_with_its_meaning(strategy):
    name, extra = (strategy, ()) if strategy != "xla-cuda" else ("xla", ("strategy.device=CUDA",))
    job = compose_job(f"+strategy={name}", *(extra or OVERRIDES.get(name, ())))
    facts = rank_spec.Facts(beacon_dir="/b", threads=2, stop_signal="USR1", progress=True, cuda_visible="0",
                            log_dir=Path("/l"))  # fmt: skip
    spec = rank_spec.build(job, _cluster("local"), ARGV, 0, facts)
    if strategy == "xla-cuda":
        assert spec.env["XLA_COORDINATOR_PORT"] == "29501"
    undeclared = set(spec.env) - set(rank_env.TABLE)
    assert not undeclared, f"add {sorted(undeclared)} to rank_env.TABLE"
    assert all(v.meaning.strip() and v.name == k for k, v in rank_env.TABLE.items())
    groups = {rank_env.TORCHRUN, rank_env.STRATEGY, rank_env.SCALETRAIN, rank_env.PROCESS}
    assert {v.group for v in rank_env.TABLE.values()} == groups


def test_the_tables_torchrun_group_is_what_a_cluster_env_writes():
    torchrun = {v.name for v in rank_env.TABLE.values() if v.group == rank_env.TORCHRUN}
    assert torchrun == set(_cluster("local").torchrun_vars()) == set(TORCHRUN)


def test_the_batch_script_uses_the_tables_names():
    assert f"${{{rank_env.PYTHON}:-python}}" in BODY
    assert f"{rank_env.HANG_RESTARTS}=$hang_restarts srun" in BODY


def test_no_scaletrain_variable_is_named_outside_the_table():
    """Worker and launchers read and write SCALETRAIN_* through contract/rank_env.py's constants (the batch script's
    shell text, BODY, names them unquoted)."""
    literal = re.compile(r"""["']SCALETRAIN_""")
    found = [
        f"{path.relative_to(SOURCE)}:{number}"
        for path in SOURCE.rglob("*.py")
        if path.name != "rank_env.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if literal.search(line)
    ]
    assert not found
