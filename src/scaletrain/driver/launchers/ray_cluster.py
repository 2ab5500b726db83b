"""The cluster side of ``launcher=ray``: reach the cluster in bounded time, size the job to its nodes, and say in one
sentence why a request can never be placed — before a placement group would sit pending forever.

The sizing functions are pure (they take a list of ``Node``), so they are tested without Ray.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from scaletrain.common import hardware
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError, LaunchError
from scaletrain.launchers.ray import split_address

log = logging.getLogger("scaletrain")

_CONFIG_KEYS = {"CPU": "launcher.num_cpus_per_rank", "GPU": "launcher.num_gpus_per_rank"}
T = TypeVar("T")


@dataclass(frozen=True)
class Node:
    """One live node of the cluster: its Ray id, IP and total resources (CPU, GPU, TPU, memory, custom)."""

    node_id: str
    ip: str
    resources: dict[str, float]

    def holds(self, bundle: dict[str, float]) -> int:
        """How many ranks of ``bundle`` fit on this node when it is empty."""
        counts = [math.floor(self.resources.get(k, 0.0) / v + 1e-9) for k, v in bundle.items() if v > 0]
        return min(counts, default=0)


# --- reaching the cluster ------------------------------------------------------------------------------------------


def find_auto_address() -> str:
    """What `ray.init(address='auto')` would connect to: RAY_ADDRESS, else the cluster `ray start` left on this host."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    from ray._private.utils import read_ray_address  # reads /tmp/ray/ray_current_cluster, written by `ray start`

    found = read_ray_address()
    if not found:
        raise LaunchError(
            "launcher.address=auto but no Ray cluster runs on this host (RAY_ADDRESS is unset and `ray start` left "
            "no address); start one with `ray start --head`, pass launcher.address=HOST:PORT, or leave "
            "launcher.address unset to start a local Ray for this job."
        )
    return found


def within(deadline: float, call: Callable[[], T]) -> T:
    """``call()``, or TimeoutError at ``deadline``: a call blocked in C (a DNS lookup, Ray's gRPC connect retries)
    cannot be interrupted, so it runs in a daemon thread that is left behind when time is up."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="scaletrain-ray-connect", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise TimeoutError("timed out")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def probe(address: str, timeout_s: float, deadline: float | None = None) -> None:
    """Fail by ``deadline`` when nothing listens at the address (ray.init to a dead address retries for minutes):
    the name lookup and every address it gives share the one budget."""
    host, port = split_address(address)
    deadline = time.monotonic() + timeout_s if deadline is None else deadline
    reason = "timed out"
    try:
        found = within(deadline, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        for family, kind, proto, _, where in found:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                with socket.socket(family, kind, proto) as sock:
                    sock.settimeout(left)
                    sock.connect(where)
                    return
            except OSError as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
    except OSError as exc:  # the lookup failed, or did not answer in time
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc)).lower()
    raise LaunchError(
        f"launcher.address={address}: nothing answers at {host}:{port} ({reason} within "
        f"launcher.connect_timeout_s={timeout_s:g}); start the cluster there (`ray start --head`) or fix the "
        "address."
    )


def connect(address: str | None, timeout_s: float, runtime_env: dict[str, Any], local_cpus: int) -> None:
    """ray.init to ``address`` within ``timeout_s`` in all (probe, connect, retries), or start a private local Ray
    when address is None."""
    import ray

    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if runtime_env:
        kwargs["runtime_env"] = runtime_env
    target = None
    try:
        if address is None:
            # "local": a fresh instance even when another Ray runs on this host; gone again at ray.shutdown().
            ray.init(address="local", num_cpus=local_cpus, include_dashboard=False, **kwargs)
            return
        if ray.is_initialized():
            return  # this process is connected already: a scaling sweep sizes every point before it runs any
        deadline = time.monotonic() + timeout_s
        logging.getLogger("ray._private.worker").addFilter(_not_main_thread_notice)
        target = find_auto_address() if address == "auto" else address
        probe(target, timeout_s, deadline)
        within(deadline, lambda: _init_retrying_client_start(ray, target, kwargs, deadline))
    except (ValueError, TypeError) as exc:  # Ray checks the runtime_env (and uploads working_dir) in ray.init
        if not runtime_env:
            raise
        ray.shutdown()
        raise ConfigError(
            f"Ray rejected the job's runtime_env {runtime_env} ({_first_line(exc)}); fix launcher.working_dir or "
            "launcher.runtime_env."
        ) from None
    except TimeoutError:
        shipping = " (shipping launcher.working_dir included)" if runtime_env.get("working_dir") else ""
        raise LaunchError(
            f"launcher.address={address}: Ray did not connect to {target} within launcher.connect_timeout_s="
            f"{timeout_s:g}{shipping}; check that the address is the head node's Ray port, or raise "
            "launcher.connect_timeout_s for a slow cluster."
        ) from None
    except (ConnectionError, RuntimeError) as exc:
        raise LaunchError(
            f"launcher.address={address}: Ray could not connect to {target} ({_first_line(exc)}); check that the "
            "address is the head node's and that this host runs the same Ray and Python versions."
        ) from None


def _not_main_thread_notice(record: logging.LogRecord) -> bool:
    """Hides Ray's notice that ray.init in a thread (see ``within``) leaves SIGTERM's handler alone."""
    return "is not the main thread" not in record.getMessage()


CLIENT_INIT_ATTEMPTS = 3
_CLIENT_START_FAILURE = "Initialization failure from server"


def _init_retrying_client_start(ray: Any, target: str, kwargs: dict[str, Any], deadline: float = math.inf) -> None:
    """ray.init, retried when a ray:// client server fails to start this client's own server process.

    Ray's client server forks a server per client on connect; on a loaded head that start can time out and the
    client gets ConnectionAbortedError("Initialization failure from server"). A second attempt usually succeeds;
    any other failure (wrong address, version mismatch) is raised at once, and none is retried past ``deadline``.
    """
    for attempt in range(1, CLIENT_INIT_ATTEMPTS + 1):
        try:
            ray.init(address=target, **kwargs)
            return
        except ConnectionAbortedError as exc:
            client_start = target.startswith("ray://") and _CLIENT_START_FAILURE in str(exc)
            pause = float(attempt)
            if not client_start or attempt == CLIENT_INIT_ATTEMPTS or time.monotonic() + pause >= deadline:
                raise
            ray.shutdown()
            log.warning(
                "Ray's client server at %s failed to start a server for this job (%s); connecting again (%d/%d)",
                target,
                _first_line(exc),
                attempt + 1,
                CLIENT_INIT_ATTEMPTS,
            )
            time.sleep(pause)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def live_nodes() -> list[Node]:
    import ray

    return [
        Node(n["NodeID"], n["NodeManagerAddress"], dict(n["Resources"]))
        for n in ray.nodes()
        if n.get("Alive") and n.get("Resources")
    ]


def this_host(local_cpus: int) -> list[Node]:
    """The one node a local Ray started here will have (known before starting it)."""
    resources = {"CPU": float(local_cpus)}
    if gpus := hardware.gpu_count():
        resources["GPU"] = float(gpus)
    return [Node("local", "127.0.0.1", resources)]


# --- sizing the job ------------------------------------------------------------------------------------------------


def gpus_per_rank(value: Any, nodes: list[Node], procs_per_node: int | None) -> float:
    """launcher.num_gpus_per_rank=auto: one GPU per rank when the cluster has GPUs (a host's share when the
    strategy runs a fixed number of processes per host), else none."""
    if value != "auto":
        return float(value)
    per_node = [n.resources.get("GPU", 0.0) for n in nodes if n.resources.get("GPU", 0.0) > 0]
    if not per_node:
        return 0.0
    if procs_per_node:
        return float(max(1, int(min(per_node)) // procs_per_node))
    return 1.0


def bundle(cpus: float, gpus: float, resources: dict[str, float]) -> dict[str, float]:
    """What each rank reserves: its placement group bundle and its actor's resources."""
    out = {"CPU": float(cpus)} if cpus > 0 else {}
    if gpus > 0:
        out["GPU"] = float(gpus)
    out.update({k: float(v) for k, v in resources.items() if v > 0})
    return out


def auto_nproc(nodes: list[Node], rank: dict[str, float], procs_per_node: int | None) -> int:
    """launcher.nproc=auto: ``procs_per_node`` per node that can hold them when the strategy says so; one rank per
    GPU (or other accelerator bundle) the cluster holds; on CPU-only clusters the local launcher's rule per node
    (one rank per 2 cores, 2..8, within what fits)."""
    if procs_per_node:
        return sum(procs_per_node for n in nodes if n.holds(rank) >= procs_per_node)
    if set(rank) - {"CPU"}:
        return sum(n.holds(rank) for n in nodes)
    return sum(min(n.holds(rank), hardware.default_cpu_procs(int(n.resources.get("CPU", 0)))) for n in nodes)


def describe_bundle(rank: dict[str, float]) -> str:
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in rank.items()) + "}"


def check_fits(nodes: list[Node], rank: dict[str, float], nproc: int, strategy: str, where: str) -> None:
    """Raise the one sentence that says why ``nproc`` ranks of ``rank`` can never be placed on ``nodes``."""
    shape = f"{len(nodes)} node(s) at {where}"
    for key, amount in rank.items():
        biggest = max((n.resources.get(key, 0.0) for n in nodes), default=0.0)
        if amount > biggest + 1e-9:
            setting = _CONFIG_KEYS.get(key, f"launcher.resources_per_rank.{key}")
            has = f"at most {biggest:g} per node" if biggest else "none"
            raise LaunchError(
                f"{setting}={amount:g} asks for more {key} per rank than any node of the Ray cluster has "
                f"({has}, {shape}); lower it or add nodes with more {key}."
            )
    if strategy == "STRICT_SPREAD":
        usable = sum(1 for n in nodes if n.holds(rank) >= 1)
        if nproc > usable:
            raise LaunchError(
                f"launcher.placement_strategy=STRICT_SPREAD puts each of the {nproc} ranks on its own node but only "
                f"{usable} of the {shape} can hold a rank of {describe_bundle(rank)}; use launcher.nproc={usable}, "
                "add nodes, or use SPREAD."
            )
    capacity = sum(n.holds(rank) for n in nodes)
    if nproc > capacity:
        raise LaunchError(
            f"launcher.nproc={nproc} ranks of {describe_bundle(rank)} do not fit on the Ray cluster, which holds at "
            f"most {capacity} of them ({shape}); use launcher.nproc={max(capacity, 1)} or add nodes."
        )


def free_resources() -> str:
    """The cluster's free resources right now, for messages."""
    import ray

    free = ray.available_resources()
    shown = {k: v for k, v in sorted(free.items()) if k in ("CPU", "GPU", "TPU") or not _is_internal(k)}
    return describe_bundle(shown)


def _is_internal(key: str) -> bool:
    return key.startswith("node:") or "memory" in key or key.startswith("accelerator_type:") or "_group_" in key


# --- ranks from where the actors landed -------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """Where one rank runs: its bundle (and actor), the node it landed on, and its place among the ranks."""

    bundle_index: int
    rank: int
    local_rank: int
    node_rank: int
    node_id: str
    ip: str
    host: str  # the node's host name: how every launcher names a host


def plan(placed: list[dict[str, Any]]) -> list[Slot]:
    """Ranks from where the actors landed: contiguous per node, nodes in the order of their first bundle (so the
    first bundle's node hosts rank 0), bundles in order within a node. ``placed[i]`` is bundle i's actor's
    ``describe()``."""
    nodes: list[str] = []
    for info in placed:
        if info["node_id"] not in nodes:
            nodes.append(info["node_id"])
    slots: list[Slot] = []
    for node_rank, node_id in enumerate(nodes):
        here = [i for i, info in enumerate(placed) if info["node_id"] == node_id]
        for local_rank, i in enumerate(here):
            slots.append(Slot(i, len(slots), local_rank, node_rank, node_id, placed[i]["ip"], placed[i]["host"]))
    return slots


def cluster_envs(slots: list[Slot], placed: list[dict[str, Any]]) -> list[ClusterEnv]:
    """Each rank's ClusterEnv, in rank order: the same fields every other launcher fills in. Rank 0's actor picked
    the rendezvous port; every actor picked its rank's own worker port."""
    node_ips = {s.node_rank: s.ip for s in slots}
    hosts = tuple(node_ips[i] for i in range(len(node_ips)))
    per_node = {n: sum(1 for s in slots if s.node_rank == n) for n in node_ips}
    workers = tuple(f"{_host(s.ip)}:{placed[s.bundle_index]['worker_port']}" for s in slots)
    return [
        ClusterEnv(
            rank=s.rank,
            local_rank=s.local_rank,
            world_size=len(slots),
            local_world_size=per_node[s.node_rank],
            node_rank=s.node_rank,
            num_nodes=len(hosts),
            master_addr=slots[0].ip,
            master_port=placed[slots[0].bundle_index]["free_port"],
            source="ray",
            hosts=hosts,
            worker_addresses=workers,
        )
        for s in slots
    ]


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def visible_gpus(slots: list[Slot], placed: list[dict[str, Any]]) -> dict[int, str]:
    """rank -> CUDA_VISIBLE_DEVICES: all GPUs Ray gave the node's ranks, in local-rank order (as Ray Train does), so
    local rank i uses device i and NCCL sees its peers on the same node."""
    out = {}
    for s in slots:
        mates = sorted((t for t in slots if t.node_id == s.node_id), key=lambda t: t.local_rank)
        ids = [g for t in mates for g in placed[t.bundle_index]["gpu_ids"]]
        if ids:
            out[s.rank] = ",".join(ids)
    return out
