"""A network check before training: time every pair of a job's hosts and an all-reduce over all of them, in seconds,
and say in one sentence whether a host's links are much slower than the others' (or than you expect).

    python -m scaletrain.netcheck --ray-address HEAD:6379              # the nodes of a Ray cluster
    python -m scaletrain.netcheck --serve                              # on each host, then from anywhere:
    python -m scaletrain.netcheck --hosts node1,node2,node3 --expect-gbit 10 --json netcheck.json
    python -m scaletrain +strategy=ddp launcher=ray launcher.address=HEAD:6379 preflight.network=true

One small agent runs on each host (a Ray actor pinned to its node, num_cpus=0, so a busy cluster still takes it; or
``--serve``). The agents open TCP connections to each other at the hosts' own addresses and time, for every pair
(scheduled in rounds in which each host is in at most one pair, so pairs do not share a link): a bulk transfer each
way (``--bytes``, at most ``--cap-s`` seconds; the receiver's clock, so socket buffers do not flatter it) and small
round trips. Then all agents run a ring all-reduce of float32 buffers (``--allreduce-sizes``: 2(N−1) steps, 2(N−1)/N
× the buffer's bytes on each host's link each way, what DDP's gloo ring sends) and the medians are fitted to the α-β
model of ``common/alpha_beta.py``.

The verdict. A pair's bandwidth is the slower of its two directions, and a transfer runs at the slower of the two
hosts' links, so a host's own link carries at least its best pair's bandwidth: that is the host's figure. A host is
named when its figure is below ``--ratio`` (default half) of the median of the other hosts' figures (three hosts or
more: with two, which end of the one link is slow cannot be told), below ``--expect-gbit`` less 10 %, when it could
not be reached, or when its round trips are more than twice the others' median and at least 1 ms longer. Exit code
0: no host named; 1: hosts named; 2: the check could not run (a usage error, an unreachable agent or cluster).

Only the standard library and NumPy are needed on the hosts; Ray only for ``--ray-address`` (imported then).

The package:

- ``agent``: the agent on each host: its TCP server, and the transfers, round trips and ring all-reduce it times;
- ``fleet``: reaching the agents: ``TcpFleet`` for ``--serve`` agents, ``RayFleet`` for a Ray cluster's nodes;
- ``measure``: the options, the pair schedule, the measurements over a fleet, and ``check`` / ``check_ray``;
- ``verdict``: each host's figures, which hosts are slow, and the one-sentence verdict;
- ``cli``: the command line (``parse_args``, ``main``), which ``__main__`` runs;
- this module: ``preflight``, the job's hook (``preflight.network=true``), and every public name of the above.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scaletrain.driver.netcheck.agent import CALL_SLACK_S, CONNECT_TIMEOUT_S, DEFAULT_PORT, Agent, serve
from scaletrain.driver.netcheck.cli import _sizes as _sizes
from scaletrain.driver.netcheck.cli import main, parse_args
from scaletrain.driver.netcheck.fleet import Fleet, RayFleet, TcpFleet
from scaletrain.driver.netcheck.measure import (
    DEFAULT_BYTES,
    DEFAULT_CAP_S,
    DEFAULT_PINGS,
    DEFAULT_REPEATS,
    DEFAULT_SIZES,
    Link,
    Options,
    check,
    check_ray,
    measure,
    rounds,
    run_allreduce,
)
from scaletrain.driver.netcheck.verdict import (
    DEFAULT_RATIO,
    EXPECT_TOLERANCE,
    RTT_FACTOR,
    RTT_MIN_EXTRA_S,
    HostFigures,
    host_figures,
    judge,
)

if TYPE_CHECKING:
    from scaletrain.contract.config import Job

__all__ = [
    "CALL_SLACK_S",
    "CONNECT_TIMEOUT_S",
    "DEFAULT_BYTES",
    "DEFAULT_CAP_S",
    "DEFAULT_PINGS",
    "DEFAULT_PORT",
    "DEFAULT_RATIO",
    "DEFAULT_REPEATS",
    "DEFAULT_SIZES",
    "EXPECT_TOLERANCE",
    "RTT_FACTOR",
    "RTT_MIN_EXTRA_S",
    "Agent",
    "Fleet",
    "HostFigures",
    "Link",
    "Options",
    "RayFleet",
    "TcpFleet",
    "check",
    "check_ray",
    "host_figures",
    "judge",
    "main",
    "measure",
    "parse_args",
    "preflight",
    "rounds",
    "run_allreduce",
    "serve",
]

log = logging.getLogger("scaletrain")


def preflight(job: Job) -> dict[str, Any] | None:
    """``preflight.network=true``: the check over the Ray cluster's nodes before the job (or sweep) starts; the
    verdict in the log and netcheck.json in the run directory. With ``preflight.network_stop=true`` a named host
    refuses the job (exit 2). The Ray connection is left open for the launcher, which uses it and closes it."""
    from scaletrain.contract.errors import LaunchError
    from scaletrain.driver.launchers import ray_cluster as cluster

    cfg = job.preflight
    launcher = job.launcher
    if launcher.name != "ray":
        log.warning(
            "preflight.network=true checks the nodes of a Ray cluster (launcher=ray); skipped for launcher=%s "
            "(run `python -m scaletrain.netcheck --hosts ...` against agents on the hosts instead)",
            launcher.name,
        )
        return None
    if launcher.address is None:
        log.info("preflight.network: the local Ray this job starts is one host: no link to check")
        return None
    cluster.connect(launcher.address, launcher.connect_timeout_s, launcher.job_runtime_env(), local_cpus=0)
    out = Path(job.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    log.info("preflight.network: timing the links between the Ray cluster's nodes")
    try:
        report = check_ray(Options(expect_gbit=cfg.network_gbit), out / "netcheck.json", launcher.start_timeout_s)
    except ConnectionError as exc:
        raise LaunchError(f"preflight.network could not run: {exc}.") from None
    if report["ok"]:
        log.info("%s (netcheck.json)", report["verdict"])
    else:
        log.warning("%s (netcheck.json)", report["verdict"])
        if cfg.network_stop:
            raise LaunchError(
                f"{report['verdict']}; preflight.network_stop=true, so the job does not start (move the job off "
                "those hosts, or set preflight.network_stop=false to run anyway)."
            )
    return report
