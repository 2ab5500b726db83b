"""Throughput arithmetic of the meter, on a controlled clock."""

from __future__ import annotations

import pytest

from scaletrain import metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_windows_and_steady_state_totals(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(metrics.time, "perf_counter", clock)
    meter = metrics.ThroughputMeter(world_size=4)
    for _ in range(10):
        meter.add_step(64)
    clock.now += 5.0  # a slow first window (start-up)
    first = meter.read()
    assert first["samples_per_s"] == pytest.approx(640 / 5.0)
    for _ in range(20):
        meter.add_step(64)
    clock.now += 2.0
    second = meter.read()
    assert second == pytest.approx({"samples_per_s": 640.0, "samples_per_s_per_device": 160.0, "step_time_s": 0.1})
    assert meter.totals() == pytest.approx(second)  # the first window is left out of the steady state


def test_single_window_totals_fall_back_to_it(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(metrics.time, "perf_counter", clock)
    meter = metrics.ThroughputMeter(world_size=1)
    meter.add_step(10)
    clock.now += 0.5
    meter.read()
    assert meter.totals()["samples_per_s"] == pytest.approx(20.0)
    assert metrics.ThroughputMeter(1).totals() == {}


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
