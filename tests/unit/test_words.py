"""Processes and devices named apart (issue 21 item 6), and what older releases wrote still read in today's words."""

from __future__ import annotations

import json

from scaletrain.contract import config
from scaletrain.contract.summary import RunSummary
from scaletrain.driver.scaling import __main__ as scaling_command

CORE = {"workload": "linear", "strategy": "ddp", "framework": "torch", "global_batch_size": 4}


def test_a_summary_counts_processes_and_devices_apart():
    summary = RunSummary(**CORE, processes=1, replicas=2)  # one process mirroring over two devices
    assert summary.processes == 1 and summary.devices == 2
    assert "processes" in summary.to_dict() and "world_size" not in summary.to_dict()


def test_an_older_summary_reads_in_todays_words():
    fit = {"alpha_s": 1e-5, "beta_s_per_byte": 1e-9, "world_size": 2}
    old = RunSummary.from_dict({**CORE, "world_size": 2, "allreduce": fit})
    assert old.processes == 2 and old.devices == 2 and old.allreduce["devices"] == 2
    assert "world_size" not in old.allreduce and "world_size" not in old.to_dict()


def test_an_older_sweep_directory_is_read_again(tmp_path):
    """`python -m scaletrain.scaling DIR` on a sweep written before the rename: its job.json says
    scaling.world_sizes and its points live in world_size_N/."""
    job = config.load({"launcher": {"name": "local"}, "workload": {"name": "linear"}, "output_dir": str(tmp_path)})
    record = job.to_dict()
    record["scaling"]["world_sizes"] = record["scaling"].pop("device_counts") + [1, 2]
    (tmp_path / "job.json").write_text(json.dumps(record))
    loaded, points = scaling_command.load(tmp_path)
    assert loaded.scaling.device_counts == [1, 2] and [p.devices for p in points] == [1, 2]
    (tmp_path / "job.json").unlink()  # older still: only the points' own jobs, in world_size_N/
    for n in (1, 2):
        (tmp_path / f"world_size_{n}").mkdir()
        (tmp_path / f"world_size_{n}" / "job.json").write_text(json.dumps(record))
    assert [p.devices for p in scaling_command.load(tmp_path)[1]] == [1, 2]


def test_the_old_setting_names_say_the_new_ones():
    assert config.renamed("scaling.world_sizes") == (
        "scaling.world_sizes is now called scaling.device_counts (it counts devices, not processes); write "
        "scaling.device_counts=... instead."
    )
    assert config.renamed("scaling.forecast_world_sizes").startswith("scaling.forecast_world_sizes is now called")
    assert config.renamed("train.lr") is None
