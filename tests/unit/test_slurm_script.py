"""launcher=slurm without a cluster: the rendered script run by real bash against stand-in srun/scontrol
commands, the hand-written slurm/*.sbatch kept in sync, settings validation (injection payloads field by field),
tasks per node, mode detection, sbatch's refusal message."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from scaletrain.contract import config
from scaletrain.contract.errors import ConfigError, LaunchError
from scaletrain.contract.exit_codes import ExitCode
from scaletrain.driver.launchers import slurm
from scaletrain.driver.launchers.slurm_script import BODY, BatchRequest, render, sbatch_options, sbatch_refusal

REPO = Path(__file__).resolve().parents[2]
CAPTURED = Path(__file__).parent / "fixtures" / "slurm"
NASTY = [
    '+tag="it\'s $(touch pwned1) `touch pwned2`; touch pwned3 && echo | cat > pwned4"',
    "train.lr=0.05",
    "+note=two  spaces\ttab",
    "+empty=''",
    "+glob=*",
    "+dollar=$HOME ${HOME} \\n",
]


def _job(**launcher) -> config.Job:
    return config.load(
        {"strategy": {"name": "ddp"}, "launcher": {"name": "slurm", **launcher}, "workload": {"name": "linear"}}
    )


def _request(args=(), **settings) -> BatchRequest:
    options = sbatch_options(job_name="t", nodes=2, ntasks_per_node=1, output="/runs/r/slurm-%j.out", **settings)
    return BatchRequest(options, tuple(args), "/runs/r", "USR1", 3)


FAKE_SRUN = """#!/bin/bash
printf '%s\\0' "$@" > "$FAKE_DIR/srun_argv"
if [ -n "${FAKE_SRUN_SLEEP:-}" ]; then
  trap 'echo got-usr1 > "$FAKE_DIR/srun_signal"; exit 75' USR1
  echo started > "$FAKE_DIR/srun_started"
  for _ in $(seq 100); do sleep 0.1; done
fi
exit "${FAKE_SRUN_EXIT:-0}"
"""
FAKE_SCONTROL = """#!/bin/bash
echo "$@" > "$FAKE_DIR/scontrol_args"
"""


def _run_script(tmp_path: Path, text: str, scontrol: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    """The script under real bash, with srun (and scontrol) replaced by recorders; PATH holds nothing else."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL if scontrol else None)):
        if body is not None:
            (bin_dir / name).write_text(body)
            (bin_dir / name).chmod(0o755)
    script = tmp_path / "job.sbatch"
    script.write_text(text)
    environ = {"PATH": str(bin_dir), "FAKE_DIR": str(tmp_path), "SLURM_JOB_ID": "123", "SLURM_JOB_NODELIST": "n[1-2]"}
    return subprocess.run(
        ["/bin/bash", str(script)], cwd=tmp_path, env={**environ, **env}, capture_output=True, text=True, timeout=30
    )


def _srun_argv(tmp_path: Path) -> list[str]:
    return (tmp_path / "srun_argv").read_bytes().decode().split("\0")[:-1]


RANK_ENTRY = ["-m", "scaletrain.rank.slurm_rank"]


def test_every_task_runs_the_job_file_and_the_overrides_are_only_a_comment(tmp_path: Path) -> None:
    text = render(_request(NASTY))
    done = _run_script(tmp_path, text, SCALETRAIN_PYTHON="/opt/py/bin/python")
    assert done.returncode == 0, done.stderr
    assert _srun_argv(tmp_path) == ["--kill-on-bad-exit=1", "/opt/py/bin/python", *RANK_ENTRY, "/runs/r/job.json"]
    assert not (tmp_path / "python_argv").exists()  # the driver prepared the job: nothing runs in the batch shell
    (comment,) = [line for line in text.splitlines() if line.startswith("PREPARE=0  #")]
    assert json.loads(comment.partition("its overrides were ")[2]) == NASTY  # one line, every value as given
    assert not list(tmp_path.glob("pwned*"))


def test_python_defaults_to_the_one_on_path(tmp_path: Path) -> None:
    assert _run_script(tmp_path, render(_request())).returncode == 0
    assert _srun_argv(tmp_path)[1:4] == ["python", *RANK_ENTRY]


def _hand_written(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """slurm/ddp.sbatch under real bash with ``args`` (as sbatch passes them), a recording python and srun."""
    text = (REPO / "slurm" / "ddp.sbatch").read_text()
    script = tmp_path / "ddp.sbatch"
    script.write_text(text)
    _run_script(tmp_path, "true")  # lays out the recorders in tmp_path/bin
    python = tmp_path / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    environ = {"PATH": str(tmp_path / "bin"), "FAKE_DIR": str(tmp_path), "SLURM_JOB_ID": "123",
               "SLURM_JOB_NODELIST": "n[1-2]", "SCALETRAIN_RUN_DIR": str(tmp_path / "run"), **env}  # fmt: skip
    return subprocess.run(["/bin/bash", str(script), *args], cwd=tmp_path, env=environ, capture_output=True,
                          text=True, timeout=30)  # fmt: skip


FAKE_PYTHON = """#!/bin/bash
printf '%s\\0' "$@" >> "$FAKE_DIR/python_argv"
exit "${FAKE_PYTHON_EXIT:-0}"
"""


def test_a_hand_written_script_prepares_its_job_once_in_the_batch_shell(tmp_path: Path) -> None:
    done = _hand_written(tmp_path, *NASTY)
    assert done.returncode == 0, done.stderr
    prepared = (tmp_path / "python_argv").read_bytes().decode().split("\0")[:-1]
    assert prepared == ["-m", "scaletrain", *NASTY, "launcher=slurm", f"hydra.run.dir={tmp_path / 'run'}"]
    assert _srun_argv(tmp_path) == ["--kill-on-bad-exit=1", "python", *RANK_ENTRY, f"{tmp_path / 'run'}/job.json"]
    assert not list(tmp_path.glob("pwned*"))


def test_a_requeued_hand_written_job_runs_the_job_its_first_run_prepared(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "job.json").write_text("{}")
    done = _hand_written(tmp_path, "train.lr=0.1", SLURM_RESTART_COUNT="1")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "python_argv").exists() and _srun_argv(tmp_path)[-1] == f"{tmp_path / 'run'}/job.json"


def test_a_job_that_fails_to_prepare_starts_no_rank(tmp_path: Path) -> None:
    done = _hand_written(tmp_path, "train.lr=oops", FAKE_PYTHON_EXIT="2")
    assert done.returncode == 2 and not (tmp_path / "srun_argv").exists(), done.stderr


def test_stopped_ranks_make_the_job_requeue_itself(tmp_path: Path) -> None:
    done = _run_script(tmp_path, render(_request()), FAKE_SRUN_EXIT="75", SLURM_RESTART_COUNT="1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "scontrol_args").read_text().split() == ["requeue", "123"]
    assert "requeueing job 123 (restart 2 of at most 3)" in done.stderr


def test_a_failed_step_is_not_requeued(tmp_path: Path) -> None:
    done = _run_script(tmp_path, render(_request()), FAKE_SRUN_EXIT="1")
    assert done.returncode == 1
    assert not (tmp_path / "scontrol_args").exists()
    assert "the job step failed with exit code 1; not requeueing" in done.stderr


def test_no_requeue_beyond_max_requeues(tmp_path: Path) -> None:
    done = _run_script(tmp_path, render(_request()), FAKE_SRUN_EXIT="75", SLURM_RESTART_COUNT="3")
    assert done.returncode == 75
    assert not (tmp_path / "scontrol_args").exists()
    hint = "submit again with resume=true and the run directory /runs/r"
    assert f"requeued 3 times already (max 3); {hint}" in done.stderr


def test_missing_scontrol_is_reported_not_silent(tmp_path: Path) -> None:
    done = _run_script(tmp_path, render(_request()), scontrol=False, FAKE_SRUN_EXIT="75")
    assert done.returncode == 75
    assert "scaletrain: error: scontrol is not on PATH inside the job, so it cannot requeue itself" in done.stderr


def test_warning_signal_is_forwarded_to_srun_then_the_job_requeues(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    script = tmp_path / "job.sbatch"
    bin_dir.mkdir()
    for name, body in (("srun", FAKE_SRUN), ("scontrol", FAKE_SCONTROL)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    script.write_text(render(_request()))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_DIR": str(tmp_path), "SLURM_JOB_ID": "7", "FAKE_SRUN_SLEEP": "1"}
    proc = subprocess.Popen(["/bin/bash", str(script)], env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while not (tmp_path / "srun_started").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGUSR1)  # what `scancel --batch --signal=USR1` does
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert (tmp_path / "srun_signal").read_text().strip() == "got-usr1"
    assert (tmp_path / "scontrol_args").read_text().split() == ["requeue", "7"]
    assert "SIGUSR1 received" in err


def test_secrets_in_the_environment_are_not_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "secret-key-0123456789")
    text = render(slurm.SlurmLauncher(_job(), environ={}).request(Path("/runs/r")))
    assert "secret-key" not in text and "WANDB" not in text
    assert "--export" not in text  # the job inherits the environment through sbatch's default instead


def test_header_options_in_order_with_quoted_values() -> None:
    options = sbatch_options(
        job_name="my job", nodes=2, ntasks_per_node=4, gpus_per_node=4, mem_gb=64, time_min=90,
        partition="gpu", signal="USR2", signal_before_end_s=300, output="/runs/a b/slurm-%j.out",
        extra=("--constraint=a100", "--exclusive"),
    )  # fmt: skip
    header = [line for line in render(BatchRequest(options, (), "/r", "USR2", 1)).splitlines() if "#SBATCH" in line]
    assert header == [
        "#SBATCH --job-name='my job'",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --mem=64G",
        "#SBATCH --time=90",
        "#SBATCH --partition=gpu",
        "#SBATCH --signal=B:USR2@300",
        "#SBATCH --requeue",
        "#SBATCH --open-mode=append",
        "#SBATCH --output='/runs/a b/slurm-%j.out'",
        "#SBATCH --constraint=a100",
        "#SBATCH --exclusive",
    ]


@pytest.mark.parametrize("name", ["ddp.sbatch", "per-node.sbatch"])
def test_hand_written_scripts_run_the_same_body(name: str) -> None:
    text = (REPO / "slurm" / name).read_text()
    assert text.endswith(BODY)
    head = text[: -len(BODY)]
    for line in ("#SBATCH --signal=B:USR1@180", "#SBATCH --requeue", "#SBATCH --open-mode=append", "STOP_SIGNAL=USR1"):
        assert line in head.splitlines() or any(h.startswith(line + " ") for h in head.splitlines()), line
    assert "RUN_DIR=${SCALETRAIN_RUN_DIR:-outputs/slurm-$SLURM_JOB_ID}" in head
    assert "#SBATCH --ntasks-per-node=1" in head and "#SBATCH --nodes=2" in head


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ntasks_per_node": 0}, "launcher.ntasks_per_node=0 must be 'auto' or a whole number"),
        ({"nodes": 0}, "launcher.nodes=0 must be at least 1"),
        ({"time_min": 0}, "launcher.time_min=0 must be at least 1"),
        ({"signal": "KILL"}, "launcher.signal='KILL' is not supported; use one of: USR1, USR2"),
        ({"sbatch_args": ["constraint=a100"]}, "is not an sbatch option"),
        ({"sbatch_args": ["--time=10"]}, "sets --time, which scaletrain writes itself; use launcher.time instead"),
        ({"job_name": " "}, "launcher.job_name is empty"),
    ],
)
def test_bad_settings_are_one_sentence(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _job(**settings)


def test_tasks_per_node_follows_the_gpus_for_ddp() -> None:
    assert slurm.tasks_per_node(_job()) == 1
    assert slurm.tasks_per_node(_job(gpus_per_node=4)) == 4
    assert slurm.tasks_per_node(_job(gpus_per_node=4, ntasks_per_node=4)) == 4
    with pytest.raises(ConfigError, match=r"launcher.ntasks_per_node=2 does not match the GPUs: .*ntasks_per_node=4"):
        slurm.tasks_per_node(_job(gpus_per_node=4, ntasks_per_node=2))


def test_tasks_per_node_follows_a_strategy_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    from scaletrain.strategies import ddp

    monkeypatch.setattr(ddp.PLUGIN, "procs_per_node", 1)  # as TF multi-worker and XLA do
    assert slurm.tasks_per_node(_job(gpus_per_node=8)) == 1
    with pytest.raises(ConfigError, match="strategy ddp runs 1 task"):
        slurm.tasks_per_node(_job(gpus_per_node=8, ntasks_per_node=8))


def _captured(name: str) -> dict[str, str]:
    return json.loads((CAPTURED / name).read_text())


def test_mode_from_real_environments() -> None:
    assert slurm.mode(_captured("srun_2x2_task3.json")) == "step"
    assert slurm.mode(_captured("batch_2x2.json")) == "prepare"
    assert slurm.mode({"HOME": "/root"}) == "submit"


def test_inside_an_srun_task_it_says_what_a_task_runs() -> None:
    with pytest.raises(
        LaunchError, match="not in each srun task; the ranks run 'srun python -m scaletrain.rank.slurm_rank"
    ):
        slurm.SlurmLauncher(_job(), environ=_captured("srun_2x2_task3.json"))


def test_in_the_batch_shell_it_prepares_for_the_allocation_it_is_in() -> None:
    launcher = slurm.SlurmLauncher(_job(), environ=_captured("batch_2x2.json"))
    assert (launcher.world_size, launcher.placement.nodes, launcher.placement.procs_per_node) == (4, 2, 2)
    environ = _captured("batch_2x2.json")
    assert launcher.submitted_job_ids() == [environ["SLURM_JOB_ID"]]  # the run directory is handed to this job
    assert launcher.holds_run_dir and not launcher.trains_here


def test_submit_mode_world_size_is_nodes_times_tasks() -> None:
    assert slurm.SlurmLauncher(_job(nodes=3, gpus_per_node=2), environ={}).world_size == 6


def test_body_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n"], input=render(_request(NASTY)), text=True).returncode == 0
    assert os.access(REPO / "slurm" / "ddp.sbatch", os.R_OK)


# Injection payloads: shell ones need no PATH (`:`/`echo` and redirections are builtins), so they would show.
BREAKOUTS = {  # what no #SBATCH line can carry: refused for every field that is written on one
    "newline": "x\necho > pwned1",
    "carriage return": "x\recho > pwned2",
    "NUL": "x\0y",
    "tab": "x\ty",
}
SHELL = {  # harmless to sbatch and bash once quoted; refused only where a SLURM name is expected
    "command substitution": "$(: > pwned3)",
    "backticks": "`: > pwned4`",
    "semicolon": "x; echo > pwned5",
}
SBATCH = {  # what sbatch itself would misread
    "leading dash": "-x",
    "backslash": "a\\b",
    "hetjob": "my-hetjob",
    "packjob": "PackJob",
}


def _sbatch_reads(line: str) -> list[str]:
    """The arguments sbatch takes from one #SBATCH line: a port of _get_argument in SLURM 22.05's sbatch/opt.c."""
    rest, args = line.removeprefix("#SBATCH"), []
    while rest.strip():
        rest, arg, quote, escaped = rest.lstrip(), "", None, False
        while rest and (quote or not rest[0].isspace()):
            char, rest = rest[0], rest[1:]
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
                continue
            elif quote:
                if char == quote:
                    quote = None
                    continue
            elif char in "'\"":
                quote = char
                continue
            elif char == "#":
                rest = ""
                break
            arg += char
        assert quote is None, f"sbatch: unmatched {quote} in {line!r}"
        if not arg:
            break
        args.append(arg)
    return args


def _sbatch_header(text: str) -> list[str]:
    """The #SBATCH lines sbatch reads: it stops at the first line that is neither blank nor a comment."""
    lines = text.split("\n")
    end = next(i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#"))
    return [line for line in lines[:end] if line.startswith("#SBATCH")]


def _directive(text: str, key: str) -> str:
    (line,) = [line for line in _sbatch_header(text) if line.startswith(f"#SBATCH --{key}=")]
    return line


@pytest.mark.parametrize("field", ["job_name", "partition", "account", "qos"])
@pytest.mark.parametrize("payload", [*BREAKOUTS.values(), *SBATCH.values()], ids=[*BREAKOUTS, *SBATCH])
def test_a_setting_sbatch_cannot_read_back_is_refused(field: str, payload: str) -> None:
    with pytest.raises(ConfigError, match=rf"^launcher\.{field}=.* cannot go on an #SBATCH line: it .*; use a "):
        _job(**{field: payload})


@pytest.mark.parametrize("field", ["partition", "account", "qos"])
@pytest.mark.parametrize("payload", [*SHELL.values(), "gpu a100", "'gpu'"], ids=[*SHELL, "space", "quotes"])
def test_a_slurm_name_with_shell_characters_is_refused(field: str, payload: str) -> None:
    with pytest.raises(ConfigError, match=rf"launcher\.{field}=.* holds characters other than letters, digits"):
        _job(**{field: payload})


@pytest.mark.parametrize("payload", [*BREAKOUTS.values(), *SBATCH.values()], ids=[*BREAKOUTS, *SBATCH])
def test_an_sbatch_args_value_sbatch_cannot_read_back_is_refused(payload: str) -> None:
    with pytest.raises(ConfigError, match=r"^launcher\.sbatch_args item .* cannot go on an #SBATCH line: its value"):
        _job(sbatch_args=[f"--constraint={payload}"])


@pytest.mark.parametrize(
    "field",
    ["nodes", "ntasks_per_node", "gpus_per_node", "cpus_per_task", "mem_gb", "time_min", "signal_before_end_s",
     "max_requeues", "signal"],
)  # fmt: skip
@pytest.mark.parametrize("payload", [BREAKOUTS["newline"], "1; echo > pwned", "$(: > pwned)"])
def test_numbers_and_the_signal_take_no_text(field: str, payload: str) -> None:
    with pytest.raises(ConfigError, match=rf"launcher\.{field}="):
        _job(**{field: payload})


@pytest.mark.parametrize("field", ["job_name", "partition", "account", "qos", "signal", "time_min", "sbatch_args"])
def test_every_message_is_one_line(field: str) -> None:
    value = [f"--comment={BREAKOUTS['newline']}"] if field == "sbatch_args" else BREAKOUTS["newline"]
    with pytest.raises(ConfigError) as caught:
        _job(**{field: value})
    assert "\n" not in str(caught.value) and "\\n" in str(caught.value)


@pytest.mark.parametrize("key", ["job-name", "constraint", "comment"])
@pytest.mark.parametrize("payload", [*SHELL.values(), "my job", 'it\'s "q" #1 %j'], ids=[*SHELL, "space", "quotes"])
def test_free_text_values_are_quoted_and_sbatch_reads_them_back(tmp_path: Path, key: str, payload: str) -> None:
    if key == "job-name":
        _job(job_name=payload)  # accepted
        options = sbatch_options(job_name=payload, nodes=1, ntasks_per_node=1)
    else:
        _job(sbatch_args=[f"--{key}={payload}"])
        options = sbatch_options(job_name="t", nodes=1, ntasks_per_node=1, extra=(f"--{key}={payload}",))
    text = render(BatchRequest(options, (), "/runs/r", "USR1", 1))
    assert _sbatch_reads(_directive(text, key)) == [f"--{key}={payload}"]
    assert _run_script(tmp_path, text).returncode == 0
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.parametrize("payload", [*SHELL.values(), "a b", "it's %j #x"], ids=[*SHELL, "space", "quote"])
def test_the_run_dir_is_quoted_for_bash_and_for_sbatch(tmp_path: Path, payload: str) -> None:
    run_dir = Path(f"/runs/{payload}")
    text = render(slurm.SlurmLauncher(_job(), environ={}).request(run_dir))
    output = str(run_dir).replace("%", "%%") + "/slurm-%j.out"  # %j in the directory is not the job id
    assert _sbatch_reads(_directive(text, "output")) == [f"--output={output}"]
    assert f"RUN_DIR={shlex.quote(str(run_dir))}" in text.splitlines()
    assert _run_script(tmp_path, text).returncode == 0
    assert _srun_argv(tmp_path)[-1] == f"{run_dir}/job.json"
    assert not list(tmp_path.glob("pwned*"))


@pytest.mark.parametrize("payload", [*BREAKOUTS.values(), "/runs/a\\b"], ids=[*BREAKOUTS, "backslash"])
def test_a_run_dir_sbatch_cannot_read_back_is_refused_before_anything_is_written(payload: str) -> None:
    job = config.load({**_job(dry_run=True).to_dict(), "output_dir": f"/runs/{payload}"})
    with pytest.raises(ConfigError, match=r"^the run directory .* cannot go on the script's #SBATCH --output line"):
        slurm.SlurmLauncher(job, environ={}).preflight()


def test_render_refuses_what_validation_did_not_see() -> None:
    with pytest.raises(ConfigError, match=r"#SBATCH --job-name='a\\nb' cannot be written: it holds a control"):
        render(BatchRequest((("job-name", "a\nb"),), (), "/r", "USR1", 1))
    with pytest.raises(ConfigError, match="holds a NUL character"):
        render(_request(["+x=a\0b"]))


def test_multi_line_overrides_stay_inside_their_quotes(tmp_path: Path) -> None:
    nasty = ["+note=a\necho > pwned6\n#SBATCH --wrap=x", "+cr=a\recho > pwned7"]
    text = render(_request(nasty))
    assert not any("wrap" in line for line in _sbatch_header(text))  # sbatch never sees it
    assert _run_script(tmp_path, text).returncode == 0
    (comment,) = [line for line in text.split("\n") if line.startswith("PREPARE=0  #")]  # one line holds them all
    assert json.loads(comment.partition("its overrides were ")[2]) == nasty
    assert not list(tmp_path.glob("pwned*"))


SBATCH_ERRORS = [
    (
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n",
        "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
    ),
    (
        "sbatch: unrecognized option '--bogus'\nTry \"sbatch --help\" for more information\n",
        "sbatch: unrecognized option '--bogus'",
    ),
    (
        "sbatch: error: invalid partition specified: x\nsbatch: error: Batch job submission failed: Invalid "
        "partition name specified\n",
        "sbatch: error: invalid partition specified: x; sbatch: error: Batch job submission failed: Invalid "
        "partition name specified",
    ),
    ("", "exit code 1"),
]


@pytest.mark.parametrize(("stderr", "why"), SBATCH_ERRORS)
def test_sbatch_refusal_shows_sbatchs_own_lines_in_one_sentence(stderr: str, why: str) -> None:
    message = sbatch_refusal(Path("/r/submit.sbatch"), stderr, "", 1)
    assert message.startswith(f"sbatch refused /r/submit.sbatch: {why}; fix what it names")
    assert message.endswith("launcher.dry_run=true.") and "\n" not in message and "--help" not in message


def test_a_sweep_is_submitted_only_from_outside_a_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sweep submits one job per size, so it starts where sbatch does, not in a batch shell or a task (where its
    analysis job re-plans the points: sizing them there is fine)."""
    from scaletrain.driver.launchers import slurm_sweep

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert slurm.SlurmLauncher.sweep_point(_job(), 1, 2).nodes == 1
    with pytest.raises(ConfigError, match="starts from a login node, not inside a SLURM job"):
        slurm_sweep.submit(_job(), [], [])


def test_the_batch_logic_spells_the_exit_codes_of_the_contract() -> None:
    """BODY is shell text, so it writes the hang and stop codes as numbers: they must be contract/exit_codes.py's."""
    assert f'if [ "$code" = {int(ExitCode.HUNG)} ]' in BODY
    assert f'if [ "$code" != {int(ExitCode.STOPPED)} ]' in BODY
    assert f"code={int(ExitCode.STOPPED)}  # the ranks stopped on request" in BODY
