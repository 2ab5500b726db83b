"""Rank 0's plain progress lines: thinned by time, never losing the first or the last step."""

from __future__ import annotations

import logging

from scaletrain.rank.loops.progress import Progress

FIGURES = {"epoch": 0, "loss": 0.5, "samples_per_s": 100.0, "step_time_s": 0.01}


def lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]


def test_lines_closer_than_the_interval_are_skipped_but_the_last_step_is_shown(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="scaletrain")
    monkeypatch.delenv("SCALETRAIN_PROGRESS", raising=False)
    progress = Progress(is_rank_zero=True, total_steps=50, initial=0, line_every_s=3600.0)
    for step in range(10, 51, 10):
        progress.update(step, FIGURES)
    shown = lines(caplog)
    assert [line.split()[1] for line in shown] == ["10/50", "50/50"]


def test_every_log_step_is_shown_when_they_are_further_apart_than_the_interval(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="scaletrain")
    monkeypatch.delenv("SCALETRAIN_PROGRESS", raising=False)
    progress = Progress(is_rank_zero=True, total_steps=30, initial=0, line_every_s=0.0)
    for step in (10, 20, 30):
        progress.update(step, FIGURES)
    assert [line.split()[1] for line in lines(caplog)] == ["10/30", "20/30", "30/30"]


def test_other_ranks_print_nothing(caplog):
    caplog.set_level(logging.INFO, logger="scaletrain")
    Progress(is_rank_zero=False, total_steps=10, initial=0, line_every_s=0.0).update(10, FIGURES)
    assert lines(caplog) == []
