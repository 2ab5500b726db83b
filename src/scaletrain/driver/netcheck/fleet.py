"""Reaching the agents: a Fleet is the agents of one check, one per host, in host order; TcpFleet talks to agents
started with ``--serve``, RayFleet starts one agent actor on each node of a Ray cluster."""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from scaletrain.driver.netcheck.agent import DEFAULT_PORT, Agent, _read_line, _why


class Fleet:
    """The agents of one check, one per host, in host order; ``call`` runs methods on several at once."""

    hosts: list[dict[str, Any]]

    def call(self, calls: list[tuple[int, str, dict[str, Any]]], timeout_s: float) -> list[dict[str, Any]]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class TcpFleet(Fleet):
    """Agents started with ``--serve``, reached over their control connection."""

    def __init__(self, hosts: Sequence[str], default_port: int = DEFAULT_PORT, timeout_s: float = 10.0) -> None:
        self._socks: list[socket.socket] = []
        self._locks: list[threading.Lock] = []
        self.hosts = []
        for spec in hosts:
            host, port = _host_port(spec, default_port)
            try:
                s = socket.create_connection((host, port), timeout=timeout_s)
            except OSError as exc:
                self.close()
                raise ConnectionError(
                    f"no netcheck agent answers at {host}:{port} ({_why(exc)}); start one there with "
                    f"`python -m scaletrain.netcheck --serve --port {port}`"
                ) from None
            s.sendall(b"C")
            self._socks.append(s)
            self._locks.append(threading.Lock())
            self.hosts.append({"address": host, "port": port})
        infos = self.call([(i, "info", {}) for i in range(len(self.hosts))], timeout_s)
        for h, i in zip(self.hosts, infos, strict=True):
            h.update(hostname=i.get("hostname"), node_id=None)

    def call(self, calls, timeout_s):
        def one(c):
            i, method, args = c
            with self._locks[i]:
                s = self._socks[i]
                s.settimeout(timeout_s)
                try:
                    s.sendall((json.dumps({"method": method, "args": args}) + "\n").encode())
                    return json.loads(_read_line(s))
                except (OSError, ValueError) as exc:
                    return {"error": f"the agent at {self.hosts[i]['address']} did not answer ({_why(exc)})"}

        with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
            return list(pool.map(one, calls))

    def close(self):
        for s in self._socks:
            try:
                s.close()
            except OSError:
                pass


class RayFleet(Fleet):
    """One agent actor on each live node of the connected Ray cluster, pinned to it by node affinity and reserving
    nothing (num_cpus=0), so the check runs even while the cluster's CPUs and GPUs are taken."""

    def __init__(self, node_ids: Sequence[str] | None = None, timeout_s: float = 60.0) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if node_ids is None:  # every live node, in the order of their addresses
            alive = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources")]
            node_ids = [n["NodeID"] for n in sorted(alive, key=lambda n: _address_key(n["NodeManagerAddress"]))]
        remote = ray.remote(Agent)
        self.actors = [
            remote.options(
                num_cpus=0,
                max_concurrency=4,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            ).remote()
            for node_id in node_ids
        ]
        infos = self._get([a.info.remote() for a in self.actors], timeout_s)
        missing = [node_ids[i][:8] for i, info in enumerate(infos) if "error" in info]
        if missing:
            self.close()
            raise ConnectionError(
                f"the netcheck agent did not start on Ray node(s) {', '.join(missing)} within {timeout_s:g} s "
                f"({next(i['error'] for i in infos if 'error' in i)})"
            )
        self.hosts = infos

    def call(self, calls, timeout_s):
        refs = [getattr(self.actors[i], method).remote(**args) for i, method, args in calls]
        return self._get(refs, timeout_s)

    @staticmethod
    def _get(refs, timeout_s):
        import ray

        deadline = time.monotonic() + timeout_s
        out = []
        for ref in refs:
            try:
                out.append(ray.get(ref, timeout=max(0.1, deadline - time.monotonic())))
            except Exception as exc:  # noqa: BLE001  (a dead node or actor, a timeout: reported, not raised)
                lines = [line for line in str(exc).strip().splitlines() if line.strip()]
                out.append({"error": f"{type(exc).__name__}: {(lines or [''])[0][:200]}"})
        return out

    def close(self):
        import ray

        for actor in self.actors:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass


def _address_key(address: str) -> tuple:
    try:
        ip = ipaddress.ip_address(address)
        return (0, ip.version, int(ip))
    except ValueError:
        return (1, 0, address)


def _host_port(spec: str, default_port: int) -> tuple[str, int]:
    spec = spec.strip()
    if spec.startswith("["):  # [v6]:port
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, default_port
