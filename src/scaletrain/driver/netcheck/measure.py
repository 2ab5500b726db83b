"""The measurements: the options, the pair schedule, every pair's bandwidth and round trips, the ring all-reduce
and its α-β fit, and ``check``, which runs them over a fleet and writes the report."""

from __future__ import annotations

import secrets
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scaletrain.contract import jsonfile
from scaletrain.driver.netcheck.agent import _TOKEN, CALL_SLACK_S
from scaletrain.driver.netcheck.fleet import Fleet, RayFleet
from scaletrain.driver.netcheck.verdict import DEFAULT_RATIO, Link, _label, judge

DEFAULT_BYTES = 4 * 2**20  # per bulk transfer and direction
DEFAULT_CAP_S = 1.0  # a transfer ends after this long however much is left: a slow link costs no more
DEFAULT_PINGS = 20
DEFAULT_SIZES = (16 * 2**10, 256 * 2**10, 2 * 2**20)  # all-reduce buffers, bytes
DEFAULT_REPEATS = 3  # timed all-reduces per size, after one warm-up


@dataclass
class Options:
    nbytes: int = DEFAULT_BYTES
    cap_s: float = DEFAULT_CAP_S
    pings: int = DEFAULT_PINGS
    sizes: tuple[int, ...] = DEFAULT_SIZES
    repeats: int = DEFAULT_REPEATS
    ratio: float = DEFAULT_RATIO
    expect_gbit: float | None = None


def rounds(n: int) -> list[list[tuple[int, int]]]:
    """Every pair of ``n`` hosts exactly once, in rounds where each host is in at most one pair (circle method)."""
    ids: list[int | None] = list(range(n)) + ([None] if n % 2 else [])
    m = len(ids)
    out = []
    for _ in range(m - 1):
        pairs = [(ids[k], ids[m - 1 - k]) for k in range(m // 2)]
        out.append([(min(a, b), max(a, b)) for a, b in pairs if a is not None and b is not None])
        ids = [ids[0], ids[-1], *ids[1:-1]]
    return [r for r in out if r]


def measure(fleet: Fleet, opts: Options) -> dict[str, Any]:
    """Every pair's bandwidth and round trips, then the all-reduce and its α-β fit; the report with its verdict."""
    started = time.monotonic()
    hosts = fleet.hosts
    n = len(hosts)
    links: dict[tuple[int, int], Link] = {}
    transfer_s = opts.cap_s + CALL_SLACK_S
    for pairs in rounds(n):
        for pair in pairs:
            links[pair] = Link(*pair)
        for src, dst in ((0, 1), (1, 0)):  # each way, all pairs of the round at once
            calls = [
                (
                    p[src],
                    "bandwidth",
                    {
                        "peer": hosts[p[dst]]["address"],
                        "port": hosts[p[dst]]["port"],
                        "nbytes": opts.nbytes,
                        "cap_s": opts.cap_s,
                    },
                )
                for p in pairs
            ]
            for p, got in zip(pairs, fleet.call(calls, transfer_s), strict=True):
                if "error" in got:
                    links[p].error = (
                        links[p].error or f"{_label(hosts[p[src]])} -> {_label(hosts[p[dst]])}: {got['error']}"
                    )
                else:
                    setattr(links[p], "a_to_b_gbit" if src == 0 else "b_to_a_gbit", got["gbit_per_s"])
        calls = [
            (p[0], "latency", {"peer": hosts[p[1]]["address"], "port": hosts[p[1]]["port"], "count": opts.pings})
            for p in pairs
        ]
        for p, got in zip(pairs, fleet.call(calls, CALL_SLACK_S + opts.pings), strict=True):
            if "error" in got:
                links[p].error = links[p].error or f"{_label(hosts[p[0]])} -> {_label(hosts[p[1]])}: {got['error']}"
            else:
                links[p].rtt_s = got["median_s"]
    allreduce = run_allreduce(fleet, opts) if n >= 2 else None
    report = judge(hosts, list(links.values()), allreduce, opts.expect_gbit, opts.ratio)
    report["seconds"] = round(time.monotonic() - started, 3)
    report["options"] = asdict(opts)
    return report


def run_allreduce(fleet: Fleet, opts: Options) -> dict[str, Any]:
    """A ring all-reduce over every host at each size; the slowest host's median per size and the α-β fit."""
    from scaletrain.common.alpha_beta import fit_alpha_beta, ring_allreduce_factor

    hosts = fleet.hosts
    n = len(hosts)
    token = secrets.token_hex(_TOKEN)
    # Generous: each agent gives up on a ring step its neighbour stalls for CALL_SLACK_S, and answers with why.
    calls = [
        (
            i,
            "ring",
            {
                "token": token,
                "index": i,
                "size": n,
                "peer": hosts[(i + 1) % n]["address"],
                "port": hosts[(i + 1) % n]["port"],
                "sizes": list(opts.sizes),
                "repeats": opts.repeats,
            },
        )
        for i in range(n)
    ]
    answers = fleet.call(calls, CALL_SLACK_S * (2 * n) * len(opts.sizes) * (opts.repeats + 1))
    failed = [(i, a["error"]) for i, a in enumerate(answers) if "error" in a]
    if failed:
        i, why = failed[0]
        return {"error": f"{_label(hosts[i])}: {why}", "devices": n, "sizes_bytes": list(opts.sizes)}
    medians = [max(statistics.median(a["times_s"][k]) for a in answers) for k in range(len(opts.sizes))]
    fit = fit_alpha_beta(opts.sizes, medians, n)
    largest = opts.sizes[-1]
    return {
        "devices": n,
        "sizes_bytes": list(opts.sizes),
        "median_time_s": medians,
        "alpha_s": fit.alpha_s,
        "beta_s_per_byte": fit.beta_s_per_byte,
        "bandwidth_gbit_per_s": fit.bandwidth_gbit_per_s,
        # what the largest buffer alone moved: its bytes on each link over its time (no α subtracted)
        "largest_gbit_per_s": ring_allreduce_factor(n) * largest * 8 / medians[-1] / 1e9,
        "sum_ok": all(a.get("sum_ok") for a in answers),
    }


def check(fleet: Fleet, opts: Options, json_path: Path | None = None) -> dict[str, Any]:
    try:
        report = measure(fleet, opts)
    finally:
        fleet.close()
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(jsonfile.dumps(report, indent=2) + "\n")
    return report


def check_ray(opts: Options, json_path: Path | None = None, start_timeout_s: float = 60.0) -> dict[str, Any]:
    """The check over every live node of the Ray cluster this process is connected to."""
    return check(RayFleet(timeout_s=start_timeout_s), opts, json_path)
