"""One attempt of a job on a Ray cluster: a placement group, one actor per rank in it, one worker process per actor,
their output relayed to this terminal, and everything released again however the attempt ends.

Only imported once Ray is connected (``import ray`` at the top is fine here).
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayActorError, RayError, RuntimeEnvSetupError
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from scaletrain.common.output import RankOutput
from scaletrain.common.watchdog import NO_STACK, STACK_WAIT_S, Watchdog
from scaletrain.contract import failure
from scaletrain.contract.beacon import Position
from scaletrain.contract.errors import LaunchError
from scaletrain.driver.launchers.ray_cluster import Slot, describe_bundle, free_resources, plan
from scaletrain.driver.launchers.supervisor import Outcome, first_failure, hang_outcome
from scaletrain.launchers.ray import POLL_S
from scaletrain.rank.ray_actor import RankActor
from scaletrain.rank.spec import RankSpec, rank_log_path

log = logging.getLogger("scaletrain")

_SLICE_S = 0.25  # blocking Ray calls are cut into slices this long, so Ctrl-C is noticed


def wait_for(refs: list, timeout_s: float, interrupted: threading.Event) -> bool:
    """True once every ref is ready, False when ``timeout_s`` passed; returns early (False) on an interrupt."""
    deadline = time.monotonic() + timeout_s
    pending = list(refs)
    while pending:
        if interrupted.is_set() or time.monotonic() >= deadline:
            return False
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=_SLICE_S)
    return True


class RankGroup:
    """The ranks of one attempt on the cluster. ``release()`` always leaves nothing behind."""

    def __init__(self, rank: dict[str, float], nproc: int, strategy: str, interrupted: threading.Event) -> None:
        self.rank = rank
        self.nproc = nproc
        self.strategy = strategy
        self.interrupted = interrupted
        self.pg = None
        self.actors: list[Any] = []
        self.placed: list[dict[str, Any]] = []
        self.slots: list[Slot] = []
        self.pids: dict[int, int] = {}  # rank -> worker pid on its node

    def reserve(self, timeout_s: float) -> None:
        """The placement group, ready within ``timeout_s`` or a LaunchError (the caller releases it)."""
        self.pg = placement_group([dict(self.rank)] * self.nproc, strategy=self.strategy)
        if wait_for([self.pg.ready()], timeout_s, self.interrupted) or self.interrupted.is_set():
            return
        raise LaunchError(
            f"the Ray cluster did not place {self.nproc} rank(s) of {describe_bundle(self.rank)} with "
            f"{self.strategy} within launcher.placement_timeout_s={timeout_s:g} (free now: {free_resources()}); "
            "free or add resources, or raise the timeout."
        )

    def start_actors(self, timeout_s: float) -> None:
        """One actor per bundle, then where each landed; rank numbers follow from that (``plan``)."""
        custom = {k: v for k, v in self.rank.items() if k not in ("CPU", "GPU")}
        remote = ray.remote(RankActor)
        for i in range(self.nproc):
            options = dict(
                num_cpus=self.rank.get("CPU", 0),
                num_gpus=self.rank.get("GPU", 0),
                resources=custom,
                max_restarts=0,  # the whole group restarts, from a checkpoint: scaletrain's max_restarts
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=i),
            )
            self.actors.append(remote.options(**options).remote())
        refs = [a.describe.remote() for a in self.actors]
        try:
            if not wait_for(refs, timeout_s, self.interrupted):
                if self.interrupted.is_set():
                    return
                raise LaunchError(
                    f"the rank actors did not start within launcher.start_timeout_s={timeout_s:g} (a slow runtime_env "
                    "setup?); raise the timeout or check the cluster's logs (ray logs)."
                )
            self.placed = ray.get(refs)
        except RuntimeEnvSetupError as exc:
            last = str(exc).strip().splitlines()[-1][:300]
            raise LaunchError(f"launcher.runtime_env could not be set up on the cluster ({last}); fix it.") from None
        except RayActorError as exc:  # e.g. scaletrain is not importable on a node, so the actor class is not
            last = str(exc).strip().splitlines()[-1][:300]
            raise LaunchError(
                f"the rank actors could not start on the Ray cluster ({last}); install the same scaletrain, Ray and "
                "Python on every node, or ship your code with launcher.working_dir."
            ) from None
        self.slots = plan(self.placed)

    def start_workers(
        self,
        specs: list[RankSpec],
        job_file: str,
        job_json: str,
        watch: bool = False,
        orphan_after_s: float = 0.0,
    ) -> list:
        """Start each rank's worker in its actor as its spec says (the actor runs the spec's argv with its node's
        Python and lays the spec's env over its node's environment); the worker pids in rank order. ``watch``: each
        rank publishes its beacon on its node, for the hang watchdog (``RayProbe``). ``orphan_after_s``: a rank that
        hears no poll from this driver for that long stops itself (RankActor.start)."""
        spec_of = {spec.rank: spec for spec in specs}
        refs = [
            self.actors[s.bundle_index].start.remote(
                spec_of[s.rank].argv[1:], spec_of[s.rank].env, job_file, job_json, watch, orphan_after_s
            )
            for s in self.slots
        ]
        self.pids = dict(zip((s.rank for s in self.slots), ray.get(refs), strict=True))
        return [self.pids[s.rank] for s in self.slots]

    def supervise(
        self, log_dir: Path | None, stop_grace_s: float, timeout_s: float | None = None, report_dir: Path | None = None
    ) -> Outcome:
        """Relay every rank's output until all succeeded, one failed or died (the others are then stopped), the
        watchdog found a hang (``timeout_s``: watchdog.hang_timeout_s; the report goes into ``report_dir``), or an
        interrupt (every rank gets SIGINT)."""
        probe = RayProbe(self)
        watchdog = Watchdog(probe, timeout_s) if report_dir is not None else None
        lock = threading.Lock()
        outputs = {s.rank: RankOutput(s.rank, rank_log_path(log_dir, s.rank), lock) for s in self.slots}
        actor_of = {s.rank: self.actors[s.bundle_index] for s in self.slots}
        host_of = {s.rank: s.host for s in self.slots}
        pending = {actor_of[r].poll.remote(POLL_S): r for r in outputs}
        exited: dict[int, int] = {}
        failures: list[tuple[int, Outcome]] = []  # (the poll round it was seen in, how the rank ended)
        round_no = 0
        try:
            while True:
                if self.interrupted.is_set():
                    self.stop(signal.SIGINT, stop_grace_s)
                    return Outcome(ok=False, interrupted=True)
                round_no += 1
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=_SLICE_S)
                if ready:
                    rest = [r for r in pending if r not in ready]
                    ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0] if rest else []
                for ref in ready:
                    rank = pending.pop(ref)
                    try:
                        data, code, beacon, state = ray.get(ref)
                    except RayActorError as exc:
                        failures.append((round_no, Outcome(False, rank=rank, lost=f"on {host_of[rank]} {_lost(exc)}")))
                        continue
                    probe.seen[rank] = (beacon, state)
                    outputs[rank].feed(data)
                    if code is None:
                        pending[actor_of[rank].poll.remote(POLL_S)] = rank
                        continue
                    exited[rank] = code
                    if code != 0:
                        failures.append((round_no, Outcome(False, rank=rank, returncode=code)))
                # A frozen peer makes the healthy ranks fail (collective timeouts, TensorFlow's heartbeat): blame it.
                # (A rank whose actor or node was lost is itself the cause: Ray's reason says more than a hang.)
                ordinary = failures and all(outcome.lost is None for _, outcome in failures)
                hang = watchdog.blame_on_failure() if watchdog and ordinary else None
                hang = hang or (watchdog.check() if watchdog else None)
                if hang is not None:
                    outcome = hang_outcome(hang, report_dir)
                    self.stop(signal.SIGKILL, stop_grace_s)
                    return outcome
                if failures:
                    return self._end_on_failure(failures, stop_grace_s, outputs, probe if watchdog else None)
                if len(exited) == len(outputs):
                    return Outcome(ok=True)
        finally:
            for out in outputs.values():
                out.close()

    def _end_on_failure(
        self,
        failures: list[tuple[int, Outcome]],
        stop_grace_s: float,
        outputs: dict[int, RankOutput],
        probe: RayProbe | None = None,
    ) -> Outcome:
        """Stop every rank and name the failure that came first: a lost rank before the peers it took down, a rank's
        own error (its failure note) before the collective errors of the peers it left."""
        _, first = first_failure(failures, lambda f: f[0], lambda f: _by_signal(f[1]))
        culprit = failure.cause(probe.failures()) if probe is not None and first.lost is None else None
        dead = self.stop(signal.SIGTERM, stop_grace_s)
        if first.lost is None and first.returncode >= 0 and dead:
            # A rank that lost its peer errors out before Ray reports the peer's actor (or node) dead.
            rank, why = min(dead.items())
            host = next(s.host for s in self.slots if s.rank == rank)
            first = Outcome(False, rank=rank, lost=f"on {host} {why}")
        elif culprit is not None:
            code = next((o.returncode for _, o in failures if o.rank == culprit.rank and o.returncode > 0), None)
            others = [s.rank for s in self.slots]
            first = Outcome(False, rank=culprit.rank, returncode=code or first.returncode,
                            cause=failure.verdict(culprit, others))  # fmt: skip
        first.tail = list(outputs[first.rank].tail)
        return first

    def stop(self, first_signal: int, grace_s: float) -> dict[int, str]:
        """Stop every rank's worker: ``first_signal``, then SIGKILL after the grace period. Returns the ranks whose
        actor turned out to be dead, with why (their workers died with them: parent-death signal)."""
        refs = {s.rank: self.actors[s.bundle_index].stop.remote(first_signal, grace_s) for s in self.slots}
        deadline = time.monotonic() + grace_s + 10
        dead = {}
        for rank, ref in refs.items():
            try:
                ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
            except RayActorError as exc:
                dead[rank] = _lost(exc)
            except (RayError, GetTimeoutError):
                pass  # release() kills the actor, and its worker with it
        return dead

    def release(self) -> None:
        """Kill every actor (its worker dies with it) and remove the placement group."""
        for actor in self.actors:
            try:
                ray.kill(actor)
            except RayError:
                pass
        if self.pg is not None:
            remove_placement_group(self.pg)
        self.actors, self.pg = [], None


class RayProbe:
    """The watchdog's view of ranks on Ray nodes: each poll of a rank's actor brings its beacon and process state
    from its node (no shared disk needed); stacks are asked of the actors."""

    def __init__(self, group: RankGroup) -> None:
        self.group = group
        self.seen: dict[int, tuple[str, str]] = {}  # rank -> (beacon JSON text, process state) of its last poll

    def positions(self) -> dict[int, Position]:
        found = {}
        for rank, (text, _) in self.seen.items():
            try:
                found[rank] = Position(**json.loads(text))
            except (ValueError, TypeError):
                continue  # no beacon yet
        return found

    def states(self) -> dict[int, str]:
        return {rank: state for rank, (_, state) in self.seen.items()}

    def refresh(self) -> None:
        """Each rank's beacon and state read again from its node now, not the last poll's (which may predate the
        rank's last beacon, or its first); a rank whose actor does not answer keeps what the last poll brought."""
        actor_of = {s.rank: self.group.actors[s.bundle_index] for s in self.group.slots}
        refs = {rank: actor.position.remote() for rank, actor in actor_of.items()}
        for rank, ref in refs.items():
            try:
                self.seen[rank] = ray.get(ref, timeout=POLL_S + 5)
            except (RayError, GetTimeoutError):
                pass

    def stacks(self, states: dict[int, str]) -> dict[int, str]:
        actor_of = {s.rank: self.group.actors[s.bundle_index] for s in self.group.slots}
        refs = {rank: actor.dump_stack.remote(states.get(rank) == "stopped") for rank, actor in actor_of.items()}
        stacks = {}
        for rank, ref in refs.items():
            try:
                stacks[rank] = ray.get(ref, timeout=STACK_WAIT_S + POLL_S + 5)
            except (RayError, GetTimeoutError):
                stacks[rank] = NO_STACK
        return stacks

    def placeholders(self) -> dict[int, dict]:
        return {s.rank: {"host": s.host, "pid": self.group.pids.get(s.rank, "?")} for s in self.group.slots}

    def failures(self) -> dict[int, failure.Note]:
        """Every rank's failure note, asked of its actor (the notes stay on the nodes)."""
        actor_of = {s.rank: self.group.actors[s.bundle_index] for s in self.group.slots}
        refs = {rank: actor.failure_note.remote() for rank, actor in actor_of.items()}
        notes = {}
        for rank, ref in refs.items():
            try:
                note = failure.parse(ray.get(ref, timeout=POLL_S + 5))
            except (RayError, GetTimeoutError):
                continue
            if note is not None:
                notes[rank] = note
        return notes


def _by_signal(outcome: Outcome) -> bool:
    """A rank lost with its actor or node, or killed by a signal: ranked before ranks that exited with an error."""
    return outcome.lost is not None or outcome.returncode < 0


def _lost(exc: RayActorError) -> str:
    """'was lost: ...' with Ray's reason (its message: a headline, tab-indented details, then the cause)."""
    if isinstance(exc, ActorUnavailableError):
        return "was lost: its Ray actor stopped answering (its node or process died)"
    lines = [line for line in str(exc).splitlines() if line.strip()]
    causes = [line.strip() for line in lines[1:] if not line.startswith("\t")]
    reason = (causes or lines or [type(exc).__name__])[0].strip()
    return f"was lost: its Ray actor died ({reason[:200]})"
