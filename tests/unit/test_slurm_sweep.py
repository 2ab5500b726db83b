"""Scaling sweeps under launcher=slurm, without a cluster: each point's size, the overrides its script carries (which
Hydra must compose back into exactly the point's job), and the analysis of a sweep with failed points."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from test_scaling_model import _summary

from scaletrain.contract import config
from scaletrain.contract.errors import ConfigError
from scaletrain.driver.launchers.slurm_script import render_command
from scaletrain.driver.launchers.slurm_sweep import hydra_value, point_args
from scaletrain.driver.scaling import analysis, report, sweep


def _compose(*overrides: str) -> config.Job:
    with initialize_config_dir(config_dir=str(config.conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=list(overrides))
    return config.load(OmegaConf.to_container(cfg, resolve=True))


def _base(tmp_path: Path, *overrides: str) -> tuple[config.Job, list[str]]:
    """A sweep's job as the user's overrides compose it (the hydra: resolver is absent here: dirs given)."""
    user = ["launcher=slurm", "+strategy=ddp", "workload=linear", "scaling.device_counts=[2,4]", *overrides]
    fixed = [f"checkpoint.dir={tmp_path}/checkpoints", f"output_dir={tmp_path}"]
    return _compose(*user, *fixed), user + fixed


def _points(job: config.Job) -> list[config.Job]:
    return [point.job for point in sweep.plan(job)]


@pytest.mark.parametrize(
    "overrides",
    [
        ("launcher.ntasks_per_node=2", "scaling.mode=strong", "logger=wandb", "logger.tags=[a,b]"),
        ("launcher.gpus_per_node=2", "train.lr=0.5", "strategy.timeout_s=30"),
    ],
)
def test_each_points_overrides_compose_back_into_exactly_the_points_job(tmp_path: Path, overrides) -> None:
    job, user = _base(tmp_path, *overrides)
    for point in _points(job):
        args = point_args(job, point, user)
        # the batch script appends hydra.run.dir (here: output_dir) after the point's overrides
        again = _compose(*args, f"output_dir={point.output_dir}")
        assert again.to_dict() == point.to_dict()
        assert "scaling.device_counts=[2,4]" not in args and "++scaling.device_counts=[]" in args


def test_points_take_whole_nodes_and_only_the_gpus_they_use(tmp_path: Path) -> None:
    job, _ = _base(tmp_path, "launcher.gpus_per_node=4", "scaling.device_counts=[2,4,8]")
    shapes = [(p.launcher.nodes, p.launcher.ntasks_per_node, p.launcher.gpus_per_node) for p in _points(job)]
    assert shapes == [(1, 1, 1), (1, 2, 2), (1, "auto", 4), (2, "auto", 4)]
    job, _ = _base(tmp_path, "launcher.ntasks_per_node=2")
    assert [(p.launcher.nodes, p.launcher.ntasks_per_node) for p in _points(job)] == [(1, 1), (1, 2), (2, 2)]


def test_a_size_that_is_not_whole_nodes_is_refused_by_name(tmp_path: Path) -> None:
    job, _ = _base(tmp_path, "launcher.ntasks_per_node=2", "scaling.device_counts=[3]")
    with pytest.raises(ConfigError, match=r"scaling.device_counts holds 3, which is not a whole number of nodes of 2"):
        _points(job)


@pytest.mark.parametrize(
    "value",
    ["/runs/a b", "/runs/x", "name-1.2", "true", "1", "1e3", "it's", "${oc.env:HOME}", "a\\b", "c:\\", "inf", "-x",
     "null", [1, "two words"], {"k": "v w"}, None, 1.5, False, 0],
)  # fmt: skip
def test_hydra_values_read_back_unchanged(value) -> None:
    override = OverridesParser.create().parse_overrides([f"key={hydra_value(value)}"])[0]
    assert OmegaConf.to_container(OmegaConf.create({"v": override.value()}), resolve=True)["v"] == value


def test_the_analysis_script_runs_one_command_after_the_points() -> None:
    options = (("job-name", "t-analysis"), ("dependency", "afterany:7:8"), ("output", "/s w/slurm-%j.out"))
    text = render_command(options, "scaletrain.driver.scaling", ("/s w",))
    assert "#SBATCH --dependency=afterany:7:8\n" in text and "#SBATCH --output='/s w/slurm-%j.out'\n" in text
    assert text.endswith('set -- \'/s w\'\nexec "${SCALETRAIN_PYTHON:-python}" -m scaletrain.driver.scaling "$@"\n')
    with pytest.raises(ConfigError, match="NUL"):
        render_command(options, "scaletrain.driver.scaling", ("a\0b",))


def test_a_failed_point_is_a_row_marked_failed_and_the_others_keep_their_efficiency() -> None:
    points = [_summary(1, 1000.0, 0.1, 100), _summary(4, 3000.0, 0.133, 400)]
    result = analysis.analyse("weak", points, failed={2: "SLURM job 8 ended CANCELLED"})
    assert [(r["devices"], r["status"]) for r in result["rows"]] == [(1, "ok"), (2, "failed"), (4, "ok")]
    assert result["rows"][1]["efficiency"] is None
    assert result["rows"][2]["efficiency"] == pytest.approx(0.75)
    text = report.table(result)
    assert "| 2 (failed) |" in text and "Failed: 2 device(s): SLURM job 8 ended CANCELLED." in text


def test_without_the_one_device_run_no_efficiency_is_computed_and_the_table_says_why() -> None:
    result = analysis.analyse("weak", [_summary(2, 1800.0, 0.11, 200)], failed={1: "SLURM job 7 ended FAILED"})
    one, two = result["rows"]
    assert one["status"] == "failed" and two["efficiency"] is None and two["samples_per_s"] == 1800.0
    assert "the 1-device run, every point's baseline, failed" in report.table(result)
