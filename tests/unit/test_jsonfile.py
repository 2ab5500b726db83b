"""Every file scaletrain writes is strict JSON: non-finite numbers become null, and ``nonfinite`` says which."""

from __future__ import annotations

import json
import math

import pytest

from scaletrain.contract import jsonfile
from scaletrain.contract.summary import RunSummary


def test_non_finite_numbers_are_null_and_named_at_any_depth():
    record = {"loss": math.nan, "ok": 1.5, "own": {"rank_1": math.inf}, "series": [1.0, -math.inf], "n": 3}
    text = jsonfile.dumps(record)
    back = json.loads(text, parse_constant=pytest.fail)
    assert back == {
        "loss": None, "ok": 1.5, "own": {"rank_1": None}, "series": [1.0, None], "n": 3,
        "nonfinite": {"loss": "nan", "own.rank_1": "inf", "series[1]": "-inf"},
    }  # fmt: skip
    assert jsonfile.dumps({"all": "finite", "x": 0.0}) == '{"all": "finite", "x": 0.0}'  # no field when none


def test_a_summary_with_a_nan_loss_is_written_as_strict_json(tmp_path):
    summary = RunSummary(workload="linear", strategy="ddp", framework="torch", processes=2, global_batch_size=2)
    summary.update({"final_loss": math.nan, "steps": 60})
    summary.write(tmp_path)
    back = json.loads((tmp_path / "summary.json").read_text(), parse_constant=pytest.fail)
    assert back["final_loss"] is None and back["nonfinite"] == {"final_loss": "nan"} and back["steps"] == 60
    assert RunSummary.read(tmp_path).extra["nonfinite"] == {"final_loss": "nan"}  # and it reads back
