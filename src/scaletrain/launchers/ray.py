"""launcher=ray's settings (``launcher.*``): one actor per rank on a Ray cluster. The launcher itself is
driver/launchers/ray.py (``LAUNCHER``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaletrain.contract.errors import ConfigError

LAUNCHER = "scaletrain.driver.launchers.ray"  # its PLUGIN: the Launcher class, imported where the user submits
STRATEGIES = ("PACK", "SPREAD", "STRICT_SPREAD")
PLACEMENTS = ("auto", *STRATEGIES)
POLL_S = 1.0  # one poll of a rank's actor returns the output of this long: the relay's latency and call rate
_HOST_PORT = re.compile(r"(?:ray://)?(\[[0-9a-fA-F:]+\]|[^:/\s]+):([0-9]{1,5})")


def split_address(address: str) -> tuple[str, int]:
    """'ray://h:10001' or 'h:6379' -> (host, port); anything else is a ConfigError."""
    match = _HOST_PORT.fullmatch(address.strip())
    if match is None or not 0 < int(match[2]) < 65536:
        raise ConfigError(
            f"launcher.address={address!r} is not a Ray address; use auto, HOST:PORT (the head's GCS port, "
            "usually 6379) or ray://HOST:PORT (the Ray client port, usually 10001), or null to start a local Ray."
        )
    return match[1].strip("[]"), int(match[2])


@dataclass
class Config:
    name: str = "ray"
    address: str | None = None  # None: a local Ray for this job; auto | HOST:PORT | ray://HOST:PORT
    nproc: Any = "auto"  # ranks in all; see ray_cluster.auto_nproc
    num_cpus_per_rank: float = 1.0
    num_gpus_per_rank: Any = "auto"  # auto: 1 when the cluster has GPUs, else 0
    resources_per_rank: dict[str, float] = field(default_factory=dict)  # e.g. {TPU: 4}
    placement_strategy: str = "auto"  # auto: STRICT_SPREAD for one-process-per-host strategies at nproc=auto, else PACK
    placement_timeout_s: float = 60.0
    wait_for_nodes: bool = False  # true: let an autoscaler add nodes instead of rejecting what current nodes can't hold
    connect_timeout_s: float = 30.0
    start_timeout_s: float = 300.0  # for the rank actors, runtime_env setup included
    working_dir: str | None = None  # shipped to every node, the ranks' working directory and first on their path
    runtime_env: dict[str, Any] | None = None  # Ray's runtime_env for the job: py_modules, env_vars, pip, ...
    stop_grace_s: float = 5.0
    orphan_timeout_s: float = 60.0  # a rank whose actor hears nothing from this driver this long stops (0: never)

    def job_runtime_env(self) -> dict[str, Any]:
        env = dict(self.runtime_env or {})
        if self.working_dir is not None:
            env["working_dir"] = str(Path(self.working_dir).expanduser().resolve())
        return env

    def validate(self) -> None:
        if self.working_dir is not None and not Path(self.working_dir).expanduser().is_dir():
            raise ConfigError(
                f"launcher.working_dir={self.working_dir} is not a directory; give the directory of your code."
            )
        if self.address is not None and self.address != "auto":
            split_address(self.address)
        if self.nproc != "auto" and (isinstance(self.nproc, bool) or not isinstance(self.nproc, int) or self.nproc < 1):
            raise ConfigError(f"launcher.nproc={self.nproc!r} must be 'auto' or a whole number of at least 1.")
        gpus = self.num_gpus_per_rank
        if gpus != "auto" and (isinstance(gpus, bool) or not isinstance(gpus, int | float) or gpus < 0):
            raise ConfigError(f"launcher.num_gpus_per_rank={gpus!r} must be 'auto' or a number of at least 0.")
        if self.num_cpus_per_rank < 0 or any(v < 0 for v in self.resources_per_rank.values()):
            raise ConfigError(
                f"launcher.num_cpus_per_rank={self.num_cpus_per_rank:g} and launcher.resources_per_rank="
                f"{self.resources_per_rank} must not be negative."
            )
        if self.placement_strategy not in PLACEMENTS:
            raise ConfigError(
                f"launcher.placement_strategy={self.placement_strategy!r} is not known; use one of: "
                f"{', '.join(PLACEMENTS)}."
            )
        for key in ("placement_timeout_s", "connect_timeout_s", "start_timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"launcher.{key}={getattr(self, key)} must be positive.")
        if self.orphan_timeout_s != 0 and self.orphan_timeout_s < 2 * POLL_S:
            raise ConfigError(
                f"launcher.orphan_timeout_s={self.orphan_timeout_s:g} is shorter than two of the driver's polls; give "
                f"at least {2 * POLL_S:g} s (default 60), or 0 to let ranks run without their driver."
            )
        if self.stop_grace_s < 0:
            raise ConfigError(f"launcher.stop_grace_s={self.stop_grace_s} must be 0 or more.")
