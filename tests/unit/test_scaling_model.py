"""Scaling arithmetic on hand-computed numbers: efficiencies, the α-β fit, predictions, the analysis table."""

from __future__ import annotations

import json

import pytest

from scaletrain.common import alpha_beta as model
from scaletrain.contract.summary import RunSummary
from scaletrain.driver.scaling import analysis, baseline, report


def test_weak_efficiency_is_per_device_throughput_over_one_rank_throughput():
    # 1 rank: 1000 samples/s. 4 ranks: 3600 samples/s in all, 900 per device -> 90 %.
    assert model.weak_efficiency(900.0, 1000.0) == pytest.approx(0.9)


def test_strong_efficiency_is_t1_over_n_times_tn():
    # The same global batch takes 0.8 s on 1 rank and 0.25 s on 4: 0.8 / (4 * 0.25) = 80 %.
    assert model.strong_efficiency(0.8, 0.25, 4) == pytest.approx(0.8)
    point, base = model.Throughput(3200.0, 800.0, 0.25), model.Throughput(1000.0, 1000.0, 0.8)
    assert model.efficiency("strong", 4, point, base) == pytest.approx(0.8)


def test_ring_allreduce_moves_2_n_minus_1_over_n_of_the_bytes():
    assert model.ring_allreduce_factor(2) == pytest.approx(1.0)
    assert model.ring_allreduce_factor(4) == pytest.approx(1.5)


def test_alpha_beta_fit_recovers_known_parameters():
    alpha, beta, n = 50e-6, 1 / 1.25e9, 4  # 50 µs per ring step, 10 Gbit/s
    sizes = [4e3, 1e6, 4e6, 16e6]
    times = [2 * (n - 1) * alpha + 1.5 * s * beta for s in sizes]
    fit = model.fit_alpha_beta(sizes, times, n)
    assert fit.alpha_s == pytest.approx(alpha, rel=1e-6)
    assert fit.beta_s_per_byte == pytest.approx(beta, rel=1e-6)
    assert fit.bandwidth_gbit_per_s == pytest.approx(10.0, rel=1e-6)
    assert fit.allreduce_s(16e6) == pytest.approx(times[-1])


def test_alpha_beta_fit_needs_two_sizes_and_two_ranks():
    with pytest.raises(ValueError):
        model.fit_alpha_beta([1e6], [1e-3], 2)
    with pytest.raises(ValueError):
        model.fit_alpha_beta([1e3, 1e6], [1e-4, 1e-3], 1)


def test_prediction_adds_the_bucketed_allreduce_to_the_scaled_compute_time():
    ab = model.AlphaBeta(alpha_s=100e-6, beta_s_per_byte=1e-9, world_size=2)
    grads = 30 * 2**20  # two DDP buckets of 25 MiB
    # 0.1 s compute, same per-device batch; comm = 2 buckets * 2(2-1) * 100 µs + 1.0 * grads * 1 ns
    expected = 0.1 + 2 * 2 * 100e-6 + grads * 1e-9
    assert model.predicted_step_time_s(0.1, 1.0, grads, ab, 2) == pytest.approx(expected)
    assert model.predicted_step_time_s(0.1, 0.5, grads, None, 2) == pytest.approx(0.05)


def _summary(n, samples_per_s, step_time_s, batch, **extra):
    return RunSummary.from_dict(_summary_record(n, samples_per_s, step_time_s, batch, **extra))


def _summary_record(n, samples_per_s, step_time_s, batch, **extra):
    return {
        "workload": "synthetic",
        "strategy": "ddp",
        "framework": "torch",
        "world_size": n,
        "comm_measured": True,
        "samples_per_s": samples_per_s,
        "samples_per_s_per_device": samples_per_s / n,
        "step_time_s": step_time_s,
        "global_batch_size": batch,
        "gradient_bytes": 4_000_000,
        **extra,
    }


def test_weak_analysis_rows():
    ab = {"alpha_s": 0.0, "beta_s_per_byte": 1e-9, "world_size": 2}
    points = [
        _summary(1, 1000.0, 0.1, 100, data_time_s=0.01, compute_time_s=0.09),
        _summary(2, 1600.0, 0.125, 200, allreduce=ab, comm_fraction=0.2, compute_time_s=0.1, data_time_s=0.0),
    ]
    result = analysis.analyse("weak", points)
    one, two = result["rows"]
    assert one["efficiency"] == pytest.approx(1.0) and one["predicted_efficiency"] == pytest.approx(1.0)
    assert two["efficiency"] == pytest.approx(0.8)  # 800 per device / 1000
    # predicted step = 0.1 + 1.0 * 4e6 * 1e-9 = 0.104 s -> 0.1 / 0.104
    assert two["predicted_efficiency"] == pytest.approx(0.1 / 0.104)
    assert two["predicted_comm_s"] == pytest.approx(0.004)
    assert two["compute_slowdown"] == pytest.approx(0.1 / 0.09)
    assert result["alpha_beta"]["beta_s_per_byte"] == 1e-9


def test_strong_analysis_uses_the_fixed_global_batch():
    points = [_summary(1, 1000.0, 0.2, 200), _summary(4, 2500.0, 0.08, 200)]
    (_, four) = analysis.analyse("strong", points)["rows"]
    assert four["efficiency"] == pytest.approx(0.2 / (4 * 0.08))  # 62.5 %
    assert four["predicted_efficiency"] == pytest.approx(1.0)  # no α-β fit: only the compute term, split 4 ways


def test_analysis_needs_the_one_rank_run():
    with pytest.raises(ValueError):
        analysis.analyse("weak", [_summary(2, 1.0, 1.0, 2)])


def _write_run(directory, world_size, batch, samples_per_s, lr=0.1):
    directory.mkdir(parents=True)
    job = {
        "train": {"global_batch_size": batch, "lr": lr},
        "launcher": {"nproc_per_node": world_size},
        "output_dir": str(directory),
        "checkpoint": {"dir": str(directory / "ckpt")},
    }
    (directory / "job.json").write_text(json.dumps(job))
    summary = _summary_record(world_size, samples_per_s, batch / samples_per_s, batch)
    (directory / "summary.json").write_text(json.dumps(summary))


def test_single_run_finds_its_one_rank_sibling_in_the_sweep_directory(tmp_path):
    _write_run(tmp_path / "0", 1, 64, 1000.0)
    _write_run(tmp_path / "1", 2, 128, 1800.0)  # per-device batch kept: weak
    _write_run(tmp_path / "2", 2, 64, 1500.0)  # global batch kept: strong
    _write_run(tmp_path / "3", 2, 128, 1800.0, lr=0.5)  # another experiment: no baseline
    weak = baseline.single_run_efficiency(tmp_path / "1")
    assert weak["efficiency_mode"] == "weak" and weak["efficiency"] == pytest.approx(0.9)
    strong = baseline.single_run_efficiency(tmp_path / "2")
    assert strong["efficiency_mode"] == "strong" and strong["efficiency"] == pytest.approx(0.75)
    assert baseline.single_run_efficiency(tmp_path / "3") is None
    assert baseline.single_run_efficiency(tmp_path / "0") is None


def test_full_overlap_bound_hides_the_allreduce_behind_compute():
    ab = {"alpha_s": 0.0, "beta_s_per_byte": 1e-9, "world_size": 2}  # 4 MB of gradients: 4 ms at N=2
    points = [_summary(1, 1000.0, 0.1, 100), _summary(2, 1600.0, 0.125, 200, allreduce=ab)]
    two = analysis.analyse("weak", points)["rows"][1]
    assert two["predicted_efficiency"] == pytest.approx(0.1 / 0.104)
    assert two["predicted_efficiency_full_overlap"] == pytest.approx(1.0)  # max(0.1 s compute, 4 ms comm)


@pytest.mark.parametrize(
    ("split", "term"),
    [
        ({"compute_time_s": 0.15, "data_time_s": 0.01, "exposed_comm_s": 0.004}, "the compute term is off"),
        ({"compute_time_s": 0.09, "data_time_s": 0.06, "exposed_comm_s": 0.004}, "the data term is off"),
        ({"compute_time_s": 0.09, "data_time_s": 0.01, "exposed_comm_s": 0.06}, "the communication term is off"),
    ],
)
def test_a_point_below_the_no_overlap_bound_names_the_term_that_is_off(split, term):
    step = sum(split.values())
    points = [
        _summary(1, 1000.0, 0.1, 100, compute_time_s=0.09, data_time_s=0.01, exposed_comm_s=0.0),
        _summary(2, 200 / step, step, 200, allreduce={"alpha_s": 0.0, "beta_s_per_byte": 1e-9, "world_size": 2},
                 **split),
    ]  # fmt: skip
    result = analysis.analyse("weak", points)
    (sentence,) = result["off_bounds"]
    assert sentence.startswith("on 2 devices the measured efficiency") and "below the no-overlap bound" in sentence
    assert term in sentence
    assert f"Off the bounds: {sentence}." in report.table(result)


def test_a_point_within_the_bounds_says_nothing_and_one_above_blames_the_baseline():
    ab = {"alpha_s": 0.0, "beta_s_per_byte": 1e-9, "world_size": 2}
    inside = [_summary(1, 1000.0, 0.1, 100), _summary(2, 1950.0, 0.1026, 200, allreduce=ab)]
    assert analysis.analyse("weak", inside)["off_bounds"] == []
    above = [_summary(1, 1000.0, 0.1, 100), _summary(2, 2400.0, 0.0833, 200, allreduce=ab)]
    (sentence,) = analysis.analyse("weak", above)["off_bounds"]
    assert "above even the full-overlap bound" in sentence and "rerun the 1-device point" in sentence


def test_no_single_run_efficiency_between_partial_runs(tmp_path):
    """A resumed (or restarted) run's throughput covers only its own steps: no efficiency from it, and why."""
    _write_run(tmp_path / "0", 1, 64, 1000.0)
    _write_run(tmp_path / "1", 2, 128, 1800.0)
    resumed = json.loads((tmp_path / "1" / "summary.json").read_text()) | {"resumed_from_step": 40}
    (tmp_path / "1" / "summary.json").write_text(json.dumps(resumed))
    found = baseline.single_run_efficiency(tmp_path / "1")
    assert found == {
        "efficiency_skipped": f"no scaling efficiency against {tmp_path / '0'}: this run is partial (it resumed from "
        "step 40, so its throughput covers only its own steps)"
    }
    _write_run(tmp_path / "2", 2, 128, 1800.0)  # complete, but its baseline restarted
    restarted = json.loads((tmp_path / "0" / "summary.json").read_text()) | {"attempt": 1}
    (tmp_path / "0" / "summary.json").write_text(json.dumps(restarted))
    assert "the 1-device run in" in baseline.single_run_efficiency(tmp_path / "2")["efficiency_skipped"]
