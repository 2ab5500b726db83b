"""Shared test helpers: run the real CLI in a subprocess, read what it wrote, and decide skips in one place."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scaletrain.driver import schema

# The job's schema in Hydra's ConfigStore, as the CLI registers it first: tests compose conf/ through the compose API.
schema.register()

REPO = Path(__file__).resolve().parents[1]


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _gpu_present() -> bool:
    from scaletrain.common import hardware

    return hardware.gpu_count() > 0


SLURM_NODES = ("n1", "n2")  # the nodes of slurm/local-cluster.sh


def _slurm_cluster_up() -> bool:
    """sinfo and scontrol exist, the controller answers, and nodes n1 and n2 respond."""
    if shutil.which("sinfo") is None or shutil.which("scontrol") is None:
        return False
    try:
        # `scontrol ping` answers at once; sinfo retries for about 9 s when no controller is up
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=15)
        if ping.returncode != 0 or " is UP" not in ping.stdout:
            return False
        out = subprocess.run(["sinfo", "-h", "-N", "-r", "-o", "%N"], capture_output=True, text=True, timeout=15)
    except (subprocess.SubprocessError, OSError):
        return False
    return out.returncode == 0 and set(SLURM_NODES) <= set(out.stdout.split())


# Marker -> (is the requirement met?, why the test is skipped when it is not).
REQUIREMENTS = {
    "slurm": (
        _slurm_cluster_up,
        "no SLURM cluster: run 'bash slurm/local-cluster.sh start' first (needs root and Debian's slurm packages)",
    ),
    "tf": (lambda: _has_module("tensorflow"), "TensorFlow is not installed: pip install -e '.[tf]'"),
    "xla": (lambda: _has_module("torch_xla"), "torch_xla is not installed: pip install -e '.[xla]'"),
    "ray": (lambda: _has_module("ray"), "Ray is not installed: pip install -e '.[ray]'"),
    "gpu": (_gpu_present, "no NVIDIA GPU on this machine (CI machines have none)"),
    "tpu": (lambda: False, "no Cloud TPU exists here; TPU paths are tested through their error handling"),
}


# The suite runs on two pytest-xdist workers (pyproject: -n 2 --dist loadgroup): many tests spend much of their time
# waiting (a hang timeout, a SLURM job queued, one single-threaded process on a 2-core machine), and the other worker
# fills that time. Tests that share a resource run on one worker, one after another: the test network's namespaces
# (fixed names and addresses, and the clusters over them), the local SLURM cluster's two nodes, a Ray cluster on this
# machine. A module's other tests stay together too, so that its module-scoped reference runs are made once.
def xdist_group(item: pytest.Item) -> str:
    if item.path.name == "test_network.py":
        return "netns"
    return next((name for name in ("slurm", "ray") if item.get_closest_marker(name)), item.path.name)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    verdicts: dict[str, bool] = {}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
        for marker, (available, reason) in REQUIREMENTS.items():
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in verdicts:
                verdicts[marker] = available()
            if not verdicts[marker]:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class Run:
    """One finished ``python -m scaletrain`` and the run directory it wrote."""

    returncode: int
    stdout: str
    stderr: str
    dir: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def summary(self) -> dict:
        return json.loads((self.dir / "summary.json").read_text())

    @property
    def metrics(self) -> list[dict]:
        lines = (self.dir / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


def scaletrain_argv(run_dir: Path, *overrides: str, flags: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "scaletrain", *flags, f"hydra.run.dir={run_dir}", *overrides]


def beacon_path(run_dir: Path, rank: int, attempt: int = 0) -> Path:
    """Rank ``rank``'s beacon file in ``attempt`` of the newest job instance that ran in ``run_dir``: a path that does
    not exist yet while the job starts (beacons live in RUN_DIR/beacons/<job instance>/attempt_N/)."""
    found = [p for p in (run_dir / "beacons").glob(f"*/attempt_{attempt}") if p.is_dir()]
    newest = max(found, key=lambda p: p.stat().st_mtime) if found else run_dir / "beacons" / "-" / f"attempt_{attempt}"
    return newest / f"rank_{rank}.json"


def ranks_catching(run_dir: Path, count: int, signum: int, alive=lambda: True, timeout_s: float = 120) -> list[int]:
    """The pids of the ``count`` rank processes running ``run_dir``'s job.json on this machine (any launcher whose
    nodes are this machine), in start order, once each has installed its handler for ``signum`` (its SigCgt mask in
    /proc): a signal sent then is caught, whatever the machine's speed. ``alive()`` false ends the wait."""
    job_file = f"{run_dir}/job.json".encode()
    deadline = time.monotonic() + timeout_s
    while True:
        assert alive(), f"the job of {run_dir} ended before {count} ranks caught signal {signum}"
        assert time.monotonic() < deadline, f"no {count} ranks of {run_dir} caught signal {signum} in {timeout_s} s"
        ranks = [pid for pid, argv in _processes() if b"scaletrain.rank.worker" in argv and job_file in argv]
        if len(ranks) == count and all(_catches(pid, signum) for pid in ranks):
            return sorted(ranks)
        time.sleep(0.05)


def _processes() -> Iterator[tuple[int, list[bytes]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                yield int(entry.name), (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:  # ended meanwhile
                continue


def _catches(pid: int, signum: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) >> (signum - 1) & 1)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update(extra or {})
    return env


@pytest.fixture
def scaletrain(tmp_path: Path):
    """Run the real CLI with ``overrides`` into a fresh run directory under tmp_path."""
    counter = iter(range(1000))

    def run(*overrides: str, timeout: float = 240, env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
        run_dir = tmp_path / f"run{next(counter)}"
        proc = subprocess.run(
            scaletrain_argv(run_dir, *overrides),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(env),
            cwd=cwd or tmp_path,
        )
        return Run(proc.returncode, proc.stdout, proc.stderr, run_dir)

    return run


@pytest.fixture(scope="session")
def local_ray_cluster():
    """A two-node Ray cluster on this machine (one CPU each; the head also serves ray:// clients), started once and
    shared by every test that runs a job on a Ray cluster (launcher.address=its address): each start costs seconds of
    CPU. The Ray tests run on one worker (xdist_group), so the session has one. Tests that start a Ray of their own
    (launcher=ray with no address) test that path."""
    from ray.cluster_utils import Cluster

    from scaletrain.driver.launchers.local import free_port

    head = {"num_cpus": 1, "ray_client_server_port": free_port("127.0.0.1")}
    two_nodes = Cluster(initialize_head=True, connect=False, head_node_args=head)
    two_nodes.client_port = head["ray_client_server_port"]
    two_nodes.add_node(num_cpus=1)
    two_nodes.wait_for_nodes()
    yield two_nodes
    two_nodes.shutdown()


EXPECTS_STRAGGLER = ".expects-straggler"  # a test that slows a rank on purpose leaves this in its tmp_path


RAN_ALONE = ".ran-alone"  # an `alone` test's tmp_path, when the suite runs on several workers


@pytest.fixture(scope="session", autouse=True)
def no_false_straggler_alarm(tmp_path_factory: pytest.TempPathFactory):
    """After the whole suite: no run named a straggler unless its test slowed a rank on purpose. On several workers
    only the runs made with the machine to themselves (``alone`` tests) are judged: a rank that shares its cores with
    another test's processes is really slowed, and naming it is right."""
    yield
    base = tmp_path_factory.getbasetemp()
    judged = _machine_lock() is None
    false_alarms = []
    for path in base.rglob("summary.json"):
        try:
            named = json.loads(path.read_text()).get("stragglers")
        except (OSError, ValueError):
            continue
        marked = [parent for parent in path.parents if base in parent.parents]
        expected = any((parent / EXPECTS_STRAGGLER).exists() for parent in marked)
        alone = judged or any((parent / RAN_ALONE).exists() for parent in marked)
        if named and alone and not expected:
            false_alarms.append(f"{path}: {named}")
    assert not false_alarms, "stragglers named in undisturbed runs:\n" + "\n".join(false_alarms)


def _machine_lock() -> Path | None:
    """The lock file the workers of this run share (None when the suite runs in one process)."""
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    return Path(tempfile.gettempdir()) / f"scaletrain-tests-{run_id}.lock" if run_id else None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """A test marked ``alone`` measures time (a slowdown, a bandwidth) and has the machine to itself: it waits for the
    other worker's test to end, and no test starts beside it. Every other test shares the machine. A readers-writer
    lock across the workers (a turnstile, then the machine shared or exclusive), held over the whole of a test's
    setup, call and teardown: a module- or session-scoped fixture set up for it (a reference run, a cluster, files
    to generate) is part of the test's load too."""
    path = _machine_lock()
    if path is None:
        yield
        return
    alone = item.get_closest_marker("alone") is not None
    with open(path.with_suffix(".turnstile"), "a") as turnstile, open(path, "a") as machine:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        fcntl.flock(machine, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(machine, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def ran_alone(request: pytest.FixtureRequest) -> None:
    """An ``alone`` test's runs are judged for false stragglers (no_false_straggler_alarm) when workers share."""
    if _machine_lock() is not None and request.node.get_closest_marker("alone") and "tmp_path" in request.fixturenames:
        (request.getfixturevalue("tmp_path") / RAN_ALONE).touch()
