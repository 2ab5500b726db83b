"""The command line: Hydra composes it once, scaletrain validates it once, and Hydra's refusals read as one sentence
(Hydra raises them under HYDRA_FULL_ERROR; no copy of its flag table, no private singleton touched)."""

from __future__ import annotations

import sys

import pytest

from scaletrain.contract import config
from scaletrain.driver import cli

REFUSALS = [
    (["+strategy=horovod"], "strategy=horovod does not exist; choose one of: ddp, mirrored, tpu, xla."),
    (
        ["strategy=ddp"],
        "strategy=ddp needs a leading '+' because no strategy is chosen by default: write +strategy=ddp.",
    ),
    (["launcher=kubernetes"], "launcher=kubernetes does not exist; choose one of: local, ray, slurm."),
    (
        ["train.learning_rate=0.1"],
        "train.learning_rate is not a setting scaletrain knows (Key 'learning_rate' is not "
        "in struct); check its spelling (`python -m scaletrain --cfg job` prints every "
        "setting).",
    ),  # fmt: skip
    (
        ["train.lr=["],
        "the command line could not be applied to the configuration: no viable alternative at input "
        "'['; See https://hydra.cc/docs/1.2/advanced/override_grammar/basic for details.",
    ),  # fmt: skip
]


@pytest.mark.parametrize(("overrides", "sentence"), REFUSALS)
def test_hydras_refusals_become_one_sentence(overrides, sentence):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(config.conf_dir())), pytest.raises(Exception) as err:
        compose("config", overrides=overrides)
    assert cli.composition_error(err.value) == sentence


def test_scaletrain_composes_nothing_of_its_own_and_validates_once(monkeypatch, tmp_path):
    """The whole command in this process (run_job replaced): the config is what hydra.main composed for the task
    (scaletrain's own pre-composition through Hydra's compose API, and its second validation, are gone), and
    scaletrain validates it once."""
    import hydra

    from scaletrain.driver import run

    def compose(*args, **kwargs):
        raise AssertionError("scaletrain composed the config itself")

    loaded, ran = [], []
    monkeypatch.setattr(hydra, "compose", compose)
    load = config.load
    monkeypatch.setattr(config, "load", lambda data: loaded.append(1) or load(data))
    monkeypatch.setattr(run, "run_job", lambda job: ran.append(job) or 0)
    monkeypatch.setattr(sys, "argv", ["scaletrain"])
    monkeypatch.setattr(cli, "_exit_codes", [])
    with pytest.raises(SystemExit) as done:
        cli.main([f"hydra.run.dir={tmp_path / 'run'}", "+strategy=ddp", "seed=3"])
    assert done.value.code == 0 and len(loaded) == 1
    assert ran[0].seed == 3 and ran[0].output_dir == str(tmp_path / "run")
