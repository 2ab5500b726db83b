"""What the W&B runs record: the point runs' config figures and the summary run's tables and native charts."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from wandb_files import offline_runs, read_run

from scaletrain.common import hardware
from scaletrain.contract.env import ClusterEnv
from scaletrain.driver import tracking as driver_tracking
from scaletrain.driver.scaling import charts
from scaletrain.rank import tracking
from scaletrain.strategies import ddp, mirrored, xla

MEASURED = {
    "devices": 1,
    "samples_per_s": 100.0,
    "step_time_s": 0.5,
    "efficiency": 1.0,
    "predicted_efficiency": 1.0,
    "comm_fraction": 0.0,
    "data_fraction": 0.1,
    "compute_time_s": 0.45,
}
TWO = {**MEASURED, "devices": 2, "samples_per_s": 160.0, "step_time_s": 0.625, "efficiency": 0.8}
TWO.update(predicted_efficiency=0.9, comm_fraction=0.2, data_fraction=0.08, compute_time_s=0.45)
FAILED = {"devices": 4, "status": "failed", "efficiency": None, "samples_per_s": None}


def test_efficiency_series_has_measured_ideal_and_predicted_and_skips_a_failed_point():
    no_prediction = {**TWO, "devices": 3, "predicted_efficiency": None}
    assert charts.efficiency_series([TWO, FAILED, MEASURED, no_prediction]) == [
        [1, "measured", 1.0],
        [1, "ideal", 1.0],
        [1, "predicted", 1.0],
        [2, "measured", 0.8],
        [2, "ideal", 1.0],
        [2, "predicted", 0.9],
        [3, "measured", 0.8],
        [3, "ideal", 1.0],
    ]


def test_throughput_ideal_is_linear_in_the_1_device_throughput_and_predicted_follows_the_efficiency():
    series = {(n, s): v for n, s, v in charts.throughput_series([MEASURED, TWO, FAILED])}
    assert series == pytest.approx(
        {
            (1, "measured"): 100.0,
            (1, "ideal"): 100.0,
            (1, "predicted"): 100.0,
            (2, "measured"): 160.0,
            (2, "ideal"): 200.0,
            (2, "predicted"): 180.0,
        }
    )
    # without the 1-device point's throughput only the measured series is known
    assert charts.throughput_series([TWO]) == [[2, "measured", 160.0]]


def test_time_split_parts_add_up_to_the_step_and_name_an_unsplit_communication():
    split = charts.time_split([MEASURED, TWO, FAILED])
    at_two = {part: (seconds, fraction) for n, part, seconds, fraction, _ in split if n == 2}
    assert set(at_two) == {"compute", "communication", "data"}
    assert sum(f for _, f in at_two.values()) == pytest.approx(1.0)
    assert at_two["communication"] == pytest.approx((0.125, 0.2))
    assert [label for n, *_, label in split if n == 2] == ["N=2 compute", "N=2 communication", "N=2 data"]
    tf_row = {**TWO, "comm_fraction": None, "compute_time_s": 0.575}  # TensorFlow: comm inside the compiled step
    assert [part for _, part, *_ in charts.time_split([tf_row])] == ["compute+comm", "data"]
    assert not any(n == 4 for n, *_ in split)


def test_scaling_table_takes_every_column_of_any_row():
    columns, data = charts.table_data([MEASURED, FAILED])
    assert columns[: len(MEASURED)] == list(MEASURED) and "status" in columns
    assert data[0][columns.index("status")] is None and data[1][columns.index("status")] == "failed"
    assert data[1][columns.index("step_time_s")] is None


def test_measured_config_takes_devices_and_the_alpha_beta_fit_from_the_summary():
    fit = {"alpha_s": 1e-5, "beta_s_per_byte": 1e-9, "bandwidth_gbit_per_s": 8.0, "devices": 4}
    assert tracking.measured_config({"replicas": 4, "allreduce": fit, "loss": 1.0}) == {
        "devices": 4,
        "network": {"alpha_s": 1e-5, "beta_s_per_byte": 1e-9, "bandwidth_gbit_per_s": 8.0, "alpha_beta_devices": 4},
    }
    assert tracking.measured_config({"world_size": 2}) == {}
    infinite = tracking.alpha_beta_config({**fit, "beta_s_per_byte": 0.0, "bandwidth_gbit_per_s": math.inf})
    assert infinite["bandwidth_gbit_per_s"] is None  # no zero-cost wire in a JSON config
    assert tracking.alpha_beta_config(None) == {}


def _env(**kw) -> ClusterEnv:
    base = dict(rank=0, local_rank=0, world_size=2, local_world_size=2, node_rank=0, num_nodes=1)
    return ClusterEnv(**{**base, "master_addr": "127.0.0.1", "master_port": 29500, "source": "local", **kw})


def test_network_config_names_the_hosts_and_the_interface_picked_or_set():
    job = SimpleNamespace(launcher=SimpleNamespace(nnodes=3))
    picked = tracking.network_config(job, _env(), environ={})
    assert picked["hosts"] == 1 and picked["interface"] == "lo" and picked["address"] == "127.0.0.1"
    yours = tracking.network_config(job, _env(), environ={"NCCL_SOCKET_IFNAME": "ib0"})
    assert yours["interface"] == "ib0" and yours["interface_chosen_by"] == "NCCL_SOCKET_IFNAME (yours)"
    unknown = tracking.network_config(job, _env(master_addr="no-such-host.invalid"), environ={})
    assert unknown["interface"] is None
    assert tracking.network_config(job, None, environ={}) == {"hosts": 3, "interface": None}  # the sweep driver


def test_devices_in_the_config_count_devices(monkeypatch):
    monkeypatch.setattr(hardware, "gpu_count", lambda environ=None: 0)
    assert tracking.devices(SimpleNamespace(strategy=ddp.Config()), 4) == 4
    assert tracking.devices(SimpleNamespace(strategy=xla.Config(device="CPU", num_devices=4)), 1) == 4
    assert tracking.devices(SimpleNamespace(strategy=mirrored.Config(cpu_devices=3)), 1) == 3


def test_hardware_reads_the_cpu_model_memory_and_visible_gpu_names(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9654 96-Core Processor\n")
    assert hardware.cpu_model(cpuinfo) == "AMD EPYC 9654 96-Core Processor"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       131072000 kB\nMemFree: 1 kB\n")
    assert hardware.memory_gib(meminfo) == pytest.approx(125.0)
    gpus = tmp_path / "gpus"
    for bus, model, uuid in [("0000:01:00.0", "NVIDIA H200", "GPU-aaaa"), ("0000:02:00.0", "NVIDIA L4", "GPU-bbbb")]:
        (gpus / bus).mkdir(parents=True)
        (gpus / bus / "information").write_text(f"Model: \t\t {model}\nIRQ:   1\nGPU UUID: \t {uuid}\n")
    assert hardware.gpu_names({}, gpus) == ["NVIDIA H200", "NVIDIA L4"]
    assert hardware.gpu_names({"CUDA_VISIBLE_DEVICES": "1"}, gpus) == ["NVIDIA L4"]
    assert hardware.gpu_names({"CUDA_VISIBLE_DEVICES": "GPU-aaaa"}, gpus) == ["NVIDIA H200"]
    assert hardware.gpu_names({"CUDA_VISIBLE_DEVICES": "-1"}, gpus) == []
    assert hardware.gpu_names({}, tmp_path / "absent") == []


def test_summary_run_of_a_sweep_with_a_failed_point_logs_its_charts(tmp_path, monkeypatch):
    """log_sweep in this process, offline: a failed point is in the table, not in the charts, and nothing breaks."""
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    job = SimpleNamespace(
        strategy=ddp.Config(),
        launcher=SimpleNamespace(name="local", nnodes=1),
        workload=SimpleNamespace(name="synthetic"),
        train=SimpleNamespace(global_batch_size=64),
        checkpoint=SimpleNamespace(dir=str(tmp_path / "checkpoints")),
        logger=SimpleNamespace(project="scaletrain", entity=None, group="g-unit", tags=[], mode="offline"),
        output_dir=str(tmp_path),
        to_dict=lambda: {"seed": 0},
    )
    fit = {"alpha_s": 2e-5, "beta_s_per_byte": 1e-9, "bandwidth_gbit_per_s": 8.0, "fitted_at_devices": 2}
    analysis = {"mode": "weak", "rows": [MEASURED, TWO, FAILED], "alpha_beta": fit}
    driver_tracking.log_sweep(job, analysis, plot_path=None)  # returns once the run file is flushed and closed
    (path,) = offline_runs(tmp_path)
    run = read_run(path)
    assert run.group == "g-unit" and run.job_type == "scaling-summary"
    assert run.config["device_counts"] == [1, 2, 4] and "devices" not in run.config
    assert run.config["network"]["alpha_s"] == 2e-5 and run.config["network"]["alpha_beta_devices"] == 2
    assert [r["status"] for r in run.table("scaling_table")] == [None, None, "failed"]
    efficiency = run.table("efficiency_chart_table")
    assert {r["devices"] for r in efficiency} == {1, 2}  # the failed point is not plotted
    chart = run.chart("efficiency_chart")
    assert chart["panelDefId"] == "wandb/lineseries/v0"
    assert chart["fieldSettings"] == {"step": "devices", "lineKey": "series", "lineVal": "efficiency"}
    assert run.chart("time_split_bars")["panelDefId"] == "wandb/bar/v0"
    assert "scaling_plot/_type" not in run.summary  # no image without a plot
