"""The ``scaling.*`` settings: the sweep's sizes and mode, the all-reduce timing, the forecast and its network."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scaletrain.contract.errors import ConfigError


@dataclass
class NetworkConfig:
    """A network the user states for the forecast (docs/scaling.md "Forecast"), instead of the fitted one.

    ``bandwidth_gbit_per_s`` and ``latency_us`` describe the links between nodes (one node's NICs together);
    with ``devices_per_node`` above 1 the forecast uses a hierarchical all-reduce whose intra-node phases run at
    ``intra_node_bandwidth_gbit_per_s`` (e.g. NVLink) and ``intra_node_latency_us``."""

    bandwidth_gbit_per_s: float = 0.0  # between nodes, per node, e.g. 25 (RoCE) or 400 (4 x 100 Gbit/s InfiniBand)
    latency_us: float = 5.0  # per message step between nodes
    devices_per_node: int = 1  # 1: every device is its own node (a flat ring)
    intra_node_bandwidth_gbit_per_s: float | None = None  # null: the same as bandwidth_gbit_per_s
    intra_node_latency_us: float | None = None  # null: the same as latency_us

    def validate(self) -> None:
        for key in ("bandwidth_gbit_per_s", "latency_us", "intra_node_bandwidth_gbit_per_s", "intra_node_latency_us"):
            value = getattr(self, key)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"scaling.network.{key}={value} is not a finite number; give a finite value.")
        if not self.bandwidth_gbit_per_s > 0:
            raise ConfigError(
                f"scaling.network.bandwidth_gbit_per_s={self.bandwidth_gbit_per_s} must be positive: give the "
                "bandwidth between nodes in Gbit/s, e.g. scaling.network.bandwidth_gbit_per_s=25."
            )
        if self.latency_us < 0 or (self.intra_node_latency_us or 0) < 0:
            raise ConfigError(
                f"scaling.network.latency_us={self.latency_us} and intra_node_latency_us="
                f"{self.intra_node_latency_us} must be 0 or more (microseconds per message step, e.g. 5)."
            )
        if self.devices_per_node < 1:
            raise ConfigError(
                f"scaling.network.devices_per_node={self.devices_per_node} must be at least 1 (e.g. 8 for an "
                "8-GPU server)."
            )
        if self.intra_node_bandwidth_gbit_per_s is not None and not self.intra_node_bandwidth_gbit_per_s > 0:
            raise ConfigError(
                f"scaling.network.intra_node_bandwidth_gbit_per_s={self.intra_node_bandwidth_gbit_per_s} must be "
                "positive (Gbit/s, e.g. 1200 for NVLink), or null for the inter-node bandwidth."
            )


FORECAST_MIN_EFFICIENCY = 0.8  # the forecast names the largest size whose efficiency stays at or above this


@dataclass
class ScalingConfig:
    device_counts: list[int] = field(default_factory=list)  # non-empty: run a scaling sweep over these sizes
    mode: str = "weak"  # weak: fixed per-device batch; strong: fixed global batch
    per_device_batch_size: int | None = None  # weak mode; default: train.global_batch_size (the 1-rank batch)
    measure_allreduce: bool = False  # time all-reduces after training to fit the α-β model (sweeps turn it on)
    allreduce_sizes_bytes: list[int] = field(
        default_factory=lambda: [4096, 16384, 65536, 262144, 1048576, 4194304, 16777216]
    )
    allreduce_repeats: int = 30  # per size; the fit takes the fastest fifth of them and bootstraps a range
    forecast_device_counts: list[int] = field(default_factory=list)  # predict efficiency at these unrun sizes
    forecast_min_efficiency: float = FORECAST_MIN_EFFICIENCY
    price_per_device_hour: float | None = None  # e.g. 2.5 (any currency): the forecast adds the cost per epoch
    network: NetworkConfig | None = None  # null: forecast with the α-β fit measured by the sweep

    def validate(self) -> None:
        if self.mode not in ("weak", "strong"):
            raise ConfigError(f"scaling.mode='{self.mode}' is not known; use weak or strong.")
        if any(n < 1 for n in self.device_counts) or len(set(self.device_counts)) != len(self.device_counts):
            raise ConfigError(
                f"scaling.device_counts={self.device_counts} must be distinct whole numbers of at least 1, e.g. "
                "[1,2,4]."
            )
        if self.per_device_batch_size is not None and self.per_device_batch_size < 1:
            raise ConfigError(f"scaling.per_device_batch_size={self.per_device_batch_size} must be at least 1.")
        if len(self.allreduce_sizes_bytes) < 2 or min(self.allreduce_sizes_bytes) < 4 or self.allreduce_repeats < 1:
            raise ConfigError(
                f"scaling.allreduce_sizes_bytes={self.allreduce_sizes_bytes} needs two or more sizes of at least 4 "
                f"bytes and scaling.allreduce_repeats={self.allreduce_repeats} at least 1."
            )
        if any(n < 1 for n in self.forecast_device_counts) or len(set(self.forecast_device_counts)) != len(
            self.forecast_device_counts
        ):
            raise ConfigError(
                f"scaling.forecast_device_counts={self.forecast_device_counts} must be distinct whole numbers of at "
                "least 1, e.g. [8,64,512]."
            )
        if not 0 < self.forecast_min_efficiency <= 1:
            raise ConfigError(
                f"scaling.forecast_min_efficiency={self.forecast_min_efficiency} must lie in (0, 1], e.g. "
                f"{FORECAST_MIN_EFFICIENCY}."
            )
        if self.price_per_device_hour is not None and not self.price_per_device_hour > 0:
            raise ConfigError(
                f"scaling.price_per_device_hour={self.price_per_device_hour} must be positive (e.g. 2.5 per GPU "
                "hour), or null for no cost column."
            )
        if self.network is not None:
            self.network.validate()
