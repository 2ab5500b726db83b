"""The α-β model against a known network: two hosts of the test network (tests/netns.sh), both links shaped to
RATE with tbf, a Ray cluster across them, and the ddp weak-scaling sweep [1, 2] placed STRICT_SPREAD (one rank per
host), so the all-reduce crosses the shaped links.

    sudo .venv/bin/python benchmarks/shaped_network.py [--repeats N] [--rate 200mbit] [--quick]

Per repeat: one sweep (with preflight.network=true, so scaletrain.driver.netcheck times the same links first). Reported,
medians over repeats: the fitted bandwidth (the sweep's α-β fit over gloo all-reduces, and netcheck's over its own
ring) against the shaped rate; the measured efficiency at N=2 beside the model's bounds:

* no overlap (what driver/scaling/analysis.py predicts): step(2) = step(1) + all-reduce(gradients);
* full overlap (computed here; analysis.py has no such bound): step(2) = max(step(1), all-reduce(gradients));
* the same two with the 2-rank run's own non-communication time (step(2) − exposed comm) in place of step(1): the
  model assumes a rank computes as fast at N=2 as alone, which two "hosts" sharing two cores do not.

Needs root (network namespaces); tears the test network down afterwards.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from _common import PYTHON, ROOT, bench_env, log, machine, median, parse_args, spread, table

sys.path.insert(0, str(ROOT / "tests"))
from netns import RAY_ENV, RayOnNetwork, TestNetwork, unavailable  # noqa: E402

WORKLOAD = (
    "+strategy=ddp",
    "workload=synthetic",
    "workload.width=256",  # 265,738 parameters: 1.01 MiB of gradients, 42 ms at 200 Mbit/s
    "workload.depth=4",
    "workload.num_samples=65536",
    "train.global_batch_size=2048",  # per device (weak scaling): compute about as long as the all-reduce
    "train.log_every_n_steps=8",
    "logger=none",
)


def rate_gbit(rate: str) -> float:
    units = {"kbit": 1e-6, "mbit": 1e-3, "gbit": 1.0}
    for unit, scale in units.items():
        if rate.endswith(unit):
            return float(rate[: -len(unit)]) * scale
    raise SystemExit(f"--rate {rate}: give it as tc does, e.g. 200mbit or 1gbit")


def sweep(net: TestNetwork, cluster: RayOnNetwork, out: Path, epochs: int) -> dict:
    argv = [
        PYTHON,
        "-m",
        "scaletrain",
        f"hydra.run.dir={out}",
        *WORKLOAD,
        f"train.epochs={epochs}",
        "launcher=ray",
        f"launcher.address={cluster.head}",
        "launcher.placement_strategy=STRICT_SPREAD",
        "scaling.device_counts=[1,2]",
        "preflight.network=true",
    ]
    proc = net.run(0, argv, capture_output=True, text=True, timeout=600, env=cluster.env, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"the sweep failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    result = json.loads((out / "scaling.json").read_text())
    result["netcheck"] = json.loads((out / "netcheck.json").read_text())
    return result


def figures(result: dict) -> dict[str, float]:
    base, two = result["rows"][0], result["rows"][1]
    step1, comm = base["step_time_s"], two["predicted_comm_s"]
    rest2 = two["step_time_s"] - (two["exposed_comm_s"] or 0.0)  # the 2-rank run's data + compute time
    nc = result["netcheck"]
    return {
        "fit_gbit": result["alpha_beta"]["bandwidth_gbit_per_s"],
        "fit_alpha_us": result["alpha_beta"]["alpha_s"] * 1e6,
        "netcheck_pair_gbit": min(h["gbit_per_s"] for h in nc["hosts"]),
        "netcheck_fit_gbit": nc["allreduce"]["bandwidth_gbit_per_s"],
        "step1_s": step1,
        "step2_s": two["step_time_s"],
        "exposed_comm_s": two["exposed_comm_s"],
        "predicted_comm_s": comm,
        "efficiency": two["efficiency"],
        "no_overlap": two["predicted_efficiency"],
        "full_overlap": step1 / max(step1, comm),
        "no_overlap_own_compute": step1 / (rest2 + comm),
        "full_overlap_own_compute": step1 / max(rest2, comm),
        "compute_slowdown": two["compute_slowdown"],
    }


def main() -> None:
    args = parse_args(
        __doc__.splitlines()[0],
        repeats=3,
        quick_repeats=1,
        extra=lambda p: p.add_argument("--rate", default="200mbit", help="both hosts' links (tc rate, 200mbit)"),
    )
    reason = unavailable()
    if reason:
        raise SystemExit(f"shaped_network.py: {reason}")
    expected = rate_gbit(args.rate)
    epochs = 1 if args.quick else 2
    net = TestNetwork().up(2)
    cluster = RayOnNetwork(net, {**bench_env(omp_threads=1), **RAY_ENV})  # Ray's own failure detection
    rounds = []
    try:
        for i in (0, 1):
            cluster.start(i)
        cluster.wait_for(2)
        for i in (0, 1):
            net.shape(i, args.rate)
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                started = time.perf_counter()
                rounds.append(figures(sweep(net, cluster, Path(tmp) / f"sweep{r}", epochs)))
                brief = ", ".join(f"{k}={v:.4g}" for k, v in rounds[-1].items())
                log(f"  repeat {r + 1}/{args.repeats}: {brief} ({time.perf_counter() - started:.0f} s)")
    finally:
        cluster.stop_all()
        net.down()
    keys = list(rounds[0])
    med = {k: median([f[k] for f in rounds]) for k in keys}
    print(f"\n{machine()}; both hosts' links shaped to {args.rate} (tbf); {args.repeats} repeat(s)\n")
    print(table(["figure", "median", "range"], [[k, med[k], spread([f[k] for f in rounds])] for k in keys]))
    fit_err = med["fit_gbit"] / expected - 1
    within = all(f["full_overlap"] >= f["efficiency"] >= f["no_overlap"] for f in rounds)
    within_own = all(f["full_overlap_own_compute"] >= f["efficiency"] >= f["no_overlap_own_compute"] for f in rounds)
    print(
        f"\nfitted bandwidth {med['fit_gbit']:.4g} Gbit/s against {expected:g} shaped: {100 * fit_err:+.1f} % "
        f"({'within' if abs(fit_err) <= 0.15 else 'OUTSIDE'} 15 %); netcheck {med['netcheck_fit_gbit']:.4g} Gbit/s "
        f"({100 * (med['netcheck_fit_gbit'] / expected - 1):+.1f} %)"
    )
    print(
        f"efficiency at N=2 {med['efficiency']:.3f} against the bounds [no overlap {med['no_overlap']:.3f}, full "
        f"overlap {med['full_overlap']:.3f}]: {'inside in every repeat' if within else 'NOT inside in every repeat'};"
        f" with the 2-rank run's own compute [{med['no_overlap_own_compute']:.3f}, "
        f"{med['full_overlap_own_compute']:.3f}]: {'inside in every repeat' if within_own else 'NOT in every repeat'}"
    )


if __name__ == "__main__":
    main()
