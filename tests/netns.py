"""The test network (tests/netns.sh) from Python: hosts as network namespaces, for tests that need several machines.

    from netns import network_fixture
    network = network_fixture(hosts=2)          # a fixture named "network", set up once per session

    def test_something(network):
        proc = network.popen(1, ["python", "-c", "..."])   # runs in host 1 (st-h1, 10.213.0.2)

Skips (with the reason) when not root or when network namespaces are unavailable. The network is torn down by the
fixture's finalizer, however the tests end, and again at interpreter exit should the finalizer never run; `up` is
idempotent, so a network left behind by a killed session is simply reused and resized. See tests/NETWORK.md.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("netns.sh")
SUBNET = "10.213.0"
_verdict: list[str | None] = []  # cached: the reason the network cannot be built, or None


def unavailable() -> str | None:
    """Why the test network cannot be built here (not root, no iproute2/unshare, no network namespaces), or None."""
    if not _verdict:
        _verdict.append(_check())
    return _verdict[0]


def _check() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "the test network needs root (ip netns, veth, bridge): run the tests as root, e.g. in CI"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("unshare", "util-linux"), ("hostname", "hostname")):
        if shutil.which(tool) is None:
            return f"the test network needs '{tool}', which is not installed (Debian: apt-get install {package})"
    probe = f"st-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns' is unavailable here: {made.stderr.strip() or made.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


class TestNetwork:
    """Hosts st-h0..st-h{n-1} at 10.213.0.1..n on one bridge; host i's interface is st-e{i}."""

    __test__ = False  # not a test class, despite its name

    def __init__(self, script: Path = SCRIPT) -> None:
        self.script = script
        self.hosts = 0
        self._at_exit = False

    def _sh(self, *args: str, check: bool = True) -> str:
        proc = subprocess.run(["bash", str(self.script), *args], capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"netns.sh {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def up(self, n: int) -> TestNetwork:
        if not self._at_exit:
            atexit.register(self._down_at_exit)
            self._at_exit = True
        self.hosts = n  # before building, so that a half-built network is torn down too
        self._sh("up", str(n))
        return self

    def down(self) -> None:
        self._sh("down", check=False)
        self.hosts = 0

    def _down_at_exit(self) -> None:
        if self.hosts:
            self.down()

    def address(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def hostname(self, i: int) -> str:
        return f"st-h{i}"

    def interface(self, i: int) -> str:
        """Host i's network interface, as seen inside it."""
        return f"st-e{i}"

    def exec_argv(self, i: int, argv: Sequence[str]) -> list[str]:
        """``argv`` run in host i with its own hostname (what `netns.sh exec i ...` does, without the bash)."""
        self._check_index(i)
        name = self.hostname(i)
        return ["ip", "netns", "exec", name, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', name, *argv]

    def popen(self, i: int, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` in host i; the Popen's pid is the command's own (every layer execs)."""
        return subprocess.Popen(self.exec_argv(i, argv), **kwargs)

    def run(self, i: int, argv: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.exec_argv(i, argv), **kwargs)

    def shape(self, i: int, rate: str) -> None:
        """Cap host i's link at ``rate`` (e.g. "200mbit") both ways; "off" removes the cap."""
        self._sh("shape", str(i), rate)

    def cut(self, i: int) -> None:
        self._sh("cut", str(i))

    def heal(self, i: int) -> None:
        self._sh("heal", str(i))

    def pids(self, i: int) -> list[int]:
        """Every process running in host i's network namespace."""
        out = subprocess.run(["ip", "netns", "pids", self.hostname(i)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop_processes(self, i: int, grace_s: float = 5.0) -> None:
        """End what runs in host i (daemons such as a Ray node): SIGTERM, then SIGKILL after ``grace_s``."""
        for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            for pid in self.pids(i):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait_s
            while self.pids(i) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not self.pids(i):
                return

    def _check_index(self, i: int) -> None:
        if not 0 <= i < self.hosts:
            raise IndexError(f"host {i} is not up (the network has {self.hosts} host(s))")


def network_fixture(hosts: int = 2, scope: str = "session", name: str = "network"):
    """A pytest fixture (``name``, ``scope``) yielding a TestNetwork of ``hosts`` hosts, torn down afterwards."""

    @pytest.fixture(scope=scope, name=name)
    def _network(request: pytest.FixtureRequest):
        reason = unavailable()
        if reason is not None:
            pytest.skip(reason)
        net = TestNetwork()
        request.addfinalizer(net.down)  # first, so that a failing `up` is cleaned up too
        net.up(hosts)
        return net

    return _network


RAY_ENV = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}  # token auth off (Ray 2.60), no telemetry
# For tests that cut a cable: a node that stops answering is declared dead in about 6 s rather than Ray's default of up
# to a minute (the GCS on the head checks every 3 s, each check timing out after 10 s, 5 missed).
FAST_NODE_DEATH = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "2000",
    "RAY_health_check_failure_threshold": "3",
}


class RayOnNetwork:
    """A Ray cluster over hosts of a TestNetwork: the head in host 0 (GCS port ``port``, in its own port space),
    one node per further host started with ``start(i)``; each node with ``num_cpus`` CPUs and its own temp dir.

    Nodes are stopped by ending the processes in their host (``stop(i)``), never with `ray stop`, which ends every Ray
    process on the machine. ``env``: the environment of every Ray process (e.g. ``child_env(RAY_ENV)``)."""

    def __init__(self, network: TestNetwork, env: dict[str, str], port: int = 6379, node_env=None) -> None:
        self.network = network
        self.env = env
        self.port = port
        self.node_env = dict(node_env or {})  # for the Ray processes of the nodes only, e.g. FAST_NODE_DEATH
        self.temp: dict[int, str] = {}
        self.ray = str(Path(sys.executable).with_name("ray"))

    @property
    def head(self) -> str:
        return f"{self.network.address(0)}:{self.port}"

    def start(self, i: int, num_cpus: int = 1) -> None:
        import tempfile

        self.temp[i] = tempfile.mkdtemp(prefix=f"st-ray-h{i}-", dir="/tmp")  # short: Ray's socket paths
        if i == 0:
            role = ["--head", f"--port={self.port}", "--include-dashboard=false"]
        else:
            role = [f"--address={self.head}"]
        argv = [
            self.ray,
            "start",
            *role,
            f"--node-ip-address={self.network.address(i)}",
            f"--temp-dir={self.temp[i]}",
            f"--num-cpus={num_cpus}",
            "--object-store-memory=100000000",
            "--disable-usage-stats",
        ]
        env = {**self.env, **self.node_env}
        started = self.network.run(i, argv, capture_output=True, text=True, timeout=120, env=env)
        if started.returncode != 0:
            raise RuntimeError(f"ray start in host {i} failed:\n{started.stdout}{started.stderr}")

    def wait_for(self, alive: int, timeout_s: float = 60) -> None:
        """Until exactly ``alive`` nodes are alive (checked from host 0)."""
        code = f"""
import time, ray
ray.init(address="{self.head}", logging_level="ERROR", log_to_driver=False)
deadline = time.monotonic() + {timeout_s}
while sum(n["Alive"] for n in ray.nodes()) != {alive}:
    assert time.monotonic() < deadline, ray.nodes()
    time.sleep(0.2)
"""
        proc = self.network.run(
            0, [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout_s + 30, env=self.env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the Ray cluster did not reach {alive} live node(s):\n{proc.stdout}{proc.stderr}")

    def stop(self, i: int) -> None:
        self.network.stop_processes(i, grace_s=2)
        temp = self.temp.pop(i, None)
        if temp:
            shutil.rmtree(temp, ignore_errors=True)

    def stop_all(self) -> None:
        for i in sorted(self.temp, reverse=True):  # the head last
            self.stop(i)


SLURM_SCRIPT = Path(__file__).with_name("netns-slurm.sh")


class SlurmOnNetwork:
    """A SLURM cluster of its own over hosts of a TestNetwork (tests/netns-slurm.sh): slurmctld in host 0, nodes
    st-h1 and st-h2 (slurmd in hosts 1 and 2, NodeAddr their addresses), everything under ``state_dir``. Only the
    daemons the script started are ever stopped; any other SLURM cluster on this machine is left alone.

    Clients run in host 0 with ``env()``, which points SLURM_CONF at this cluster's file."""

    CONTROLLER = 0
    NODES = (1, 2)

    def __init__(self, network: TestNetwork, state_dir: Path, script: Path = SLURM_SCRIPT) -> None:
        self.network = network
        self.state_dir = Path(state_dir)
        self.script = script
        self.start_s: float | None = None  # how long `up` took

    @property
    def conf(self) -> Path:
        return self.state_dir / "slurm.conf"

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "SLURM_CONF": str(self.conf)}

    def _sh(self, action: str, timeout: float = 90) -> subprocess.CompletedProcess:
        env = {**os.environ, "ST_SLURM_DIR": str(self.state_dir)}
        return subprocess.run(
            ["bash", str(self.script), action], capture_output=True, text=True, timeout=timeout, env=env
        )

    def start(self) -> None:
        if self.network.hosts < 1 + max(self.NODES):
            raise RuntimeError(
                f"the SLURM cluster needs {1 + max(self.NODES)} hosts; the network has {self.network.hosts}"
            )
        began = time.monotonic()
        up = self._sh("up")
        self.start_s = time.monotonic() - began
        if up.returncode != 0:
            raise RuntimeError(f"netns-slurm.sh up failed ({up.returncode}):\n{up.stdout}{up.stderr}")

    def stop(self) -> None:
        self._sh("down")

    def logs(self, lines: int = 20) -> str:
        """The last lines of each daemon's log, for a failing test's message."""
        tails = []
        for log in sorted((self.state_dir / "log").glob("*.log")):
            tails.append(f"---- {log} ----\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:]))
        return "\n".join(tails)

    def run(self, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess:
        """A client command (sinfo, squeue, ...) in host 0 against this cluster."""
        return self.network.run(
            self.CONTROLLER, list(argv), capture_output=True, text=True, timeout=timeout, env=self.env(dict(os.environ))
        )
