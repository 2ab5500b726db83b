"""launcher=ray on real Ray clusters on this machine: a local Ray the launcher starts itself, and a two-node cluster
(``ray.cluster_utils.Cluster``: a head and a second node, each its own raylet with 1 CPU) shared by the session
(conftest.local_ray_cluster).

The test process also joins that cluster as a second driver, only to read what is left on it (actors, placement
groups) after each job.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import child_env, scaletrain_argv
from job_args import ENDLESS, LONGER, SYNTHETIC_DDP

pytestmark = pytest.mark.ray

USERLAND = Path(__file__).parent / "userland"
LIVE_ACTOR_STATES = {"ALIVE", "PENDING_CREATION", "DEPENDENCIES_UNREADY", "RESTARTING"}


@pytest.fixture(scope="module")
def cluster(local_ray_cluster):
    """The session's two-node cluster (conftest.local_ray_cluster)."""
    return local_ray_cluster


@pytest.fixture(scope="module")
def ray_state(cluster):
    """This process as a driver of the two-node cluster, to inspect it."""
    import ray

    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def leftovers(ray, keep: tuple[str, ...] = ()) -> list[str]:
    """Placement groups and actors still holding resources, polled for a few seconds (removal is asynchronous)."""
    from ray._private import state  # the state API without a dashboard

    deadline = time.monotonic() + 10
    while True:
        left = [
            f"placement group {pg_id} {info['state']}"
            for pg_id, info in ray.util.placement_group_table().items()
            if info["state"] != "REMOVED" and pg_id not in keep
        ]
        left += [
            f"actor {a['ActorID']} {a['State']}" for a in state.actors().values() if a["State"] in LIVE_ACTOR_STATES
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def on_cluster(cluster, *overrides: str) -> tuple[str, ...]:
    return ("launcher=ray", f"launcher.address={cluster.address}", *overrides)


def start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        scaletrain_argv(run_dir, *overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=child_env(),
        cwd=run_dir.parent,
    )


def wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the job ended before it could be interrupted:\n" + proc.stdout.read()
        if metrics.exists():
            steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines() if line.strip()]
            if steps and max(steps) >= step:
                return
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def ranks(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "ray_ranks.json").read_text())


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


def sentence(run) -> str:
    errors = [line for line in run.stderr.splitlines() if line.startswith("scaletrain: error: ")]
    assert len(errors) == 1 and "Traceback" not in run.output, run.output
    return errors[0]


# --- a local Ray, started and stopped by the launcher ------------------------------------------------------------


def ray_processes_of(driver_pid: int) -> list[str]:
    """Processes of the Ray instance a driver started itself (its session directory ends in the driver's pid)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "session_" in cmdline and f"_{driver_pid}/" in cmdline:
            found.append(cmdline[:120])
    return found


@pytest.mark.slow
def test_ddp_under_a_local_ray_gives_the_local_launchers_result(scaletrain, tmp_path):
    local = scaletrain("+strategy=ddp", "workload=linear", "launcher.nproc_per_node=2")
    assert local.returncode == 0, local.output
    run_dir = tmp_path / "on-ray"
    proc = start(run_dir, "+strategy=ddp", "workload=linear", "launcher=ray", "launcher.nproc=2")
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    s = json.loads((run_dir / "summary.json").read_text())
    assert s["processes"] == 2
    assert s["weight"] == pytest.approx(2.0, abs=0.05) and s["bias"] == pytest.approx(1.0, abs=0.1)
    for key in ("weight", "bias", "final_loss", "replica_fingerprints"):
        assert s[key] == pytest.approx(local.summary[key], rel=1e-6, abs=1e-7), key
    assert "[rank 0] linear: weight=" in out and "placed PACK: rank 0 on node" in out
    assert (run_dir / "logs" / "rank_1.log").is_file()
    placed = ranks(run_dir)
    assert [r["rank"] for r in placed] == [0, 1] and all(gone(r["pid"]) for r in placed)
    deadline = time.monotonic() + 15  # the local Ray it started is stopped with it
    while (left := ray_processes_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


def test_gpus_per_rank_on_a_host_without_gpus_stops_before_starting_ray(scaletrain):
    from scaletrain.common import hardware

    if hardware.gpu_count():
        pytest.skip("this machine has a GPU, so one GPU per rank is a valid request here")
    run = scaletrain("launcher=ray", "launcher.nproc=2", "launcher.num_gpus_per_rank=1", timeout=60)
    assert run.returncode == 2
    assert "launcher.num_gpus_per_rank=1 asks for more GPU per rank than any node" in sentence(run)
    assert not (run.dir / "job.json").exists()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["launcher.placement_strategy=DIAGONAL"], "launcher.placement_strategy='DIAGONAL' is not known"),
        (["launcher.address=head"], "launcher.address='head' is not a Ray address"),
        (["launcher.nproc=0"], "launcher.nproc=0 must be 'auto' or a whole number"),
    ],
)
def test_bad_ray_settings_are_one_sentence(scaletrain, overrides, expected):
    run = scaletrain("launcher=ray", *overrides, timeout=60)
    assert run.returncode == 2 and expected in sentence(run)


@pytest.mark.slow
def test_runtime_env_ray_rejects_is_one_sentence_and_the_local_ray_is_stopped(tmp_path):
    run_dir = tmp_path / "bad-env"
    proc = start(run_dir, "launcher=ray", "launcher.nproc=2", "launcher.runtime_env={py_modules: [/nonexistent]}")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "scaletrain: error: Ray rejected the job's runtime_env {'py_modules': ['/nonexistent']}" in out
    assert "Traceback" not in out
    deadline = time.monotonic() + 15
    while (left := ray_processes_of(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == []


def test_address_nobody_answers_on_fails_within_seconds(scaletrain):
    started = time.monotonic()
    run = scaletrain("launcher=ray", "launcher.address=127.0.0.1:1", "launcher.connect_timeout_s=3", timeout=60)
    assert run.returncode == 2
    assert "launcher.address=127.0.0.1:1: nothing answers at 127.0.0.1:1" in sentence(run)
    assert time.monotonic() - started < 30
    assert not (run.dir / "job.json").exists()


def test_auto_address_without_a_cluster_says_how_to_start_one(scaletrain, tmp_path):
    env = {"RAY_TMPDIR": str(tmp_path / "no-ray-here"), "RAY_ADDRESS": ""}
    run = scaletrain("launcher=ray", "launcher.address=auto", timeout=60, env=env)
    assert run.returncode == 2
    assert "launcher.address=auto but no Ray cluster runs on this host" in sentence(run)


# --- the two-node cluster ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_strict_spread_puts_the_ranks_on_different_nodes_and_ddp_trains(scaletrain, cluster, ray_state):
    run = scaletrain(
        *on_cluster(cluster, "+strategy=ddp", "launcher.nproc=2", "launcher.placement_strategy=STRICT_SPREAD")
    )
    assert run.returncode == 0, run.output
    placed = ranks(run.dir)
    node_ids = {r["node_id"] for r in placed}
    assert len(node_ids) == 2 and node_ids <= {n["NodeID"] for n in ray_state.nodes() if n["Alive"]}
    assert [(r["rank"], r["node_rank"], r["local_rank"]) for r in placed] == [(0, 0, 0), (1, 1, 0)]
    assert run.summary["weight"] == pytest.approx(2.0, abs=0.05)
    assert run.summary["replica_fingerprints"][0] == run.summary["replica_fingerprints"][1]
    assert leftovers(ray_state) == []


@pytest.mark.slow
def test_torchrun_script_and_user_function_run_under_ray_as_they_do_locally(scaletrain, cluster, tmp_path):
    out = tmp_path / "script_out"
    out.mkdir()
    script = USERLAND / "torchrun_script.py"
    run = scaletrain(*on_cluster(cluster, "launcher.nproc=2", f"script={script}", f"script_args=[{out},--lr,0.5]"))
    assert run.returncode == 0, run.output
    records = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(r["RANK"], r["WORLD_SIZE"], r["sum"], r["argv"]) for r in records] == [
        (str(rank), "2", 3.0, ["--lr", "0.5"]) for rank in range(2)
    ]
    # Run from the user's project directory, which Ray ships to the nodes (working_dir: shipped and importable).
    run = scaletrain(
        *on_cluster(cluster, "+strategy=ddp", "launcher.nproc=2", "launcher.working_dir=."),
        "workload=function",
        "workload.fn._target_=user_train.main",
        "+workload.fn.steps=30",
        cwd=USERLAND,
    )
    assert run.returncode == 0, run.output
    assert run.summary["weight"] == pytest.approx(3.0 * (1 - 0.8**30), rel=1e-5)
    assert run.summary["world_size_seen"] == 2


@pytest.mark.slow
def test_ray_client_address_runs_the_job_from_outside_the_cluster(scaletrain, cluster, ray_state):
    address = f"ray://127.0.0.1:{cluster.client_port}"
    # Ray's client server starts a server per client, which can time out on a loaded head: the launcher connects
    # again in that one case (tests/unit/test_ray_connect.py); on a loaded CI machine the whole connect took over 10 s.
    run = scaletrain(
        "+strategy=ddp",
        "launcher=ray",
        f"launcher.address={address}",
        "launcher.nproc=2",
        "launcher.connect_timeout_s=90",
    )
    assert run.returncode == 0, run.output
    assert f"ray launcher at {address}" in run.output
    assert run.summary["processes"] == 2 and run.summary["weight"] == pytest.approx(2.0, abs=0.05)
    assert len({r["node_id"] for r in ranks(run.dir)}) == 2  # 1 CPU per node: PACK still needs both nodes
    assert leftovers(ray_state) == []


@pytest.mark.slow
def test_scaling_sweep_under_ray_runs_each_world_size_on_the_cluster(scaletrain, cluster, ray_state):
    run = scaletrain(
        *on_cluster(cluster, "+strategy=ddp", "launcher.placement_strategy=STRICT_SPREAD"),
        "workload=synthetic",
        "workload.num_samples=512",
        "workload.width=64",
        "train.global_batch_size=32",
        "scaling.device_counts=[2]",
        "scaling.allreduce_sizes_bytes=[4096,262144]",
        "scaling.allreduce_repeats=2",
    )
    assert run.returncode == 0, run.output
    rows = json.loads((run.dir / "scaling.json").read_text())["rows"]
    assert [r["devices"] for r in rows] == [1, 2]  # the 1-rank baseline was added
    assert [r["global_batch_size"] for r in rows] == [32, 64]  # weak scaling
    assert rows[0]["efficiency"] == pytest.approx(1.0) and rows[1]["efficiency"] > 0
    assert len({r["node_id"] for r in ranks(run.dir / "devices_2")}) == 2  # STRICT_SPREAD: one rank per node
    assert len(ranks(run.dir / "devices_1")) == 1
    assert leftovers(ray_state) == []


@pytest.mark.tf
@pytest.mark.slow
def test_unmodified_tf_config_script_gets_every_worker_under_ray(scaletrain, cluster, tmp_path):
    script = USERLAND / "tf_config_script.py"
    out = tmp_path / "script_out"
    out.mkdir()
    run = scaletrain(
        *on_cluster(cluster, "+strategy=mirrored", "launcher.nproc=2", f"script={script}", f"script_args=[{out}]"),
        timeout=300,
    )
    assert run.returncode == 0, run.output
    records = [json.loads((out / f"worker{i}.json").read_text()) for i in range(2)]
    workers = records[0]["TF_CONFIG"]["cluster"]["worker"]
    # One worker per rank, each at its own node's IP and its own port (both nodes share this machine's IP).
    assert [w.rsplit(":", 1)[0] for w in workers] == [r["node_ip"] for r in ranks(run.dir)] and len(set(workers)) == 2
    for index, record in enumerate(records):
        assert record["TF_CONFIG"] == {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        assert record["replicas"] == 2 and record["sum"] == 3.0  # 1 + 2: the collective really formed


@pytest.mark.slow
def test_killed_worker_restarts_the_group_from_the_checkpoint(tmp_path, cluster, ray_state):
    run_dir = tmp_path / "restarted"
    proc = start(run_dir, *on_cluster(cluster, *SYNTHETIC_DDP, *LONGER, "launcher.nproc=2", "max_restarts=1"))
    wait_for_step(run_dir, 45, proc)
    first = ranks(run_dir)
    os.kill(first[1]["pid"], signal.SIGKILL)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "rank 1 was killed by signal SIGKILL" in out
    assert "restarting all ranks from the last checkpoint (restart 1 of 1)" in out
    resumed = [line for line in out.splitlines() if "resumed from" in line]
    assert resumed and "(step 0)" not in resumed[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["attempt"] == 1 and summary["steps"] == 8 * 64
    assert all(r["attempt"] == 1 for r in ranks(run_dir)) and all(gone(r["pid"]) for r in first)
    assert leftovers(ray_state) == []


@pytest.mark.slow
def test_ctrl_c_stops_every_rank_and_releases_the_placement_group(tmp_path, cluster, ray_state):
    run_dir = tmp_path / "interrupted"
    proc = start(run_dir, *on_cluster(cluster, *SYNTHETIC_DDP, *ENDLESS, "launcher.nproc=2"))
    wait_for_step(run_dir, 10, proc)
    pids = [r["pid"] for r in ranks(run_dir)]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted: every rank was stopped" in out
    assert all(gone(pid) for pid in pids)
    assert leftovers(ray_state) == []


@pytest.mark.slow
def test_unsatisfiable_placement_is_one_sentence_in_bounded_time_and_leaves_nothing(scaletrain, cluster, ray_state):
    started = time.monotonic()
    run = scaletrain(*on_cluster(cluster, "launcher.nproc=3", "launcher.placement_strategy=STRICT_SPREAD"), timeout=60)
    assert run.returncode == 2
    assert (
        "launcher.placement_strategy=STRICT_SPREAD puts each of the 3 ranks on its own node but only 2 of the 2 node(s)"
        in sentence(run)
    )
    assert time.monotonic() - started < 30
    assert leftovers(ray_state) == []


@pytest.mark.slow
def test_more_gpus_per_rank_than_the_cluster_has_is_one_sentence(scaletrain, cluster):
    run = scaletrain(*on_cluster(cluster, "launcher.nproc=2", "launcher.num_gpus_per_rank=1"), timeout=60)
    assert run.returncode == 2
    assert "launcher.num_gpus_per_rank=1 asks for more GPU per rank than any node of the Ray cluster has (none" in (
        sentence(run)
    )


@pytest.mark.slow
def test_placement_not_ready_in_time_ends_the_job_and_removes_its_group(scaletrain, cluster, ray_state):
    # Another job holds both CPUs: the request fits the cluster, but not now.
    blocker = ray_state.util.placement_group([{"CPU": 1}, {"CPU": 1}], strategy="SPREAD")
    ray_state.get(blocker.ready(), timeout=30)
    try:
        started = time.monotonic()
        run = scaletrain(*on_cluster(cluster, "launcher.nproc=2", "launcher.placement_timeout_s=3"), timeout=60)
        assert run.returncode == 2
        assert (
            "the Ray cluster did not place 2 rank(s) of {CPU: 1} with PACK within launcher.placement_timeout_s=3"
            in (sentence(run))
        )
        assert time.monotonic() - started < 30
        assert leftovers(ray_state, keep=(blocker.id.hex(),)) == []
    finally:
        ray_state.util.remove_placement_group(blocker)


@pytest.mark.slow
def test_lost_node_ends_the_attempt_naming_the_rank(tmp_path, cluster, ray_state):
    """Runs last: it removes the second node (and adds a fresh one back)."""
    run_dir = tmp_path / "node-lost"
    proc = start(run_dir, *on_cluster(cluster, *SYNTHETIC_DDP, *ENDLESS, "launcher.nproc=2", "launcher.stop_grace_s=1"))
    wait_for_step(run_dir, 10, proc)
    second = next(n for n in cluster.worker_nodes)
    on_second = [r for r in ranks(run_dir) if r["node_id"] == second.node_id]
    assert on_second, ranks(run_dir)
    lost_at = time.monotonic()
    cluster.remove_node(second, allow_graceful=False)
    try:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, out
        assert time.monotonic() - lost_at < 60
        lost = on_second[0]
        assert f"job failed: rank {lost['rank']} on {lost['host']} was lost: its Ray actor" in out, out  # host name
        assert all(gone(r["pid"]) for r in ranks(run_dir))
        assert leftovers(ray_state) == []
    finally:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
