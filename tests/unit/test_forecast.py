"""The forecast and the fit's range, on hand-computed numbers: bounds, ranges, hierarchy, cost, the config."""

from __future__ import annotations

import random

import pytest

from scaletrain.common import alpha_beta as model
from scaletrain.contract.config import ScalingConfig, typed
from scaletrain.contract.errors import ConfigError
from scaletrain.contract.summary import RunSummary
from scaletrain.driver.scaling import analysis, forecast, report

MIB = 2**20


def _flat(alpha_s: float, gbit: float) -> model.AlphaBeta:
    return model.AlphaBeta(alpha_s, 8 / (gbit * 1e9), 2)


def _same(m) -> forecast.Models:
    return forecast.Models(m, m, m)


# ---- the fit's range ------------------------------------------------------------------------------------------


def test_two_regime_fit_recovers_alpha_that_one_unweighted_line_loses_to_noise_on_the_largest_message():
    alpha, beta, n = 100e-6, 8 / 10e9, 2
    sizes = [4096, 16384, 65536, 262144, 1 * MIB, 4 * MIB, 16 * MIB]
    times = [2 * (n - 1) * alpha + s * beta for s in sizes]
    times[5] *= 0.9  # 10 % of noise on the 3.5 ms message and 5 % on the 13 ms one: more than the small
    times[6] *= 1.05  # messages' whole 0.2 ms
    regimes = model.fit_alpha_beta_regimes(sizes, times, n)
    plain = model.fit_alpha_beta(sizes, times, n)
    assert regimes.alpha_s == pytest.approx(alpha, rel=0.05)
    assert abs(plain.alpha_s - alpha) > 0.3 * alpha


def test_two_regime_fit_finds_a_shaped_links_sustained_bandwidth_behind_its_burst():
    """A token bucket (tc tbf, 64 KiB burst) lets small messages through at line rate and holds large ones to the
    shaped rate: β must come from the large ones (a relative-error line took it from the small ones: 2.5x off)."""
    n, alpha, line, shaped, burst = 2, 100e-6, 8 / 13e9, 8 / 0.2e9, 64 * 1024
    sizes = [4096, 16384, 65536, 262144, 1 * MIB, 4 * MIB, 16 * MIB]
    wire = [model.ring_allreduce_factor(n) * s for s in sizes]
    times = [2 * alpha + min(w, burst) * line + max(0.0, w - burst) * shaped for w in wire]
    fit = model.fit_alpha_beta_regimes(sizes, times, n)
    assert fit.bandwidth_gbit_per_s == pytest.approx(0.2, rel=0.05)
    assert model.fit_alpha_beta(sizes, times, n, relative_error=True).bandwidth_gbit_per_s > 0.3


def test_quantile_interpolates_between_order_statistics():
    assert model.quantile([4.0, 1.0, 3.0, 2.0], 0.0) == 1.0
    assert model.quantile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)
    assert model.quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.2) == pytest.approx(1.8)
    with pytest.raises(ValueError):
        model.quantile([], 0.5)


def _bimodal_repeats(sizes, alpha, beta, rng, preempted=0.4, tick_s=4e-3, repeats=25):
    """Timings of a shared host: the wire time, plus a scheduler tick in ``preempted`` of the repeats."""
    return [
        [
            2 * alpha + s * beta + (tick_s if rng.random() < preempted else 0.0) + rng.uniform(0, 5e-6)
            for _ in range(repeats)
        ]
        for s in sizes
    ]


def test_fit_range_ignores_a_preempted_minority_and_brackets_the_truth():
    alpha, beta = 150e-6, 8 / 11e9
    sizes = [4096, 16384, 65536, 262144, 1 * MIB, 4 * MIB, 16 * MIB]
    fits = []
    for seed in (1, 2):
        repeats = _bimodal_repeats(sizes, alpha, beta, random.Random(seed))
        fits.append(model.fit_alpha_beta_range(sizes, repeats, 2))
    for r in fits:
        assert r.alpha_s_low <= r.fit.alpha_s <= r.alpha_s_high
        assert r.beta_s_per_byte_low <= r.fit.beta_s_per_byte <= r.beta_s_per_byte_high
        assert r.fit.alpha_s == pytest.approx(alpha, rel=0.1)
        assert r.fit.bandwidth_gbit_per_s == pytest.approx(11, rel=0.1)
    # two "sweeps" agree within 20 %, where the medians of the same timings need not
    assert fits[0].fit.alpha_s == pytest.approx(fits[1].fit.alpha_s, rel=0.2)


def test_fit_range_is_reproducible_and_collapses_when_every_repeat_agrees():
    sizes = [4096, 1 * MIB, 16 * MIB]
    exact = [[2 * 50e-6 + s * 1e-9] * 5 for s in sizes]
    r = model.fit_alpha_beta_range(sizes, exact, 2)
    assert r.alpha_s_low == pytest.approx(r.alpha_s_high) == pytest.approx(50e-6)
    noisy = _bimodal_repeats(sizes, 50e-6, 1e-9, random.Random(3))
    assert model.fit_alpha_beta_range(sizes, noisy, 2) == model.fit_alpha_beta_range(sizes, noisy, 2)
    with pytest.raises(ValueError):
        model.fit_alpha_beta_range(sizes, [[1e-3], [], [2e-3]], 2)


# ---- the all-reduce models ------------------------------------------------------------------------------------


def test_stated_network_with_one_device_per_node_is_the_flat_ring():
    net = forecast.Network(bandwidth_gbit_per_s=10, latency_us=20)
    ring = _flat(20e-6, 10)
    for n in (2, 8, 64):
        assert net.allreduce_s(100 * MIB, n, buckets=4) == pytest.approx(ring.allreduce_s(100 * MIB, n, buckets=4))
    assert net.allreduce_s(100 * MIB, 1) == 0.0


def test_hierarchical_allreduce_adds_the_intra_node_phases_to_a_ring_over_the_nodes():
    # 4 nodes x 8 devices, 1 bucket of 80 MB: intra 2*7*1µs + 2*7/8*80e6*8/2400e9, inter 2*3*10µs + 2*3/4*80e6*8/100e9
    net = forecast.Network(100, 10, devices_per_node=8, intra_node_bandwidth_gbit_per_s=2400, intra_node_latency_us=1)
    intra = 2 * 7 * 1e-6 + 2 * 7 / 8 * 80e6 * 8 / 2400e9
    inter = 2 * 3 * 10e-6 + 2 * 3 / 4 * 80e6 * 8 / 100e9
    assert net.allreduce_s(80e6, 32) == pytest.approx(intra + inter)
    assert net.nodes(32) == 4 and net.nodes(33) == 5
    # within one node only the intra-node ring is paid; two devices per node beats a flat ring over slow links
    assert net.allreduce_s(80e6, 8) == pytest.approx(intra)
    flat = forecast.Network(100, 10)
    assert net.allreduce_s(80e6, 32) < flat.allreduce_s(80e6, 32)


# ---- rows, bounds, ranges -------------------------------------------------------------------------------------


def test_weak_row_has_no_overlap_below_full_overlap_and_carries_the_range():
    base = forecast.Baseline(step_time_s=0.1, global_batch_size=32, gradient_bytes=10 * MIB, samples_per_epoch=None)
    models = forecast.Models(_flat(100e-6, 10), _flat(50e-6, 20), _flat(200e-6, 5))
    row = forecast.forecast_row("weak", base, 8, models)
    comm = _flat(100e-6, 10).allreduce_s(10 * MIB, 8)  # one DDP bucket
    assert row["comm_s"] == pytest.approx(comm)
    assert row["step_time_s_no_overlap"] == pytest.approx(0.1 + comm)
    assert row["efficiency_no_overlap"] == pytest.approx(0.1 / (0.1 + comm))
    assert row["efficiency_full_overlap"] == pytest.approx(1.0)  # comm < compute: hidden completely
    assert row["samples_per_s_no_overlap"] == pytest.approx(32 * 8 / (0.1 + comm))
    assert row["efficiency_no_overlap_low"] < row["efficiency_no_overlap"] < row["efficiency_no_overlap_high"]
    assert row["comm_s_low"] < row["comm_s"] < row["comm_s_high"]
    assert row["cost_per_epoch_no_overlap"] is None


def test_full_overlap_is_bounded_by_communication_when_it_exceeds_compute():
    base = forecast.Baseline(0.01, 32, 100 * MIB)
    row = forecast.forecast_row("weak", base, 64, _same(_flat(10e-6, 10)))
    assert row["comm_s"] > 0.01
    assert row["efficiency_full_overlap"] == pytest.approx(0.01 / row["comm_s"])
    assert row["efficiency_no_overlap"] == pytest.approx(0.01 / (0.01 + row["comm_s"]))


def test_strong_scaling_shrinks_compute_and_keeps_the_global_batch():
    base = forecast.Baseline(0.8, 256, 4 * MIB)
    row = forecast.forecast_row("strong", base, 4, _same(_flat(0.0, 1e9)))  # a near-free network
    assert row["compute_s"] == pytest.approx(0.2)
    assert row["global_batch_size"] == 256
    assert row["efficiency_no_overlap"] == pytest.approx(1.0, abs=1e-6)
    fc = forecast.forecast("strong", base, [4, 512], _same(_flat(0.0, 1e9)), 0.8)
    assert fc["device_counts"] == [4] and "512" not in fc["notes"][0] and "global batch of 256" in fc["notes"][0]


def test_cost_per_epoch_is_epoch_hours_times_devices_times_price():
    base = forecast.Baseline(0.1, 100, 1 * MIB, samples_per_epoch=1_000_000)
    row = forecast.forecast_row("weak", base, 10, _same(_flat(0.0, 1e9)), price_per_device_hour=3.0)
    hours = 1_000_000 / row["samples_per_s_no_overlap"] / 3600
    assert row["cost_per_epoch_no_overlap"] == pytest.approx(hours * 10 * 3.0)
    # near-perfect scaling: 10 devices finish the epoch 10x sooner for the same price
    one = forecast.forecast_row("weak", base, 1, _same(_flat(0.0, 1e9)), price_per_device_hour=3.0)
    assert row["cost_per_epoch_no_overlap"] == pytest.approx(one["cost_per_epoch_no_overlap"], rel=1e-3)


def test_cost_range_is_cheap_with_the_fast_network():
    base = forecast.Baseline(0.01, 32, 50 * MIB, samples_per_epoch=10_000)
    models = forecast.Models(_flat(100e-6, 10), _flat(50e-6, 20), _flat(200e-6, 5))
    row = forecast.forecast_row("weak", base, 16, models, price_per_device_hour=1.0)
    assert (
        row["cost_per_epoch_no_overlap_low"] < row["cost_per_epoch_no_overlap"] < row["cost_per_epoch_no_overlap_high"]
    )


# ---- the largest efficient size -------------------------------------------------------------------------------


def test_largest_efficient_world_size_finds_the_boundary_of_a_decreasing_efficiency():
    def eff(n):
        return 1 / (1 + 0.01 * (n - 1))  # ≥ 0.8 while 0.01 (n - 1) ≤ 0.25: n ≤ 26

    assert forecast.largest_efficient_world_size(eff, 0.8) == 26
    assert forecast.largest_efficient_world_size(lambda n: 0.5, 0.8) == 1
    assert forecast.largest_efficient_world_size(lambda n: 1.0, 0.8, limit=1000) == 1000


def test_largest_efficient_matches_a_brute_force_search_per_bound_and_orders_its_range():
    base = forecast.Baseline(0.05, 64, 20 * MIB)
    models = forecast.Models(_flat(50e-6, 10), _flat(25e-6, 20), _flat(100e-6, 5))
    found = forecast.largest_efficient("weak", base, models, 0.8)
    for bound in forecast.BOUNDS:
        brute = max(
            n
            for n in range(1, 3000)
            if forecast.forecast_row("weak", base, n, _same(models.value))[f"efficiency_{bound}"] >= 0.8
        )
        assert found[bound]["value"] == brute
        assert found[bound]["low"] <= found[bound]["value"] <= found[bound]["high"]
    assert found["no_overlap"]["value"] < found["full_overlap"]["value"]


# ---- the section in the analysis and the printed table --------------------------------------------------------


def _summary(n, step_time_s, batch, **extra):
    record = {
        "workload": "synthetic",
        "strategy": "ddp",
        "framework": "torch",
        "world_size": n,
        "samples_per_s": batch / step_time_s,
        "samples_per_s_per_device": batch / step_time_s / n,
        "step_time_s": step_time_s,
        "global_batch_size": batch,
        "gradient_bytes": 4 * MIB,
        "steps_per_epoch": 32 // n,
        "comm_measured": True,
        **extra,
    }
    return RunSummary.from_dict(record)


FIT = {
    "alpha_s": 100e-6,
    "beta_s_per_byte": 8 / 10e9,
    "alpha_s_low": 80e-6,
    "alpha_s_high": 130e-6,
    "beta_s_per_byte_low": 8 / 12e9,
    "beta_s_per_byte_high": 8 / 8e9,
    "devices": 2,
}


def test_analysis_gets_a_forecast_section_from_the_fit_and_the_table_names_the_largest_size():
    points = [_summary(1, 0.1, 256), _summary(2, 0.12, 512, allreduce=FIT)]
    cfg = typed(ScalingConfig, {"forecast_device_counts": [8, 64, 512], "price_per_device_hour": 2.5}, "scaling")
    result = analysis.analyse("weak", points, scaling=cfg)
    fc = result["forecast"]
    assert [r["devices"] for r in fc["rows"]] == [8, 64, 512]
    assert fc["samples_per_epoch"] == 32 * 256
    expected = forecast.forecast_row(
        "weak", forecast.Baseline(0.1, 256, 4 * MIB, 32 * 256), 64, forecast.models_from_fit(FIT), 2.5
    )
    assert fc["rows"][1] == expected
    effs = [r["efficiency_no_overlap"] for r in fc["rows"]]
    assert effs == sorted(effs, reverse=True)
    text = report.table(result)
    assert "Largest efficient size (efficiency ≥ 80%)" in text and "cost/epoch" in text
    assert f"N = {fc['largest_efficient']['no_overlap']['value']:,}" in text


def test_no_forecast_section_unless_asked_and_a_stated_network_needs_no_fit():
    points = [_summary(1, 0.1, 256)]
    assert "forecast" not in analysis.analyse("weak", points, scaling=ScalingConfig())
    assert "forecast" not in analysis.analyse("weak", points)
    cfg = typed(
        ScalingConfig,
        {"forecast_device_counts": [512], "network": {"bandwidth_gbit_per_s": 25, "devices_per_node": 4}},
        "scaling",
    )
    fc = analysis.analyse("weak", points, scaling=cfg)["forecast"]
    assert "hierarchical" in fc["model"] and fc["rows"][0]["nodes"] == 128
    no_fit = analysis.analyse("weak", points, scaling=typed(ScalingConfig, {"forecast_device_counts": [8]}, "scaling"))
    assert no_fit["forecast"]["rows"] == [] and "no all-reduce was timed" in no_fit["forecast"]["notes"][0]


def test_a_summary_without_a_fit_range_forecasts_a_single_value():
    old = {"alpha_s": 1e-5, "beta_s_per_byte": 1e-9, "devices": 2}
    models = forecast.models_from_fit(old)
    assert models.low == models.value == models.high


# ---- config ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"forecast_device_counts": [8, 8]}, "scaling.forecast_device_counts=[8, 8]"),
        ({"forecast_min_efficiency": 0.0}, "scaling.forecast_min_efficiency=0.0"),
        ({"price_per_device_hour": 0}, "scaling.price_per_device_hour=0"),
        ({"network": {"bandwidth_gbit_per_s": -1}}, "scaling.network.bandwidth_gbit_per_s=-1"),
        ({"network": {"bandwidth_gbit_per_s": 10, "devices_per_node": 0}}, "scaling.network.devices_per_node=0"),
        (
            {"network": {"bandwidth_gbit_per_s": 10, "intra_node_bandwidth_gbit_per_s": 0}},
            "scaling.network.intra_node_bandwidth_gbit_per_s=0",
        ),
    ],
)
def test_bad_forecast_settings_are_one_sentence_config_errors(values, named):
    with pytest.raises(ConfigError) as err:
        typed(ScalingConfig, values, "scaling")
    message = str(err.value)
    assert message.startswith(named) and message.endswith(".") and "\n" not in message and " must " in message
