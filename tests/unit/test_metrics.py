"""Throughput and time-split arithmetic of the meter, on a controlled clock; the comm timer's bookkeeping."""

from __future__ import annotations

import pytest

from scaletrain.rank import metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(metrics.time, "perf_counter", fake)
    return fake


def test_windows_and_steady_state_totals(clock):
    meter = metrics.ThroughputMeter(world_size=4)
    for _ in range(10):
        meter.add_step(64)
    clock.now += 5.0  # a slow first window (start-up)
    first = meter.read()
    assert first["samples_per_s"] == pytest.approx(640 / 5.0)
    for _ in range(20):
        meter.add_step(64, data_s=0.01, comm_s=0.05, exposed_comm_s=0.02)
    clock.now += 2.0
    second = meter.read()
    assert second["samples_per_s"] == pytest.approx(640.0)
    assert second["samples_per_s_per_device"] == pytest.approx(160.0)
    assert second["step_time_s"] == pytest.approx(0.1)
    assert second["data_time_s"] == pytest.approx(0.01)
    assert second["comm_time_s"] == pytest.approx(0.05)
    assert second["exposed_comm_s"] == pytest.approx(0.02)
    assert second["compute_time_s"] == pytest.approx(0.1 - 0.01 - 0.02)  # the remainder
    assert second["comm_fraction"] == pytest.approx(0.2)
    assert meter.totals() == pytest.approx(second)  # the first window is left out of the steady state


def test_single_window_totals_fall_back_to_it(clock):
    meter = metrics.ThroughputMeter(world_size=1)
    meter.add_step(10)
    clock.now += 0.5
    meter.read()
    assert meter.totals()["samples_per_s"] == pytest.approx(20.0)
    assert metrics.ThroughputMeter(1).totals() == {}


def test_comm_timer_busy_and_exposed_time(clock):
    timer = metrics.CommTimer()
    first = timer.launched()  # bucket 1 handed over at t=100.0 ...
    clock.now += 0.03
    second = timer.launched()  # ... bucket 2 (the last) at 100.03
    clock.now += 0.01
    timer.finished(first)  # bucket 1 done at 100.04 (busy 0.04)
    clock.now += 0.02
    timer.finished(second)  # bucket 2 done at 100.06 (busy 0.03)
    busy, exposed = timer.take()
    assert busy == pytest.approx(0.07)
    assert exposed == pytest.approx(0.03)  # waited from the last launch (100.03) to the last finish (100.06)
    assert timer.take() == (0.0, 0.0)


def test_peak_rss_is_positive_mebibytes():
    assert 1 < metrics.peak_rss_mib() < 1e6


def test_compile_seconds_are_left_out_of_the_window_step_time(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(metrics.time, "perf_counter", clock)
    meter = metrics.ThroughputMeter(world_size=2)
    for _ in range(10):
        meter.add_step(8)
    clock.now += 3.0  # 2.5 s of it compiling the step's graph
    assert meter.read(compile_time_s=2.5)["step_time_s"] == pytest.approx(0.05)
    for _ in range(10):
        meter.add_step(8)
    clock.now += 1.0  # nothing new compiled: the cumulative figure is unchanged
    assert meter.read(compile_time_s=2.5)["step_time_s"] == pytest.approx(0.1)
