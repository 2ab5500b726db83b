"""run.py's pre-flight order: what the points share (once), each point's settings, the launcher's own checks, the
batch; and a point that fails gives back what the checks before it took (Ray's connection), for a single run and for
every planned point of a sweep."""

from __future__ import annotations

import dataclasses

import pytest
from test_config import compose_job

from scaletrain.contract.errors import ConfigError
from scaletrain.driver import run
from scaletrain.driver.launchers.base import Launcher
from scaletrain.strategies.plugin import Placement


class _Launcher(Launcher):
    """A launcher whose own pre-flight fails at the world sizes in ``failing``; it records what was called."""

    name = "local"

    def __init__(self, job, failing: set[int], calls: list[str]) -> None:
        super().__init__(job)
        self.failing, self.calls = failing, calls

    @property
    def world_size(self) -> int:
        return self.job.launcher.nproc_per_node

    @property
    def placement(self) -> Placement:
        return Placement(1, self.world_size)

    def preflight(self) -> None:
        self.calls.append(f"preflight {self.world_size}")
        if self.world_size in self.failing:
            raise ConfigError("the cluster is unreachable.")

    def release(self) -> None:
        self.calls.append(f"release {self.world_size}")

    def launch(self, job_file):
        raise AssertionError("a job whose pre-flight failed must not launch")


def _job(tmp_path, *overrides: str):
    job = compose_job("+strategy=ddp", "launcher.nproc_per_node=2", *overrides)
    checkpoints = dataclasses.replace(job.checkpoint, dir=str(tmp_path / "checkpoints"))
    return dataclasses.replace(job, output_dir=str(tmp_path), checkpoint=checkpoints)


def _fake(monkeypatch, failing: set[int]) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(run.launchers, "create", lambda job: _Launcher(job, failing, calls))
    return calls


def test_a_launcher_whose_own_check_fails_gives_back_what_it_took(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, failing={2})
    with pytest.raises(ConfigError, match="unreachable"):
        run.run_job(_job(tmp_path))
    assert calls == ["preflight 2", "release 2"]


def test_a_job_wide_check_after_the_launchers_releases_it_and_one_before_never_reaches_it(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, failing=set())
    with pytest.raises(ConfigError, match="train.global_batch_size=3 is not divisible by the world size 2"):
        run.run_job(_job(tmp_path, "train.global_batch_size=3"))
    assert calls == ["preflight 2", "release 2"]
    calls.clear()
    with pytest.raises(ConfigError, match="resume=true but .* holds no checkpoint"):
        run.run_job(_job(tmp_path, "resume=true"))
    assert calls == []  # refused on the job's own settings, before the launcher checked (or took) anything


def test_a_sweep_point_that_fails_its_checks_releases_every_point_planned_before_it(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, failing={4})
    with pytest.raises(ConfigError, match="unreachable"):
        run.run_job(_job(tmp_path, "scaling.device_counts=[2,4]", "train.global_batch_size=4"))
    assert calls == ["preflight 1", "preflight 2", "preflight 4", "release 4", "release 1", "release 2"]
    assert not (tmp_path / "job.json").exists()  # nothing written before every point passed


def test_what_every_point_shares_is_checked_once_before_any_point_or_launcher(tmp_path, monkeypatch):
    calls = _fake(monkeypatch, failing=set())
    absent = f"workload.data_dir={tmp_path / 'absent'}"
    with pytest.raises(ConfigError, match="workload.data_dir"):
        run.run_job(_job(tmp_path, "workload=mnist", absent, "scaling.device_counts=[2]", "train.global_batch_size=4"))
    assert calls == []  # refused before any point's launcher was built or checked
    checked: list[str] = []
    monkeypatch.setattr(run.preflight.workloads, "preflight", lambda job: checked.append(job.workload.name))
    monkeypatch.setattr(run.preflight.tracking, "preflight", lambda job: checked.append(job.logger.name))
    monkeypatch.setattr(run.launchers, "create", lambda job: _Launcher(job, {4}, calls))
    with pytest.raises(ConfigError, match="unreachable"):
        run.run_job(_job(tmp_path, "scaling.device_counts=[2,4]", "train.global_batch_size=4"))
    assert checked == ["linear", "none"]  # once for the sweep's three points
    assert calls == ["preflight 1", "preflight 2", "preflight 4", "release 4", "release 1", "release 2"]


def test_a_micro_batch_is_checked_at_every_point_of_a_sweep_before_any_starts(tmp_path, monkeypatch):
    """Strong scaling keeps the global batch 48 at every point: 1 and 2 devices accumulate micro-batches of 8 (6 and
    3 steps), but at 4 devices the share of 12 is no whole number of them, so the sweep is refused before it
    starts, naming sizes that work."""
    calls = _fake(monkeypatch, failing=set())
    sweep = ("scaling.device_counts=[2,4]", "scaling.mode=strong", "train.global_batch_size=48")
    with pytest.raises(ConfigError, match=r"12 samples per device.*train.micro_batch_size=6 \(2 accumulation steps\)"):
        run.run_job(_job(tmp_path, *sweep, "train.micro_batch_size=8"))
    assert calls == ["preflight 1", "preflight 2", "preflight 4", "release 4", "release 1", "release 2"]
    assert not (tmp_path / "job.json").exists()
