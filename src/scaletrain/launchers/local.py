"""launcher=local's settings (``launcher.*``): ranks as processes on this host, or on each of several hosts started
alike. The launcher itself is driver/launchers/local.py (``LAUNCHER``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scaletrain.contract.errors import ConfigError

LAUNCHER = "scaletrain.driver.launchers.local"  # its PLUGIN: the Launcher class, imported where the user submits


@dataclass
class Config:
    name: str = "local"
    nproc_per_node: Any = "auto"  # "auto" or a count
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 0  # 0: a free port on this host
    threads_per_rank: Any = "auto"  # "auto": the cores split evenly between the ranks (OMP_NUM_THREADS)
    stop_grace_s: float = 5.0

    def validate(self) -> None:
        n = self.nproc_per_node
        if n != "auto" and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"launcher.nproc_per_node={n!r} must be 'auto' or a whole number of at least 1.")
        if self.nnodes < 1 or not 0 <= self.node_rank < self.nnodes:
            raise ConfigError(
                f"launcher.node_rank={self.node_rank} must lie in 0..nnodes-1 (launcher.nnodes={self.nnodes})."
            )
        if not self.master_addr.strip():
            raise ConfigError(
                "launcher.master_addr is empty; give the address the ranks meet at, "
                "e.g. launcher.master_addr=127.0.0.1."
            )
        if not 0 <= self.master_port < 65536:
            raise ConfigError(f"launcher.master_port={self.master_port} is not a TCP port (0..65535).")
        if self.nnodes > 1 and self.master_port == 0:
            raise ConfigError(
                f"launcher.nnodes={self.nnodes} needs a fixed launcher.master_port that every node agrees on, "
                "e.g. launcher.master_port=29500."
            )
        t = self.threads_per_rank
        if t != "auto" and (isinstance(t, bool) or not isinstance(t, int) or t < 1):
            raise ConfigError(f"launcher.threads_per_rank={t!r} must be 'auto' or a whole number of at least 1.")
        if self.stop_grace_s < 0:
            raise ConfigError(f"launcher.stop_grace_s={self.stop_grace_s} must be 0 or more.")
