"""A real scaling sweep (1 → 2 ranks, gloo) and real W&B offline run files, read back."""

from __future__ import annotations

import csv
import json

import pytest
from wandb_files import offline_runs, read_run

pytestmark = pytest.mark.slow

SMALL = (
    "+strategy=ddp",
    "workload=synthetic",
    "workload.num_samples=2048",
    "workload.width=128",
    "workload.depth=2",
    "train.epochs=1",
    "train.global_batch_size=64",
    "train.log_every_n_steps=8",
)
SECRET = "sk-scaletrain-test-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_weak_scaling_sweep_writes_table_json_csv_png(scaletrain):
    run = scaletrain(*SMALL, "scaling.device_counts=[1,2]", "scaling.allreduce_sizes_bytes=[4096,1048576,4194304]")
    assert run.returncode == 0, run.output
    assert "| devices | global batch | samples/s | per device | step s | MFU | efficiency | predicted |" in run.stdout
    result = json.loads((run.dir / "scaling.json").read_text())
    one, two = result["rows"]
    assert (one["devices"], two["devices"]) == (1, 2)
    assert (one["global_batch_size"], two["global_batch_size"]) == (64, 128)  # weak: per-device batch fixed
    assert one["efficiency"] == pytest.approx(1.0)
    assert 0 < two["efficiency"] <= 1.2
    ab = result["alpha_beta"]
    assert ab["fitted_at_devices"] == 2 and ab["alpha_s"] >= 0 and ab["beta_s_per_byte"] >= 0
    point = json.loads((run.dir / "devices_2" / "summary.json").read_text())
    assert point["allreduce"]["sizes_bytes"] == [4096, 1048576, 4194304]
    assert 0 < two["predicted_efficiency"] <= 1.0
    assert 0 <= two["comm_fraction"] < 1 and two["exposed_comm_s"] > 0  # DDP's all-reduce was timed
    rows = list(csv.DictReader(open(run.dir / "scaling.csv")))
    assert [int(r["devices"]) for r in rows] == [1, 2]
    assert (run.dir / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_strong_scaling_keeps_the_global_batch(scaletrain):
    run = scaletrain(*SMALL, "scaling.device_counts=[2]", "scaling.mode=strong", "scaling.allreduce_repeats=1")
    assert run.returncode == 0, run.output
    rows = json.loads((run.dir / "scaling.json").read_text())["rows"]
    assert [r["devices"] for r in rows] == [1, 2]  # the 1-rank baseline was added
    assert [r["global_batch_size"] for r in rows] == [64, 64]


def test_two_rank_run_makes_exactly_one_wandb_run_from_rank_0_and_leaks_no_key(scaletrain):
    run = scaletrain(
        *SMALL, "launcher.nproc_per_node=2", "logger=wandb", env={"WANDB_API_KEY": SECRET, "WANDB_MODE": "offline"}
    )
    assert run.returncode == 0, run.output
    (path,) = offline_runs(run.dir)  # one run, not one per rank
    wb = read_run(path)
    assert wb.project == "scaletrain"
    assert wb.config["devices"] == 2 and wb.config["strategy"] == "ddp" and wb.config["launcher"] == "local"
    assert wb.config["versions"]["torch"] and wb.config["hardware"]["cpu_count"] >= 1
    logged_steps = [h["_step"] for h in wb.history if "loss" in h]
    assert logged_steps == [m["step"] for m in run.metrics if "loss" in m]
    assert {"loss", "samples_per_s", "step_time_s", "comm_fraction"} <= set(wb.history[0])
    assert wb.summary["final_loss"] == pytest.approx(run.summary["final_loss"])
    assert run.summary["wandb_run_id"] == wb.run_id
    for file in [p for p in run.dir.rglob("*") if p.is_file()]:
        assert SECRET.encode() not in file.read_bytes(), f"the API key leaked into {file}"


def test_resumed_run_continues_the_same_wandb_run(scaletrain, tmp_path):
    run_dir = tmp_path / "resumable"
    common = (*SMALL, "launcher.nproc_per_node=1", "logger=wandb", "logger.mode=offline", f"hydra.run.dir={run_dir}")
    first = scaletrain(*common)
    assert first.returncode == 0, first.output
    second = scaletrain(*common, "resume=true", "train.epochs=2")
    assert second.returncode == 0, second.output
    ids = {read_run(p).run_id for p in offline_runs(run_dir)}
    assert len(offline_runs(run_dir)) == 2 and len(ids) == 1
    assert (run_dir / "checkpoints" / "wandb_run_id").read_text().strip() in ids


def test_sweep_runs_share_one_wandb_group_with_a_summary_run(scaletrain):
    run = scaletrain(
        *SMALL, "scaling.device_counts=[1,2]", "scaling.allreduce_repeats=1", "logger=wandb", "logger.mode=offline",
        "scaling.forecast_device_counts=[8,64]",
    )  # fmt: skip
    assert run.returncode == 0, run.output
    runs = [read_run(p) for p in offline_runs(run.dir)]
    assert len(runs) == 3  # world size 1, world size 2, and the sweep summary
    assert len({r.group for r in runs}) == 1 and runs[0].group
    summary_runs = [r for r in runs if "scaling_table/nrows" in r.summary]  # a wandb.Table, stored as nested keys
    assert len(summary_runs) == 1
    assert summary_runs[0].summary["scaling_table/nrows"] == 2
    assert "scaling_plot/_type" in summary_runs[0].summary  # the efficiency chart image
    assert sorted(r.config["devices"] for r in runs if r not in summary_runs) == [1, 2]

    # each point's run: what ran where, and over which network
    result = json.loads((run.dir / "scaling.json").read_text())
    one, two = result["rows"]
    points = sorted((r for r in runs if r not in summary_runs), key=lambda r: r.config["devices"])
    for wb, row in zip(points, result["rows"], strict=True):
        cfg = wb.config
        assert cfg["devices"] == cfg["processes"] == row["devices"]  # ddp: one device per process
        assert (cfg["strategy"], cfg["launcher"], cfg["framework"]) == ("ddp", "local", "torch")
        assert cfg["hardware"]["cpu_model"] and cfg["hardware"]["cpu_count"] >= 1 and "gpu_name" in cfg["hardware"]
        assert cfg["network"]["hosts"] == 1 and cfg["network"]["interface"] == "lo"  # master 127.0.0.1
    fit = json.loads((run.dir / "devices_2" / "summary.json").read_text())["allreduce"]
    assert points[1].config["network"]["alpha_s"] == pytest.approx(fit["alpha_s"])
    assert points[1].config["network"]["beta_s_per_byte"] == pytest.approx(fit["beta_s_per_byte"])
    assert "alpha_s" not in points[0].config["network"]  # one device: no all-reduce to time

    # the summary run: native line-series charts from tables, measured beside ideal and predicted
    summary = summary_runs[0]
    assert summary.config["device_counts"] == [1, 2]
    assert summary.config["network"]["alpha_s"] == pytest.approx(result["alpha_beta"]["alpha_s"])
    for key, y in (("efficiency_chart", "efficiency"), ("throughput_chart", "samples_per_s")):
        chart = summary.chart(key)
        assert chart["panelDefId"] == "wandb/lineseries/v0"
        assert chart["fieldSettings"] == {"step": "devices", "lineKey": "series", "lineVal": y}
    efficiency = {(r["devices"], r["series"]): r["efficiency"] for r in summary.table("efficiency_chart_table")}
    assert efficiency == pytest.approx(
        {
            (1, "measured"): 1.0,
            (1, "ideal"): 1.0,
            (1, "predicted"): one["predicted_efficiency"],
            (2, "measured"): two["efficiency"],
            (2, "ideal"): 1.0,
            (2, "predicted"): two["predicted_efficiency"],
        }
    )
    throughput = {(r["devices"], r["series"]): r["samples_per_s"] for r in summary.table("throughput_chart_table")}
    assert throughput[2, "measured"] == pytest.approx(two["samples_per_s"])
    assert throughput[2, "ideal"] == pytest.approx(2 * one["samples_per_s"])
    assert throughput[2, "predicted"] == pytest.approx(2 * one["samples_per_s"] * two["predicted_efficiency"])
    split = [r for r in summary.table("time_split_chart_table") if r["devices"] == 2]
    assert {r["part"] for r in split} == {"compute", "communication", "data"}
    assert sum(r["fraction"] for r in split) == pytest.approx(1.0, abs=1e-6)
    assert summary.chart("time_split_chart")["fieldSettings"]["lineVal"] == "fraction"
    assert summary.chart("time_split_bars")["panelDefId"] == "wandb/bar/v0"
    assert len(summary.table("time_split_bars_table")) == 6  # three parts at each of the two world sizes
    forecast = {r["devices"]: r for r in summary.table("forecast_table")}  # the sizes not run, as forecast
    assert sorted(forecast) == [8, 64]
    for row in result["forecast"]["rows"]:
        assert forecast[row["devices"]]["efficiency_no_overlap"] == pytest.approx(row["efficiency_no_overlap"])
