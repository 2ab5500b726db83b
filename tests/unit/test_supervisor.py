"""The local launcher's supervisor with real (plain Python) processes: prefixes, failure reports, stopping."""

from __future__ import annotations

import os
import signal
import sys
import time

from scaletrain.launchers.supervisor import Supervisor


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
