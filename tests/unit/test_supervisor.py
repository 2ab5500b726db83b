"""The local launcher's supervisor with real (plain Python) processes: prefixes, failure reports, stopping."""

from __future__ import annotations

import os
import signal
import sys
import time

from scaletrain.driver.launchers.supervisor import Supervisor, first_failure, forward_interrupts


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_all_ranks_succeed_and_output_is_prefixed(tmp_path, capfdbinary):
    sup = Supervisor(log_dir=tmp_path)
    for rank in range(2):
        sup.start(rank, python(f"print('hello from {rank}')"), dict(os.environ))
    assert sup.wait().ok
    out = capfdbinary.readouterr().out.decode()
    assert "[rank 0] hello from 0" in out and "[rank 1] hello from 1" in out
    assert (tmp_path / "rank_1.log").read_text() == "hello from 1\n"


def test_failure_stops_the_others_and_names_rank_code_and_last_lines(tmp_path):
    sup = Supervisor(stop_grace_s=2, log_dir=tmp_path)
    sup.start(0, python("import time; time.sleep(60)"), dict(os.environ))
    sup.start(1, python("print('line one'); print('line two'); raise SystemExit(7)"), dict(os.environ))
    started = time.monotonic()
    outcome = sup.wait()
    assert time.monotonic() - started < 10
    assert not outcome.ok and outcome.rank == 1 and outcome.returncode == 7
    assert outcome.tail == ["line one", "line two"]
    assert "rank 1 exited with code 7; its last lines of output:\n    line one\n    line two" == outcome.describe()
    assert sup.ranks[0].proc.returncode == -signal.SIGTERM


def test_rank_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    sup = Supervisor(stop_grace_s=0.5, log_dir=tmp_path)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    )
    sup.start(0, python(stubborn), dict(os.environ))
    sup.start(1, python("import time; time.sleep(0.5); raise SystemExit(1)"), dict(os.environ))
    outcome = sup.wait()
    assert outcome.rank == 1
    assert sup.ranks[0].proc.returncode == -signal.SIGKILL


def test_progress_bar_carriage_returns_keep_their_prefix(tmp_path, capfdbinary):
    sup = Supervisor(log_dir=tmp_path)
    sup.start(0, python("import sys; sys.stdout.write('10%\\r50%\\r100%\\n')"), dict(os.environ))
    assert sup.wait().ok
    assert capfdbinary.readouterr().out == b"[rank 0] 10%\r[rank 0] 50%\r[rank 0] 100%\n"


def test_first_failure_is_the_earliest_seen_and_of_those_a_rank_killed_by_a_signal():
    failures = [(2, "rank 0: exit 1"), (1, "rank 1: exit 1"), (1, "rank 2: SIGKILL"), (1, "rank 3: SIGSEGV")]
    pick = lambda fs: first_failure(fs, lambda f: f[0], lambda f: "SIG" in f[1])  # noqa: E731
    assert pick(failures)[1] == "rank 2: SIGKILL"  # seen with rank 1's error, which it caused; first of its kind
    assert pick(failures[:2])[1] == "rank 1: exit 1"
    assert pick([(1, "rank 5: exit 1"), (1, "rank 4: exit 2")])[1] == "rank 5: exit 1"  # equals: the first listed


def test_forward_interrupts_calls_back_on_sigint_and_sigterm_then_restores_the_handlers():
    calls = []
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with forward_interrupts(lambda: calls.append(1)):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handlers run between bytecodes, at once
    assert calls == [1, 1]
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
