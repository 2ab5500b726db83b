"""The straggler arithmetic: own time per rank from the window's (step, data, wait) rows, and when a rank is named."""

from __future__ import annotations

import pytest

from scaletrain.contract.summary import RunSummary
from scaletrain.driver.scaling.analysis import analyse
from scaletrain.driver.scaling.report import table
from scaletrain.rank.stragglers import StragglerDetector, own_times
from scaletrain.rank.tracking import chartable


def test_own_time_is_the_step_less_the_measured_wait() -> None:
    # rank 0 waited 15 ms of its 20 ms step for rank 1, which spent 19 ms on its own work
    assert own_times([[0.020, 0.001, 0.015], [0.020, 0.001, 0.001]], wait_measured=True) == pytest.approx(
        [0.005, 0.019]
    )


def test_without_a_measured_wait_only_data_time_tells_ranks_apart() -> None:
    # a compiled step hides the wait: compute is taken as the least any rank spent, so rank 1's slow data shows
    rows = [[0.030, 0.002, 0.0], [0.030, 0.022, 0.0]]
    assert own_times(rows, wait_measured=False) == pytest.approx([0.010, 0.030])


def _detector(ranks: int = 3) -> StragglerDetector:
    return StragglerDetector([f"h{r}" for r in range(ranks)], slowdown=1.5, windows=3)


def test_a_rank_persistently_slower_is_named_with_its_host_and_slowdown() -> None:
    detector = _detector()
    named = [detector.update([0.010, 0.010, 0.030], steps=10, span_s=1.0) for _ in range(4)]
    assert named[:2] == [[], []]  # not before `windows` windows
    assert [(s.rank, s.host, round(s.slowdown, 6)) for s in named[2]] == [(2, "h2", 3.0)]
    assert detector.summary() == [{"rank": 2, "host": "h2", "slowdown": pytest.approx(3.0), "windows": 2}]


def test_one_slow_window_names_nobody_and_one_quick_window_clears_nobody() -> None:
    detector = _detector()
    for own in ([0.01, 0.01, 0.01], [0.01, 0.05, 0.01], [0.01, 0.01, 0.01], [0.01, 0.01, 0.01]):
        assert detector.update(own, steps=10, span_s=1.0) == []
    slow = _detector()
    for own in ([0.01, 0.03, 0.01], [0.01, 0.03, 0.01], [0.01, 0.01, 0.01], [0.01, 0.03, 0.01]):
        named = slow.update(own, steps=10, span_s=1.0)
    assert [s.rank for s in named] == [1]  # the median of its last three windows is still 3x


def test_short_windows_are_judged_together_in_blocks() -> None:
    detector = _detector(ranks=2)
    named = []
    for window in range(30):  # windows of 1/8 s; rank 1 1.8x slower in every other one: 1.4x a block
        own = [0.010, 0.018] if window % 2 else [0.010, 0.010]
        named.append(detector.update(own, steps=10, span_s=0.125))
    assert all(n == [] for n in named)
    slow = _detector(ranks=2)
    named = [slow.update([0.010, 0.030], steps=10, span_s=0.125) for _ in range(12)]
    assert named[10] == [] and [s.rank for s in named[11]] == [1]  # three blocks of four windows


def test_equal_ranks_tiny_steps_and_a_single_rank_name_nobody() -> None:
    detector = _detector()
    for _ in range(5):
        assert detector.update([0.010, 0.011, 0.0105], steps=10, span_s=1.0) == []
    tiny = _detector()
    for _ in range(5):  # 3x slower, but by 40 µs: noise on a microsecond step, not a straggler worth naming
        assert tiny.update([0.00002, 0.00002, 0.00006], steps=10, span_s=1.0) == []
    assert StragglerDetector(["h0"], 1.5, 1).update([0.5], steps=10, span_s=1.0) == []


def test_a_straggler_is_charted_per_rank_and_explains_a_sweep_gap() -> None:
    flat = chartable({"loss": 1.0, "own_step_time_s": {"rank_0": 0.01, "rank_1": 0.03},
                      "stragglers": [{"rank": 1, "host": "h1", "slowdown": 3.0}]})  # fmt: skip
    assert flat == {"loss": 1.0, "own_step_time_s/rank_0": 0.01, "own_step_time_s/rank_1": 0.03,
                    "straggler_slowdown/rank_1": 3.0}  # fmt: skip
    base = RunSummary("synthetic", "ddp", "torch", 1, 64, samples_per_s=100.0, samples_per_s_per_device=100.0,
                      step_time_s=0.1)  # fmt: skip
    point = RunSummary("synthetic", "ddp", "torch", 2, 128, samples_per_s=120.0, samples_per_s_per_device=60.0,
                       step_time_s=0.2)  # fmt: skip
    point.stragglers = [{"rank": 1, "host": "h1", "slowdown": 3.0, "windows": 4}]
    text = table(analyse("weak", [base, point]))
    assert "Straggler: on 2 devices rank 1 on h1 (3.00x the others' own step time) slowed the others" in text
    assert "not the network" in text
