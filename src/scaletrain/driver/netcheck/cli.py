"""``python -m scaletrain.netcheck``: the command line (``--ray-address``, ``--hosts``, ``--serve``)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from scaletrain.driver.netcheck import agent
from scaletrain.driver.netcheck.agent import _CHUNK, DEFAULT_PORT, serve
from scaletrain.driver.netcheck.fleet import Fleet, RayFleet, TcpFleet
from scaletrain.driver.netcheck.measure import (
    DEFAULT_BYTES,
    DEFAULT_CAP_S,
    DEFAULT_PINGS,
    DEFAULT_REPEATS,
    DEFAULT_SIZES,
    Options,
    check,
)
from scaletrain.driver.netcheck.verdict import DEFAULT_RATIO


def _sizes(text: str) -> tuple[int, ...]:
    units = {"k": 2**10, "m": 2**20, "g": 2**30}
    out = []
    for part in text.split(","):
        part = part.strip().lower().removesuffix("b").removesuffix("i")
        mult = units.get(part[-1:], 1)
        out.append(int(float(part[:-1] if mult > 1 else part) * mult))
    return tuple(out)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m scaletrain.netcheck",
        description="Time the links between a job's hosts (every pair, and an all-reduce over all) in a few "
        "seconds, before an expensive allocation, and name any host much slower than the others.",
    )
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--ray-address", help="check every node of this Ray cluster: HOST:6379, ray://HOST:10001, auto")
    where.add_argument("--hosts", help="comma-separated HOST[:PORT] of agents started with --serve")
    where.add_argument("--serve", action="store_true", help="run this host's agent (for --hosts) until interrupted")
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"--serve's port, and --hosts' default ({DEFAULT_PORT})"
    )
    p.add_argument("--bind", default="0.0.0.0", help="--serve: the address to listen on (default all)")
    p.add_argument("--serve-for", type=float, default=None, metavar="S", help="--serve: stop after S seconds")
    p.add_argument("--expect-gbit", type=float, default=None, help="also name hosts slower than this (Gbit/s)")
    p.add_argument(
        "--ratio", type=float, default=DEFAULT_RATIO, help="name hosts below this share of the others' median (0.5)"
    )
    p.add_argument(
        "--bytes", type=_sizes, default=(DEFAULT_BYTES,), metavar="SIZE", help="per transfer and direction (4M)"
    )
    p.add_argument("--cap-s", type=float, default=DEFAULT_CAP_S, help="the most seconds one transfer takes (1)")
    p.add_argument("--pings", type=int, default=DEFAULT_PINGS, help="timed round trips per pair (20)")
    p.add_argument("--allreduce-sizes", type=_sizes, default=DEFAULT_SIZES, metavar="LIST", help="e.g. 16K,256K,2M")
    p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed all-reduces per size (3)")
    p.add_argument("--json", type=Path, default=None, metavar="PATH", help="write the whole report here")
    p.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to reach the cluster or agents")
    args = p.parse_args(argv)
    if args.expect_gbit is not None and args.expect_gbit <= 0:
        p.error("--expect-gbit must be positive")
    if not 0 < args.ratio < 1:
        p.error("--ratio must lie between 0 and 1")
    if len(args.allreduce_sizes) < 2 or min(args.allreduce_sizes) < 4 or args.repeats < 1:
        p.error("--allreduce-sizes needs two or more sizes of at least 4 bytes, and --repeats at least 1")
    if args.bytes[0] < _CHUNK or args.cap_s <= 0 or args.pings < 1:
        p.error(f"--bytes must be at least {_CHUNK // 1024}K, --cap-s positive and --pings at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        serve(args.bind, args.port, args.serve_for)
        return 0
    opts = Options(
        nbytes=args.bytes[0],
        cap_s=args.cap_s,
        pings=args.pings,
        sizes=tuple(args.allreduce_sizes),
        repeats=args.repeats,
        ratio=args.ratio,
        expect_gbit=args.expect_gbit,
    )
    try:
        if args.hosts:
            fleet: Fleet = TcpFleet([h for h in args.hosts.split(",") if h.strip()], args.port, args.connect_timeout)
        else:
            from scaletrain.contract.errors import ScaletrainError
            from scaletrain.driver.launchers import ray_cluster as cluster

            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            try:
                cluster.connect(args.ray_address, args.connect_timeout, {}, local_cpus=0)
            except ScaletrainError as exc:
                raise ConnectionError(
                    str(exc)
                    .replace("launcher.address", "--ray-address")
                    .replace("launcher.connect_timeout_s", "--connect-timeout")
                ) from None
            _ship_agent_by_value()
            fleet = RayFleet(timeout_s=max(60.0, args.connect_timeout))
        report = check(fleet, opts, args.json)
    except ConnectionError as exc:
        print(f"netcheck: error: {exc}", file=sys.stderr)
        return 2
    print(report["verdict"], flush=True)
    return 0 if report["ok"] else 1


def _ship_agent_by_value() -> None:
    """Have Ray pickle the agent's code by value, as it did when the agent was defined in the module run as
    ``__main__``: the Ray nodes then need only Ray and NumPy to run it, not scaletrain."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(agent)
