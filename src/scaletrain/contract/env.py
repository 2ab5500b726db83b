"""ClusterEnv: this process's place in the job, read from torchrun, SLURM or plain local variables.

``detect`` is a pure function of the mapping it is given; it never reads or writes ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from scaletrain.contract.errors import ClusterEnvError

DEFAULT_MASTER_ADDR = "127.0.0.1"
DEFAULT_MASTER_PORT = 29500
_MAX_RANGE = 64 * 1024  # SLURM's own limit on hosts in one bracket range
_INT = re.compile(r"[+-]?[0-9]+")
_RANGE = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_TASKS_ITEM = re.compile(r"([0-9]+)(?:\(x([0-9]+)\))?")
_SEPARATOR = re.compile(r"[\s,]+(?![^\[]*\])")  # commas and whitespace outside brackets
_TOKEN = re.compile(r"(?:[^\[\]]|\[[^\[\]]*\])+")  # balanced, unnested brackets
_NODELIST_EXAMPLE = "'node[01-04,07],gpu1'"


@dataclass(frozen=True)
class ClusterEnv:
    """Where this process sits in the job: ranks, sizes, and the rendezvous address."""

    rank: int
    local_rank: int
    world_size: int
    local_world_size: int
    node_rank: int
    num_nodes: int
    master_addr: str
    master_port: int
    source: str  # "torchrun" | "slurm" | "local"
    hosts: tuple[str, ...] = ()
    job_id: str | None = None
    # "host:port" of every rank, in rank order, when the launcher assigned each rank its own port
    # (TensorFlow's TF_CONFIG names every worker); empty when the launcher does not know them.
    worker_addresses: tuple[str, ...] = ()

    @property
    def is_rank_zero(self) -> bool:
        return self.rank == 0

    def torchrun_vars(self) -> dict[str, str]:
        """The variables torchrun gives a worker, all as strings."""
        values = {
            "RANK": self.rank,
            "LOCAL_RANK": self.local_rank,
            "WORLD_SIZE": self.world_size,
            "LOCAL_WORLD_SIZE": self.local_world_size,
            "GROUP_RANK": self.node_rank,
            "NODE_RANK": self.node_rank,
            "MASTER_ADDR": self.master_addr,
            "MASTER_PORT": self.master_port,
        }
        return {name: str(value) for name, value in values.items()}


@dataclass(frozen=True)
class _Var:
    names: tuple[str, ...]  # the first one set wins
    meaning: str  # what a launcher must put there; ends every error message about it


class _Vars:
    """One source's view of the environ, read through its table of field -> variables."""

    def __init__(self, environ: Mapping[str, str], table: Mapping[str, _Var]) -> None:
        self._environ = environ
        self._table = table

    def find(self, field: str) -> tuple[str, str] | None:
        """(name, stripped value) of the first of the field's variables that is set, else None."""
        for name in self._table[field].names:
            if name in self._environ:
                return name, self._environ[name].strip()
        return None

    def label(self, field: str) -> str:
        found = self.find(field)
        return found[0] if found else self._table[field].names[0]

    def error(self, field: str, problem: str) -> ClusterEnvError:
        """One sentence naming the variable, its value, the problem and what it must hold."""
        found, meaning = self.find(field), self._table[field].meaning
        if found is None:
            names = self._table[field].names
            if len(names) > 1:
                return ClusterEnvError(
                    f"none of {', '.join(names)} is set; the launcher must set one of them to {meaning}."
                )
            return ClusterEnvError(f"{names[0]} is not set; the launcher must set it to {meaning}.")
        name, raw = found
        return ClusterEnvError(f"{name}={raw!r} {problem}; the launcher must set {name} to {meaning}.")

    def text(self, field: str) -> str:
        found = self.find(field)
        if found is None or not found[1]:
            raise self.error(field, "is empty")
        return found[1]

    def integer(self, field: str, default: int | None = None, minimum: int = 0, maximum: int | None = None) -> int:
        if default is not None and self.find(field) is None:
            return default
        raw = self.text(field)
        if not _INT.fullmatch(raw):  # stricter than int(), which also takes '1_0'
            raise self.error(field, "is not an integer")
        value = int(raw)
        if value < minimum or (maximum is not None and value > maximum):
            raise self.error(field, "is out of range")
        return value

    def below(self, field: str, value: int, bound: int, context: str) -> None:
        if value >= bound:
            raise self.error(field, f"is out of range for {context}")


_PORT = "the rendezvous TCP port (1..65535)"
_TORCHRUN = {
    "rank": _Var(("RANK",), "this process's global rank (0..WORLD_SIZE-1)"),
    "local_rank": _Var(("LOCAL_RANK",), "this process's rank on its node (0..LOCAL_WORLD_SIZE-1)"),
    "world_size": _Var(("WORLD_SIZE",), "the total number of processes (1 or more)"),
    "local_world_size": _Var(("LOCAL_WORLD_SIZE",), "the number of processes on this node (1 or more)"),
    "node_rank": _Var(("GROUP_RANK", "NODE_RANK"), "this node's index (0..WORLD_SIZE/LOCAL_WORLD_SIZE-1)"),
    "master_addr": _Var(("MASTER_ADDR",), "the rank-0 host's address"),
    "master_port": _Var(("MASTER_PORT",), _PORT),
}
# Step-level variables come first: a step on part of the allocation gets its own node list and counts.
_SLURM = {
    "rank": _Var(("SLURM_PROCID",), "this task's global rank (0..SLURM_NTASKS-1)"),
    "local_rank": _Var(("SLURM_LOCALID",), "this task's rank on its node (0..its node's task count-1)"),
    "world_size": _Var(("SLURM_NTASKS",), "the number of tasks in the step (1 or more)"),
    "node_rank": _Var(("SLURM_NODEID",), "this node's index in the step (0..SLURM_NNODES-1)"),
    "num_nodes": _Var(
        ("SLURM_STEP_NUM_NODES", "SLURM_NNODES", "SLURM_JOB_NUM_NODES"), "the number of nodes (1 or more)"
    ),
    "local_world_size": _Var(
        ("SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"),
        "the tasks on each node, such as '2(x3),1'",
    ),
    "hosts": _Var(
        ("SLURM_STEP_NODELIST", "SLURM_NODELIST", "SLURM_JOB_NODELIST"),
        f"the step's nodes as a SLURM node list such as {_NODELIST_EXAMPLE}",
    ),
    "master_addr": _Var(("MASTER_ADDR",), "the rank-0 host's address"),
    "master_port": _Var(("MASTER_PORT",), _PORT),
    "job_id": _Var(("SLURM_JOB_ID", "SLURM_JOBID"), "the numeric SLURM job id"),
}


def _from_torchrun(v: _Vars) -> ClusterEnv:
    world_size = v.integer("world_size", minimum=1)
    rank = v.integer("rank")
    local_world_size = v.integer("local_world_size", default=world_size, minimum=1)
    # Unset LOCAL_RANK / GROUP_RANK assume contiguous ranks per node (equal to RANK and 0 on one node).
    local_rank = v.integer("local_rank", default=rank % local_world_size)
    node_rank = v.integer("node_rank", default=rank // local_world_size)
    num_nodes = -(-world_size // local_world_size)
    v.below("rank", rank, world_size, f"WORLD_SIZE={world_size}")
    v.below("local_rank", local_rank, local_world_size, f"LOCAL_WORLD_SIZE={local_world_size}")
    v.below("node_rank", node_rank, num_nodes, f"{num_nodes} nodes (WORLD_SIZE/LOCAL_WORLD_SIZE)")
    return ClusterEnv(
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        local_world_size=local_world_size,
        node_rank=node_rank,
        num_nodes=num_nodes,
        master_addr=v.text("master_addr") if v.find("master_addr") else DEFAULT_MASTER_ADDR,
        master_port=v.integer("master_port", default=DEFAULT_MASTER_PORT, minimum=1, maximum=65535),
        source="torchrun",
    )


def _from_slurm(v: _Vars) -> ClusterEnv:
    world_size = v.integer("world_size", minimum=1)
    rank = v.integer("rank")
    local_rank = v.integer("local_rank")
    node_rank = v.integer("node_rank")
    hosts = tuple(_expand(v.text("hosts"), v.label("hosts"))) if v.find("hosts") else ()
    num_nodes = v.integer("num_nodes", default=len(hosts) or None, minimum=1)
    v.below("rank", rank, world_size, f"{v.label('world_size')}={world_size}")
    v.below("node_rank", node_rank, num_nodes, f"{v.label('num_nodes')}={num_nodes}")
    local_world_size = _slurm_local_world_size(v, node_rank)
    v.below("local_rank", local_rank, local_world_size, f"{local_world_size} tasks on node {node_rank}")
    job_id = v.text("job_id") if v.find("job_id") else None
    # With neither variable nor fallback (no node list, no job id), "MASTER_ADDR/PORT is not set" is raised.
    master_addr = hosts[0] if hosts and not v.find("master_addr") else v.text("master_addr")
    if job_id is not None and not v.find("master_port"):
        master_port = slurm_master_port(job_id)
    else:
        master_port = v.integer("master_port", minimum=1, maximum=65535)
    return ClusterEnv(
        rank=rank,
        local_rank=local_rank,
        world_size=world_size,
        local_world_size=local_world_size,
        node_rank=node_rank,
        num_nodes=num_nodes,
        master_addr=master_addr,
        master_port=master_port,
        source="slurm",
        hosts=hosts,
        job_id=job_id,
    )


def _slurm_local_world_size(v: _Vars, node_rank: int) -> int:
    """This node's task count, from a per-node list like '2(x3),1' or a plain SLURM_NTASKS_PER_NODE."""
    if v.label("local_world_size") == "SLURM_NTASKS_PER_NODE":
        return v.integer("local_world_size", minimum=1)
    counts: list[int] = []
    raw = v.text("local_world_size")
    for item in raw.split(","):
        match = _TASKS_ITEM.fullmatch(item.strip())
        if match is None:
            raise v.error("local_world_size", "is malformed")
        counts += [int(match[1])] * int(match[2] or 1)
    if node_rank >= len(counts):
        raise v.error("node_rank", f"is out of range for {v.label('local_world_size')}={raw!r}")
    return counts[node_rank]


def _is_slurm_job(environ: Mapping[str, str]) -> bool:
    """Only the tasks of an srun step match. The batch script's shell and an salloc shell also carry SLURM_PROCID=0
    and the job's SLURM_NTASKS (captured on a real cluster), but each is one process, not a rank of the job."""
    if "SLURM_PROCID" not in environ or "SLURM_NTASKS" not in environ:
        return False
    return "SLURM_STEP_ID" in environ or "SLURM_STEPID" in environ


def slurm_allocation(environ: Mapping[str, str]) -> ClusterEnv:
    """The job's placement as its batch (or salloc) shell sees it: the allocation's tasks, nodes and tasks per node,
    read as task 0 would (the shell carries SLURM_PROCID=0, SLURM_NTASKS and SLURM_TASKS_PER_NODE)."""
    return _from_slurm(_Vars(environ, _SLURM))


def detect(environ: Mapping[str, str]) -> ClusterEnv:
    """Tries the sources in a fixed order: torchrun-style, SLURM, then plain local (rank 0 of 1)."""
    # torchrun first, so a torchrun started inside a SLURM allocation wins.
    if "RANK" in environ and "WORLD_SIZE" in environ:
        return _with_step_hosts(_from_torchrun(_Vars(environ, _TORCHRUN)), environ)
    if _is_slurm_job(environ):
        return _from_slurm(_Vars(environ, _SLURM))
    return ClusterEnv(
        rank=0,
        local_rank=0,
        world_size=1,
        local_world_size=1,
        node_rank=0,
        num_nodes=1,
        master_addr=DEFAULT_MASTER_ADDR,
        master_port=DEFAULT_MASTER_PORT,
        source="local",
    )


def _with_step_hosts(env: ClusterEnv, environ: Mapping[str, str]) -> ClusterEnv:
    """A torchrun-style process inside an srun step (every worker of launcher=slurm, torchrun under srun) keeps the
    step's node list as ``hosts`` when it names as many hosts as the job has nodes: netif routes to them when the
    master's own name is loopback on the master (a stock Debian /etc/hosts), and knows a one-machine cluster by
    them. Anything else (no step, a list that does not parse or does not match) leaves ``env`` as it is."""
    if not _is_slurm_job(environ):
        return env
    slurm = _Vars(environ, _SLURM)
    if slurm.find("hosts") is None:
        return env
    try:
        hosts = tuple(_expand(slurm.text("hosts"), slurm.label("hosts")))
    except ClusterEnvError:
        return env
    return dataclasses.replace(env, hosts=hosts) if len(hosts) == env.num_nodes else env


def slurm_master_port(job_id: str) -> int:
    """A rendezvous port in 15000..34999 derived from the job id, so two jobs on one node differ."""
    if not _INT.fullmatch(job_id.strip()):
        raise ClusterEnvError(f"SLURM_JOB_ID={job_id!r} is not an integer; set MASTER_PORT or run inside a SLURM job.")
    return 15000 + int(job_id) % 20000


def expand_hostlist(nodelist: str) -> list[str]:
    """Expands SLURM compressed node lists exactly like `scontrol show hostnames`."""
    return _expand(nodelist, "nodelist")


def _expand(nodelist: str, label: str) -> list[str]:
    hosts: list[str] = []
    for token in _SEPARATOR.split(nodelist.strip()):
        if not token:
            continue
        if not _TOKEN.fullmatch(token):
            raise _bad_nodelist(label, nodelist, "has unbalanced or nested brackets")
        # Odd pieces are bracket contents; several groups expand as a cartesian product, left first.
        pieces = re.split(r"\[([^\]]*)\]", token)
        choices = [_expand_ranges(p, nodelist, label) if i % 2 else [p] for i, p in enumerate(pieces)]
        hosts.extend("".join(parts) for parts in itertools.product(*choices))
    if not hosts:
        raise _bad_nodelist(label, nodelist, "names no hosts")
    return hosts


def _expand_ranges(spec: str, nodelist: str, label: str) -> list[str]:
    """'01-03,7' -> 01 02 03 7: each range is zero-padded to the width of its start, as SLURM does."""
    numbers: list[str] = []
    for part in spec.split(","):
        match = _RANGE.fullmatch(part)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, -1)
        if match is None or not 0 <= high - low < _MAX_RANGE:
            problem = f"has an invalid range {part!r} (want N or LO-HI with LO <= HI)"
            raise _bad_nodelist(label, nodelist, problem)
        numbers.extend(f"{n:0{len(match[1])}d}" for n in range(low, high + 1))
    return numbers


def _bad_nodelist(label: str, nodelist: str, problem: str) -> ClusterEnvError:
    return ClusterEnvError(f"{label}={nodelist!r} {problem}; it must be a SLURM node list such as {_NODELIST_EXAMPLE}.")
