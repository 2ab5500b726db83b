"""scaletrain's reading of the command line before Hydra's: the same flags and overrides Hydra will see."""

from __future__ import annotations

import pytest

from scaletrain import cli

COMMAND_LINES = [
    [],
    ["+strategy=ddp", "launcher.nproc_per_node=2"],
    ["-m", "+strategy=ddp,mirrored", "train.lr=0.1"],
    ["--cfg", "job", "--resolve", "-p", "train"],
    ["-cn", "other", "-cp", "/tmp/conf", "-cd", "/tmp/more", "seed=3"],
    ["--info"],
    ["-i", "defaults-tree", "x=1"],
    ["--hydra-help"],
    ["-h", "--shell-completion"],
    ["--run", "--experimental-rerun", "/tmp/config.pickle"],
    ["--unknown-flag", "a=b"],
]


@pytest.mark.parametrize("argv", COMMAND_LINES)
def test_the_command_line_reads_as_hydra_reads_it(argv):
    """Held to Hydra's own parser (internal to Hydra, so only this test imports it): a Hydra upgrade that adds or
    changes a flag fails here instead of silently misreading a command line."""
    from hydra._internal.utils import get_args_parser

    theirs = vars(get_args_parser().parse_known_args(argv)[0])
    ours = vars(cli.hydra_args(argv))
    assert ours.pop("version") is False
    assert ours == theirs


def test_every_flag_of_hydra_is_known():
    from hydra._internal.utils import get_args_parser

    theirs = {tuple(a.option_strings) for a in get_args_parser()._actions if a.option_strings}
    ours = {names for names, _ in cli.HYDRA_FLAGS} | {("--version",)}
    assert ours == theirs


@pytest.mark.parametrize("argv", [["--version"], ["--cfg", "everything"], ["--info", "nothing"]])
def test_what_hydra_answers_itself_is_left_to_it(argv):
    assert cli.hydra_args(argv) is None
