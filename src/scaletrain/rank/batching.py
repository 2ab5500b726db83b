"""The global batch split over devices and accumulation steps: global = micro-batch × devices × accumulation.

``train.global_batch_size`` is the samples of one optimizer step at every world size. ``train.micro_batch_size``
(per device, optional) bounds what one device computes at once: where a device's share of the global batch is larger,
it is computed in accumulation steps of the micro-batch, with one gradient all-reduce per optimizer step. The driver
checks each size a job will run on before anything starts (``preflight.batch``); each rank derives its steps again
where its device count is known. Both sides call ``accumulation_steps``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaletrain.contract.errors import ConfigError


@dataclass(frozen=True)
class BatchSplit:
    """One optimizer step's samples as one device computes them."""

    global_batch_size: int
    devices: int
    accumulation_steps: int

    @property
    def per_device(self) -> int:
        return self.global_batch_size // self.devices

    @property
    def micro_batch_size(self) -> int:
        return self.per_device // self.accumulation_steps


def split(global_batch_size: int, devices: int, micro_batch_size: int | None) -> BatchSplit:
    """The split of ``global_batch_size`` over ``devices``; a ConfigError naming sizes that work when it does not
    divide. A device whose share fits the micro-batch computes it in one step. Without a micro-batch the split is
    one step, and a global batch the devices cannot split is left to the strategy's own check (its sentence)."""
    if micro_batch_size is None:
        return BatchSplit(global_batch_size, devices, 1)
    if global_batch_size % devices:
        fit = devices * max(1, round(global_batch_size / devices))
        raise ConfigError(
            f"train.global_batch_size={global_batch_size} is not divisible by the {devices} device(s) it is split "
            f"over; use a multiple of {devices} such as {fit}."
        )
    per_device = global_batch_size // devices
    if per_device <= micro_batch_size:
        return BatchSplit(global_batch_size, devices, 1)
    if per_device % micro_batch_size:
        below = max(d for d in range(1, micro_batch_size + 1) if per_device % d == 0)
        near = _nearest_multiples(global_batch_size, devices * micro_batch_size)
        raise ConfigError(
            f"train.global_batch_size={global_batch_size} over {devices} device(s) is {per_device} samples per "
            f"device, not a whole number of micro-batches of train.micro_batch_size={micro_batch_size}; use "
            f"train.micro_batch_size={below} ({per_device // below} accumulation steps), or train.global_batch_size="
            f"{' or '.join(map(str, near))}."
        )
    return BatchSplit(global_batch_size, devices, per_device // micro_batch_size)


def accumulation_steps(global_batch_size: int, devices: int, micro_batch_size: int | None) -> int:
    return split(global_batch_size, devices, micro_batch_size).accumulation_steps


def _nearest_multiples(value: int, unit: int) -> list[int]:
    below, above = unit * (value // unit), unit * (value // unit + 1)
    return [size for size in (below, above) if size > 0]
