"""TensorFlow TPUStrategy on Cloud TPUs: resolve the TPU, initialise its system, train with the TensorFlow loop.

``strategy.tpu=local`` on a Cloud TPU VM uses the VM's own chips; a TPU name (with zone and project, else this
VM's from the GCE metadata server) or a ``grpc://host:8470`` address reaches a TPU over the network. One process
drives every chip of the TPU (on a pod slice, start the job on worker 0 with the TPU's name).

Everything that can be looked for without TensorFlow is looked for by the driver (``preflight``), within
``timeout_s`` seconds, so a machine without the TPU fails with one sentence before any process starts.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from scaletrain.contract.errors import ConfigError, LaunchError
from scaletrain.rank import precision
from scaletrain.strategies.plugin import Placement, StrategyPlugin

T = TypeVar("T")
# TPU v2-v4 chips appear as /dev/accel*; v5e, v5p and v6e as VFIO groups /dev/vfio/N.
TPU_DEVICE_PATTERNS = ("/dev/accel*", "/dev/vfio/[0-9]*")
TPU_API = ("tpu.googleapis.com", 443)
_FIX_LOCAL = "run on a Cloud TPU VM, or name a TPU with strategy.tpu=NAME strategy.zone=ZONE strategy.project=PROJECT"


@dataclass
class Config:
    name: str = "tpu"
    tpu: str = "local"  # local: this TPU VM's chips; else a Cloud TPU name, or grpc://host:8470
    zone: str | None = None  # the named TPU's zone (null: this VM's zone, from the GCE metadata server)
    project: str | None = None  # the named TPU's project (null: this VM's project, from the metadata server)
    timeout_s: float = 10.0  # how long to look for the TPU (metadata server, Cloud TPU API, address)
    init_timeout_s: float = 600.0  # how long connecting to it and initialising its system may take

    def validate(self) -> None:
        if not self.tpu.strip():
            raise ConfigError("strategy.tpu is empty; use local on a TPU VM, or the TPU's name.")
        if self.tpu == "local" and (self.zone or self.project):
            raise ConfigError(
                "strategy.zone and strategy.project locate a named TPU and strategy.tpu=local uses this VM's own "
                "chips; drop them or set strategy.tpu to the TPU's name."
            )
        if self.timeout_s <= 0 or self.init_timeout_s <= 0:
            raise ConfigError(
                f"strategy.timeout_s={self.timeout_s} and strategy.init_timeout_s={self.init_timeout_s} must be "
                "positive."
            )


def resolver_kwargs(config: Config) -> dict[str, Any]:
    """The arguments TPUClusterResolver is built with (TensorFlow looks up a missing zone/project itself)."""
    kwargs: dict[str, Any] = {"tpu": config.tpu}
    if config.tpu != "local":
        kwargs.update(zone=config.zone or None, project=config.project or None)
    return kwargs


def tpu_device_files() -> list[str]:
    return sorted(path for pattern in TPU_DEVICE_PATTERNS for path in glob.glob(pattern))


def metadata_endpoint(environ=os.environ) -> str:
    """The GCE metadata server TensorFlow's Cloud TPU client asks for this VM's zone and project."""
    host = environ.get("GCE_METADATA_HOST") or environ.get("GCE_METADATA_IP") or "metadata.google.internal"
    return f"http://{host}/computeMetadata/v1/"


def bounded(fn: Callable[[], T], timeout_s: float, doing: str) -> T:
    """``fn()``, or a one-sentence LaunchError when it raises or has not returned within ``timeout_s``."""
    finished, value, error = _call_within(fn, timeout_s)
    if not finished:
        raise LaunchError(f"{doing} did not finish within {timeout_s:g} s; check that the TPU exists and is running.")
    if error is not None:
        raise LaunchError(f"{doing} failed ({_reason(error)}); check that the TPU exists and is ready.")
    return value


def _call_within(fn: Callable[[], T], timeout_s: float) -> tuple[bool, T | None, Exception | None]:
    """(finished, value, error) of ``fn()`` run in a daemon thread that is abandoned after ``timeout_s``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:  # TensorFlow and the network raise many types here; the caller names it
            box["error"] = exc

    thread = threading.Thread(target=target, name="scaletrain-tpu", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        return False, None, None
    return True, box.get("value"), box.get("error")


def _reason(exc: Exception) -> str:
    """The exception's type and first sentence (TensorFlow appends whole op dumps to its messages)."""
    detail = getattr(exc, "reason", None) or exc  # URLError keeps the cause in .reason
    first = (str(detail).strip().splitlines() or [""])[0].split(". ")[0].rstrip(".")[:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _probe_metadata(timeout_s: float) -> str | None:
    import urllib.request  # 20 ms of imports: only when the driver probes a TPU VM's metadata server

    request = urllib.request.Request(metadata_endpoint() + "project/project-id", headers={"Metadata-Flavor": "Google"})
    return _within(lambda: urllib.request.urlopen(request, timeout=timeout_s).close(), timeout_s)


def _probe_tcp(host: str, port: int, timeout_s: float) -> str | None:
    return _within(lambda: socket.create_connection((host, port), timeout=timeout_s).close(), timeout_s)


def _within(fn: Callable[[], None], timeout_s: float) -> str | None:
    """None when ``fn`` succeeds in time, else why not (name lookups have no timeout of their own)."""
    finished, _, error = _call_within(fn, timeout_s)
    if not finished:
        return "no answer"
    return _reason(error) if error is not None else None


class TPU(StrategyPlugin):
    framework = "tensorflow"
    Config = Config
    procs_per_node = 1  # one process drives every TPU chip it is attached to

    def preflight(self, config: Config, train: Any, placement: Placement, script: str | None = None) -> None:
        precision.check(train.precision, "tpu", "TPU")
        if importlib.util.find_spec("tensorflow") is None:
            raise ConfigError("+strategy=tpu needs TensorFlow, which is not installed; pip install 'scaletrain[tf]'.")
        timeout = config.timeout_s
        if config.tpu == "local":
            if not tpu_device_files():
                raise ConfigError(
                    "strategy.tpu=local looks for this host's TPU chips (/dev/accel*, /dev/vfio/N) and found none; "
                    f"{_FIX_LOCAL}."
                )
            return
        if config.tpu.startswith("grpc://"):
            host, _, port = config.tpu.removeprefix("grpc://").rpartition(":")
            problem = _probe_tcp(host, int(port) if port.isdigit() else 8470, timeout)
            if problem:
                raise ConfigError(
                    f"strategy.tpu={config.tpu} did not answer within {timeout:g} s ({problem}); check the address "
                    "and that the TPU is running."
                )
            return
        if not (config.zone and config.project):
            problem = _probe_metadata(timeout)
            if problem:
                raise ConfigError(
                    f"strategy.tpu={config.tpu} needs this VM's zone and project from the GCE metadata server "
                    f"({metadata_endpoint()}), which did not answer within {timeout:g} s ({problem}); set "
                    "strategy.zone and strategy.project, or run on a Google Cloud VM."
                )
        if not any(importlib.util.find_spec(m) for m in ("cloud_tpu_client", "googleapiclient")):
            raise ConfigError(
                f"strategy.tpu={config.tpu} is looked up through the Cloud TPU API, whose client is not installed; "
                "pip install cloud-tpu-client, or use strategy.tpu=local on the TPU VM itself."
            )
        problem = _probe_tcp(*TPU_API, timeout)
        if problem:
            raise ConfigError(
                f"strategy.tpu={config.tpu} is looked up through the Cloud TPU API ({TPU_API[0]}), which did not "
                f"answer within {timeout:g} s ({problem}); check this host's network access to Google Cloud."
            )

    def describe(self, config: Config, placement: Placement) -> str:
        c = config
        where = "this TPU VM's chips" if c.tpu == "local" else f"TPU {c.tpu}" + (f" in {c.zone}" if c.zone else "")
        return f"tpu: TensorFlow TPUStrategy on {where}"

    def sweep_point(self, config: Config, world_size: int) -> tuple[Config, int]:
        """TPUStrategy takes every chip its TPU has, so a sweep cannot choose 1 or N of them (yet): refused."""
        raise ConfigError(
            "scaling sweeps with +strategy=tpu are not supported: TPUStrategy always trains on every chip of its TPU; "
            "sweep over TPU sizes with one run per size (-m), or sweep +strategy=xla on XLA's CPU device."
        )


PLUGIN = TPU()
