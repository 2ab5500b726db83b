"""The verdict: each host's figures from its links, which hosts are slow, and the one sentence that says so."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_RATIO = 0.5  # a host below this share of the others' median is named
EXPECT_TOLERANCE = 0.1  # --expect-gbit: a host within 10 % under it is not named (a Python stream's own overhead)
RTT_FACTOR, RTT_MIN_EXTRA_S = 2.0, 1e-3  # a host whose round trips are twice the others' and 1 ms longer is named


@dataclass
class Link:
    """One pair of hosts: the bandwidth each way and the median round trip; ``error`` when it could not be timed."""

    a: int
    b: int
    a_to_b_gbit: float | None = None
    b_to_a_gbit: float | None = None
    rtt_s: float | None = None
    error: str | None = None

    @property
    def gbit(self) -> float:
        """The slower direction (what an all-reduce, which uses both, gets); 0 when it could not be measured."""
        ways = [self.a_to_b_gbit, self.b_to_a_gbit]
        return 0.0 if self.error or any(w is None for w in ways) else min(ways)


@dataclass
class HostFigures:
    index: int
    gbit: float  # its best pair's bandwidth: its own link carries at least this
    rtt_s: float | None  # its best pair's round trip
    unreachable: bool
    reasons: list[str] = field(default_factory=list)


def host_figures(n: int, links: Sequence[Link]) -> list[HostFigures]:
    out = []
    for i in range(n):
        mine = [link for link in links if i in (link.a, link.b)]
        rtts = [link.rtt_s for link in mine if link.rtt_s is not None and not link.error]
        out.append(
            HostFigures(
                index=i,
                gbit=max((link.gbit for link in mine), default=0.0),
                rtt_s=min(rtts) if rtts else None,
                unreachable=bool(mine) and all(link.error for link in mine),
            )
        )
    return out


def judge(
    hosts: Sequence[dict[str, Any]],
    links: Sequence[Link],
    allreduce: dict[str, Any] | None = None,
    expect_gbit: float | None = None,
    ratio: float = DEFAULT_RATIO,
) -> dict[str, Any]:
    """Which hosts are slow, and the one-sentence verdict; the whole report (JSON-able)."""
    n = len(hosts)
    figures = host_figures(n, links)
    floor = expect_gbit * (1 - EXPECT_TOLERANCE) if expect_gbit else None
    for f in figures:
        others = [g for g in figures if g.index != f.index]
        if f.unreachable:
            f.reasons.append("could not be reached (" + _first_error(f.index, links) + ")")
            continue
        if n >= 3:
            reachable = [g.gbit for g in others if not g.unreachable]
            median = statistics.median(reachable) if reachable else 0.0
            if median > 0 and f.gbit < ratio * median:
                f.reasons.append(
                    f"its links carry {_gbit(f.gbit)}, {f.gbit / median:.0%} of the other hosts' median {_gbit(median)}"
                )
            rtts = [g.rtt_s for g in others if g.rtt_s is not None]
            if f.rtt_s is not None and rtts:
                typical = statistics.median(rtts)
                if f.rtt_s > RTT_FACTOR * typical and f.rtt_s - typical >= RTT_MIN_EXTRA_S:
                    f.reasons.append(f"its round trips take {_ms(f.rtt_s)} against the others' {_ms(typical)}")
        if floor is not None and f.gbit < floor and not any("links carry" in r for r in f.reasons):
            f.reasons.append(f"its links carry {_gbit(f.gbit)}, below the {expect_gbit:g} Gbit/s expected")
    slow = [f for f in figures if f.reasons]
    sentence = _sentence(hosts, links, figures, slow, allreduce, expect_gbit)
    return {
        "verdict": sentence,
        "ok": not slow,
        "slow": [{**_host_fields(hosts[f.index]), "gbit_per_s": f.gbit, "reasons": f.reasons} for f in slow],
        "hosts": [
            {**_host_fields(hosts[f.index]), "gbit_per_s": f.gbit, "rtt_s": f.rtt_s, "unreachable": f.unreachable}
            for f in figures
        ],
        "links": [
            {
                "a": _label(hosts[link.a]),
                "b": _label(hosts[link.b]),
                "a_to_b_gbit_per_s": link.a_to_b_gbit,
                "b_to_a_gbit_per_s": link.b_to_a_gbit,
                "rtt_s": link.rtt_s,
                "error": link.error,
            }
            for link in links
        ],
        "allreduce": allreduce,
        "expect_gbit": expect_gbit,
        "ratio": ratio,
    }


def _sentence(hosts, links, figures, slow, allreduce, expect_gbit) -> str:
    n = len(hosts)
    fit = ""
    if allreduce and "error" not in allreduce:
        fit = (
            f"; a ring all-reduce over the {n} hosts fits α = {_us(allreduce['alpha_s'])} and "
            f"{_gbit(allreduce['bandwidth_gbit_per_s'])}"
        )
    elif allreduce:
        fit = f"; the all-reduce failed ({allreduce['error']})"
    if n < 2:
        return f"network check: only one host ({_label(hosts[0]) if hosts else 'none'}), so no link to check"
    if slow:
        named = "; ".join(f"{_label(hosts[f.index])}: {' and '.join(f.reasons)}" for f in slow)
        if n == 2 and not any(f.unreachable for f in slow):
            named = (
                f"the link between {_label(hosts[0])} and {_label(hosts[1])} carries {_gbit(figures[0].gbit)}, below "
                f"the {expect_gbit:g} Gbit/s expected (with two hosts, which end is slow cannot be told)"
            )
        return f"network check: {len(slow)} of {n} hosts slow: {named}{fit}"
    speeds = [f.gbit for f in figures]
    rtts = [f.rtt_s for f in figures if f.rtt_s is not None]
    rtt = f", round trips {_span(rtts, 1e3, '.2g', 'ms')}" if rtts else ""
    how = "even" if n >= 3 else "one link"
    expect = f", at least the {expect_gbit:g} Gbit/s expected" if expect_gbit else ""
    return f"network check: no slow host among {n} ({how}: {_span(speeds, 1, '.3g', 'Gbit/s')}{expect}{rtt}){fit}"


def _span(values: Sequence[float], scale: float, fmt: str, unit: str) -> str:
    low, high = format(min(values) * scale, fmt), format(max(values) * scale, fmt)
    return f"{low} {unit}" if low == high else f"{low}–{high} {unit}"


def _first_error(i: int, links: Sequence[Link]) -> str:
    return next((link.error for link in links if i in (link.a, link.b) and link.error), "no answer")


def _host_fields(h: dict[str, Any]) -> dict[str, Any]:
    return {"address": h.get("address"), "hostname": h.get("hostname"), "node_id": h.get("node_id")}


def _label(h: dict[str, Any]) -> str:
    name, address = h.get("hostname"), h.get("address")
    return f"{address} ({name})" if name and name != address else str(address)


def _gbit(v: float) -> str:
    return f"{v:.3g} Gbit/s"


def _ms(s: float) -> str:
    return f"{s * 1e3:.2g} ms"


def _us(s: float) -> str:
    return f"{s * 1e6:.3g} µs"
