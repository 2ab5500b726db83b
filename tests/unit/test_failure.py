"""A rank's own account of its failure, and the cause named from the ranks' accounts."""

from __future__ import annotations

import os

from scaletrain.contract import failure
from scaletrain.contract.failure import Note


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001  (the test wants the traceback attached)
        return caught


def test_a_peers_collective_error_and_a_user_error_are_told_apart():
    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [10.0.0.2]")
    assert failure.kind_of(_raised(gloo)) == "collective"
    dist_backend_error = type("DistBackendError", (RuntimeError,), {})
    assert failure.kind_of(_raised(dist_backend_error("the communicator was aborted on rank 0"))) == "collective"
    assert failure.kind_of(_raised(TimeoutError("the data server timed out"))) == "exception"  # the user's own
    assert failure.kind_of(_raised(ValueError("a bad batch on rank 1"))) == "exception"
    assert failure.kind_of(_raised(KeyError("label"))) == "exception"


def test_the_note_is_written_and_read_back_with_where_it_was_raised(tmp_path):
    failure.write(tmp_path, 1, _raised(ValueError("a bad batch")))
    (note,) = failure.read_all(tmp_path).values()
    assert (note.rank, note.pid, note.kind, note.error) == (1, os.getpid(), "exception", "ValueError: a bad batch")
    assert note.where.startswith("test_failure.py:") and note.where.endswith(" in _raised")
    (tmp_path / "failure_rank_2.json").write_text("{half")  # damaged: skipped, not fatal
    assert list(failure.read_all(tmp_path)) == [1]


def _note(rank: int, kind: str, at: float) -> Note:
    return Note(rank, f"h{rank}", 100 + rank, at, kind, "E: x", "")


def test_the_cause_is_the_earliest_own_error_even_when_a_peers_collective_error_came_first():
    notes = {0: _note(0, "collective", 10.0), 1: _note(1, "exception", 10.5), 2: _note(2, "exception", 11.0)}
    assert failure.cause(notes).rank == 1
    # collective errors alone: a peer died without a note (SIGKILL, a lost node); the launcher names it by its end
    assert failure.cause({0: _note(0, "collective", 10.0), 1: _note(1, "collective", 9.0)}) is None
    assert failure.cause({}) is None
    sentence = failure.verdict(notes[1], [0, 1, 2, 3])
    assert sentence == "rank 1 on h1 raised E: x; ranks 0, 2, 3 ended because rank 1 failed"
    assert failure.verdict(notes[0], [0, 1]) == "rank 0 on h0 raised E: x; rank 1 ended because rank 0 failed"
