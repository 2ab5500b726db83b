"""Shared test helpers: run the real CLI in a subprocess, read what it wrote, and decide skips in one place."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _gpu_present() -> bool:
    from scaletrain import hardware

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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    verdicts: dict[str, bool] = {}
    for item in items:
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


EXPECTS_STRAGGLER = ".expects-straggler"  # a test that slows a rank on purpose leaves this in its tmp_path


@pytest.fixture(scope="session", autouse=True)
def no_false_straggler_alarm(tmp_path_factory: pytest.TempPathFactory):
    """After the whole suite: no run named a straggler unless its test slowed a rank on purpose."""
    yield
    base = tmp_path_factory.getbasetemp()
    false_alarms = []
    for path in base.rglob("summary.json"):
        try:
            named = json.loads(path.read_text()).get("stragglers")
        except (OSError, ValueError):
            continue
        expected = any((parent / EXPECTS_STRAGGLER).exists() for parent in path.parents if base in parent.parents)
        if named and not expected:
            false_alarms.append(f"{path}: {named}")
    assert not false_alarms, "stragglers named in undisturbed runs:\n" + "\n".join(false_alarms)
