"""Shared by the Ray benchmarks: one local Ray cluster for the whole run, and scaletrain's command line on it."""

from __future__ import annotations

import os
from contextlib import contextmanager

import _common as c

# The same work for every alternative: scaletrain's synthetic workload, 2 ranks, SGD momentum 0.9 lr 0.05.
WORKLOAD = {"num_samples": 4096, "input_dim": 256, "width": 256, "depth": 3}
GLOBAL_BATCH = 64
RANKS = 2


def add_niceness(parser) -> None:
    parser.add_argument(
        "--worker-niceness",
        type=int,
        help="RAY_worker_niceness for the cluster (Ray's default: 15, so Ray's workers yield to any other load)",
    )


@contextmanager
def local_cluster(cpus: int, omp_threads: int, worker_niceness: int | None = None):
    """A one-node Ray cluster (``ray.cluster_utils.Cluster``: the raylet ``ray start --head`` would run) whose
    workers inherit this process's OMP_NUM_THREADS and PYTHONPATH; its address."""
    from ray.cluster_utils import Cluster

    os.environ.update(c.bench_env(omp_threads))  # the raylet, and so every actor, inherits this environment
    if worker_niceness is not None:
        os.environ["RAY_worker_niceness"] = str(worker_niceness)
    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": cpus})
    try:
        cluster.wait_for_nodes()
        yield cluster.address
    finally:
        cluster.shutdown()


def scaletrain_cmd(out_dir: str, steps: int, *launcher: str) -> list[str]:
    return [
        c.PYTHON,
        "-m",
        "scaletrain",
        f"hydra.run.dir={out_dir}",
        "+strategy=ddp",
        "workload=synthetic",
        *(f"workload.{k}={v}" for k, v in WORKLOAD.items()),
        f"train.global_batch_size={GLOBAL_BATCH}",
        "train.optimizer=sgd",
        "train.lr=0.05",
        "train.momentum=0.9",
        "train.epochs=100",
        f"train.max_steps={steps}",
        "train.log_every_n_steps=10",
        "checkpoint.every_n_steps=0",
        *launcher,
    ]


def on_ray(address: str) -> tuple[str, ...]:
    return ("launcher=ray", f"launcher.address={address}", f"launcher.nproc={RANKS}")


def on_local() -> tuple[str, ...]:
    return (f"launcher.nproc_per_node={RANKS}",)


def niceness(args) -> str:
    return "15 (Ray's default)" if args.worker_niceness is None else str(args.worker_niceness)


# --- CPU accounting by /proc, for a figure that other load on a shared machine does not move -------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command line, CPU seconds used so far) of every process."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), cmdline, (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def cpu_by_role(driver_pid: int) -> dict[str, float]:
    """CPU seconds so far of a job's processes: the driver (the CLI), Ray's rank actors, and the ranks (children of
    the driver or of an actor)."""
    procs = _processes()
    actors = {pid for pid, (_, cmd, _) in procs.items() if cmd.startswith("ray::RankActor")}
    roles = {"driver": 0.0, "actors": 0.0, "ranks": 0.0}
    for pid, (ppid, cmd, cpu) in procs.items():
        if pid == driver_pid:
            roles["driver"] += cpu
        elif pid in actors:
            roles["actors"] += cpu
        elif (ppid == driver_pid or ppid in actors) and "scaletrain.rank.worker" in cmd:
            roles["ranks"] += cpu
    return roles
