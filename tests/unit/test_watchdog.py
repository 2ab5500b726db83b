"""Who the others wait for, from beacons and process states; and the beacon's own file, read back."""

from __future__ import annotations

import os
import time

from scaletrain.common.watchdog import (
    HangReport,
    LocalProbe,
    StackDump,
    Watchdog,
    collect_stacks,
    diagnose,
    process_state,
)
from scaletrain.contract.beacon import Beacon, Position, read_all

NOW = 1_000_000.0


def _at(rank: int, step: int, phase: str = "compute", updated_ago_s: float = 0.5) -> Position:
    return Position(rank, "host-a", 100 + rank, step, phase, NOW - 60, NOW - 60, NOW - updated_ago_s)


def test_a_stopped_process_is_blamed_first():
    positions = {0: _at(0, 10), 1: _at(1, 10), 2: _at(2, 9, "data")}
    assert diagnose(positions, {0: "sleeping", 1: "stopped", 2: "sleeping"}, NOW) == ([1], "stopped")


def test_a_stale_beacon_is_blamed_when_no_process_is_stopped():
    positions = {0: _at(0, 10), 1: _at(1, 10, updated_ago_s=30)}
    assert diagnose(positions, {0: "sleeping", 1: "running"}, NOW) == ([1], "stale beacon")


def test_otherwise_the_ranks_furthest_behind():
    positions = {0: _at(0, 10, "compute"), 1: _at(1, 10, "data"), 2: _at(2, 10, "compute")}
    assert diagnose(positions, {}, NOW) == ([1], "furthest behind")  # stuck fetching its batch


def test_every_rank_at_the_same_place_blames_nobody():
    positions = {0: _at(0, 10), 1: _at(1, 10)}
    culprits, why = diagnose(positions, {}, NOW)
    assert culprits == [] and why == "every rank at the same place"
    report = HangReport(waited_s=12, timeout_s=10, culprits=[], why=why)
    assert report.sentence().startswith("hang: no rank advanced for 12 s (watchdog.hang_timeout_s=10)")


def test_beacon_publishes_step_and_phase_and_says_done(tmp_path):
    beacon = Beacon(tmp_path, rank=3, every_s=0.05)
    beacon.at("compute")
    beacon.step = 7
    time.sleep(0.3)
    mid = read_all(tmp_path)[3]
    assert (mid.step, mid.phase, mid.pid) == (7, "compute", os.getpid())
    beacon.close()
    assert read_all(tmp_path)[3].phase == "done"


def test_watchdog_waits_for_a_first_trained_step(tmp_path):
    Beacon(tmp_path, rank=0, every_s=0.05).close()  # published, but at step 0: still starting up
    watchdog = Watchdog(LocalProbe(tmp_path, {0: os.getpid()}), timeout_s=0.01)
    assert watchdog.check() is None


def test_process_state_reads_proc():
    assert process_state(os.getpid()) == "running"
    assert process_state(2**22 + 12345) == "gone"


def test_a_rank_frozen_before_its_first_beacon_is_still_named_with_its_pid(tmp_path):
    import signal
    import subprocess

    child = subprocess.Popen(["sleep", "30"])  # stands for a rank: stopped before it published anything
    try:
        os.kill(child.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 5
        while process_state(child.pid) != "stopped" and time.monotonic() < deadline:
            time.sleep(0.01)  # the signal is delivered asynchronously
        report = Watchdog(LocalProbe(tmp_path, {1: child.pid}), timeout_s=10).report({}, waited_s=12.0)
    finally:
        child.kill()
        child.wait()
    assert report.culprits == [1] and report.why == "stopped"
    named = f"rank 1 on {os.uname().nodename} (pid {child.pid}, step ?, phase no beacon yet, stopped)"
    assert named in report.sentence()


class _Probe:
    """The ranks as a launcher's probe sees them: fixed positions, every process sleeping, no stacks asked for."""

    def __init__(self, positions: dict[int, Position]) -> None:
        self._positions = positions

    def positions(self) -> dict[int, Position]:
        return self._positions

    def states(self) -> dict[int, str]:
        return {rank: "sleeping" for rank in self._positions}

    def stacks(self, states: dict[int, str]) -> dict[int, str]:
        return {rank: "(stack)" for rank in self._positions}

    def placeholders(self) -> dict[int, dict]:
        return {}

    def refresh(self) -> None:
        pass


class _LaggingProbe(_Probe):
    """A relay (Ray's actors) whose last poll predates a rank's beacon: ``refresh`` reads each rank again."""

    def __init__(self, relayed: dict[int, Position], current: dict[int, Position]) -> None:
        super().__init__(relayed)
        self._current = current
        self.refreshed = 0

    def refresh(self) -> None:
        self.refreshed += 1
        self._positions = dict(self._current)

    def states(self) -> dict[int, str]:
        return {0: "sleeping", 1: "stopped"}

    def placeholders(self) -> dict[int, dict]:
        return {0: {"host": "h0", "pid": 10}, 1: {"host": "h1", "pid": 11}}


def test_the_verdict_reads_every_rank_again_so_a_lagging_relay_never_hides_the_frozen_ranks_position():
    current = {0: _at(0, 21, "communication"), 1: _at(1, 20, "compute")}
    probe = _LaggingProbe({0: current[0]}, current)  # rank 1's beacon had not been relayed yet
    watchdog = Watchdog(probe, timeout_s=5)
    report = watchdog.report(probe.positions(), waited_s=6.0)
    assert probe.refreshed == 1 and report.culprits == [1] and report.why == "stopped"
    assert "phase compute, stopped" in report.sentence() and "no beacon yet" not in report.sentence()
    assert report.positions[1]["step"] == 20
    failing = Watchdog(_LaggingProbe({}, current), timeout_s=5)  # a peer failed first: the same fresh read
    blamed = failing.blame_on_failure()
    assert blamed is not None and blamed.culprits == [1] and blamed.positions[1]["step"] == 20


def test_a_hang_before_the_first_step_is_named_once_no_step_came_for_the_first_step_timeout():
    from scaletrain.common import watchdog as module

    # rank 1 never got its first batch; rank 0 waits in the first all-reduce
    watchdog = Watchdog(_Probe({0: _at(0, 0, "communication"), 1: _at(1, 0, "data")}), timeout_s=None)
    assert watchdog.check() is None  # just started: imports and compiling may take minutes
    watchdog.started_unix_s = time.time() - module.FIRST_STEP_TIMEOUT_S - 1
    watchdog._next_read = 0.0
    report = watchdog.check()
    assert report is not None and report.culprits == [1] and report.why == "furthest behind"
    assert report.waited_s > module.FIRST_STEP_TIMEOUT_S and report.stacks == {0: "(stack)", 1: "(stack)"}
    # ranks that never report steps (an unmodified script, a function training by itself) are not judged by it
    for phase in ("script", "start"):
        quiet = Watchdog(_Probe({0: _at(0, 0, phase), 1: _at(1, 0, phase)}), timeout_s=None)
        quiet.started_unix_s = time.time() - 10 * module.FIRST_STEP_TIMEOUT_S
        assert quiet.check() is None


def test_a_stack_dump_is_taken_only_once_it_stopped_growing(tmp_path):
    """faulthandler writes thread by thread with no end marker: a dump read after its first thread (a background
    one) lacked the main thread's frames, and the report named the frozen rank without its script (seen on CI)."""
    path = tmp_path / "stack_rank_1.txt"
    path.write_text('Thread 0x1 (most recent call first):\n  File "threading.py", line 1 in wait\n\n')
    dump = StackDump(path)
    assert not dump.whole()  # it may still be writing the next thread
    time.sleep(StackDump.SETTLED_S / 2)
    with path.open("a") as f:
        f.write('Current thread 0x2 (most recent call first):\n  File "looping_script.py", line 14 in <module>\n')
    assert not dump.whole()  # it grew: the wait starts again
    time.sleep(StackDump.SETTLED_S + 0.05)
    assert dump.whole() and "looping_script.py" in dump.text
    assert "looping_script.py" in collect_stacks(tmp_path, [1], wait_s=2.0)[1]


def test_a_stack_cut_mid_line_is_not_whole(tmp_path):
    path = tmp_path / "stack_rank_0.txt"
    path.write_text('Thread 0x1 (most recent call first):\n  File "threa')
    dump = StackDump(path)
    time.sleep(StackDump.SETTLED_S + 0.05)
    assert not dump.whole()
    assert collect_stacks(tmp_path, [0], wait_s=0.5)[0].endswith('File "threa')  # at the deadline: what there is
