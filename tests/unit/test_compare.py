"""The side-by-side table of finished runs, from run directories as a Hydra multirun leaves them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from scaletrain.driver import compare


def _run(sweep: Path, name: str, overrides: list[str], **summary) -> Path:
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if summary:
        core = {"workload": "digits", "strategy": "ddp", "framework": "torch", "world_size": 1, "global_batch_size": 64}
        (run / "summary.json").write_text(json.dumps({**core, **summary}))
    return run


def test_sweep_gives_one_row_per_run_labelled_by_what_differs(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    common = {"workload": "digits", "steps": 345}
    _run(
        sweep,
        "0",
        ["+strategy=ddp", "workload=digits_cnn"],
        framework="torch",
        strategy="ddp",
        world_size=2,
        replicas=2,
        epoch_time_s=0.19,
        samples_per_s=7700.0,
        peak_rss_mib=[790.0, 801.5],
        val_accuracy=0.98,
        **common,
    )
    _run(
        sweep,
        "1",
        ["+strategy=mirrored", "workload=digits_cnn"],
        framework="tensorflow",
        strategy="mirrored",
        world_size=1,
        replicas=1,
        epoch_time_s=0.17,
        samples_per_s=9700.0,
        peak_rss_mib=[763.5],
        val_accuracy=0.975,
        **common,
    )
    _run(sweep, "2", ["+strategy=tpu", "workload=digits_cnn"])  # failed: no summary

    assert compare.main([str(sweep)]) == 0
    printed = capsys.readouterr().out
    assert "Every run: workload=digits_cnn" in printed
    assert "No summary.json" in printed and str(sweep / "2") in printed
    rows = list(csv.DictReader((sweep / "comparison.csv").open()))
    assert [r["run"] for r in rows] == ["+strategy=ddp", "+strategy=mirrored"]
    assert rows[0]["framework"] == "torch" and rows[1]["framework"] == "tensorflow"
    assert float(rows[0]["peak_rss_mib"]) == 801.5  # the largest process
    assert float(rows[1]["val_accuracy"]) == 0.975
    md = (sweep / "comparison.md").read_text()
    assert "| +strategy=mirrored | tensorflow | mirrored" in md
    # PyTorch on 2 replicas against TensorFlow on 1: said at the top, with the settings that make it fair
    assert md.startswith("Warning: not a fair head-to-head: the frameworks ran with different replicas (")
    assert "+strategy=ddp: replicas 2; +strategy=mirrored: replicas 1" in md


def test_the_workload_is_named_as_selected_and_an_equal_head_to_head_has_no_warning(tmp_path):
    sweep = tmp_path / "sweep"
    for name, framework in (("0", "torch"), ("1", "tensorflow")):
        run = _run(sweep, name, [f"+framework={framework}"], framework=framework, replicas=2, steps=200, mfu=0.5,
                   val_bits_per_byte=3.3)  # fmt: skip
        (run / ".hydra" / "hydra.yaml").write_text("hydra:\n  runtime:\n    choices:\n      workload: digits_cnn\n")
    compare.main([str(sweep)])
    rows = list(csv.DictReader((sweep / "comparison.csv").open()))
    assert {r["workload"] for r in rows} == {"digits_cnn"}  # not the config's own name, digits
    assert rows[0]["mfu"] == "0.5" and rows[1]["val_bits_per_byte"] == "3.3"
    assert not (sweep / "comparison.md").read_text().startswith("Warning")


def test_separate_run_directories_and_errors(tmp_path, capsys):
    a = _run(tmp_path, "a", [], framework="torch", strategy="ddp", world_size=1, val_accuracy=0.9)
    b = _run(tmp_path, "b", [], framework="tensorflow", strategy="mirrored", world_size=1, val_accuracy=0.91)
    out = tmp_path / "out"
    assert compare.main([str(a), str(b), "--out", str(out)]) == 0
    assert [r["run"] for r in csv.DictReader((out / "comparison.csv").open())] == ["a", "b"]
    assert compare.main([str(tmp_path / "nope")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_seeds_fold_into_medians(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for i, (seed, strategy, acc) in enumerate(
        [(0, "ddp", 0.9), (0, "mirrored", 0.8), (1, "ddp", 1.0), (1, "mirrored", 0.6)]
    ):
        _run(sweep, str(i), [f"seed={seed}", f"+strategy={strategy}"], framework=strategy, val_accuracy=acc)
    compare.main([str(sweep)])
    text = capsys.readouterr().out
    medians = text.split("Medians over seeds:")[1]
    assert "+strategy=ddp (median of 2)" in medians and "| 0.95 " in medians
    assert "+strategy=mirrored (median of 2)" in medians and "| 0.7 " in medians
