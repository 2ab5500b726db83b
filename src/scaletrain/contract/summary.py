"""The run summary: what ``summary.json`` holds, written and read through this one type.

The core fields say which run this was and exist for every run, a user's own training function included. The
measured fields are ``None`` when the run could not measure them (a user loop that marks no steps has no
throughput; TensorFlow has no per-step communication split): such a figure is absent from the file and reported
as "not measured", never guessed. Figures a workload or a user function adds of its own live in ``extra`` and are
written beside the others, flat, so ``summary.json`` reads as one record.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaletrain.contract import atomic, jsonfile

FILE_NAME = "summary.json"
NOT_MEASURED = "not measured"


@dataclass
class RunSummary:
    # core: which run this was
    workload: str
    strategy: str
    framework: str
    processes: int  # the processes that trained (summary.json of releases before 2026-12-07: world_size)
    global_batch_size: int
    attempt: int = 0  # restarts before the attempt that finished
    # how far it trained
    replicas: int | None = None  # model replicas (devices) training in sync over every process
    steps: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    stopped_at_step: int | None = None
    train_time_s: float | None = None
    epoch_time_s: float | None = None
    first_step_unix_s: float | None = None
    final_loss: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    # throughput and the step's time split, steady state (metrics.ThroughputMeter)
    samples_per_s: float | None = None
    samples_per_s_per_device: float | None = None
    step_time_s: float | None = None
    data_time_s: float | None = None
    comm_time_s: float | None = None
    exposed_comm_s: float | None = None
    compute_time_s: float | None = None
    comm_fraction: float | None = None
    comm_measured: bool | None = None  # False: the framework cannot split communication out of the step
    compiles: int | None = None
    compile_time_s: float | None = None
    # model FLOPs utilisation (flops.py): counted FLOPs per sample, achieved per device, against the device's peak
    flops_per_sample: float | None = None
    flops_per_s_per_device: float | None = None
    peak_flops_per_s: float | None = None
    mfu: float | None = None
    # the model and the processes
    num_parameters: int | None = None
    gradient_bytes: int | None = None
    peak_rss_mib: list[float] | None = None  # one entry per process, in rank order
    peak_gpu_mib: list[float] | None = None
    replica_fingerprints: list[float] | None = None
    allreduce: dict[str, Any] | None = None  # the α-β fit of this run's collectives (scaling sweeps)
    stragglers: list[dict[str, Any]] | None = None  # ranks persistently slower than the others (stragglers.py)
    # written after the run
    wandb_run_id: str | None = None
    efficiency: float | None = None
    efficiency_mode: str | None = None
    baseline_dir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # the workload's or the user function's own figures

    @property
    def devices(self) -> int:
        """Devices the samples are split over, as a scaling sweep counts them: the replicas, else the processes."""
        return self.replicas or self.processes

    @property
    def has_throughput(self) -> bool:
        return self.step_time_s is not None and self.samples_per_s is not None

    def update(self, figures: dict[str, Any]) -> None:
        """Take ``figures``: known names into their fields, the rest into ``extra``."""
        for key, value in figures.items():
            if key in _FIELDS and key != "extra":
                setattr(self, key, value)
            else:
                self.extra[key] = value

    def to_dict(self) -> dict[str, Any]:
        """The flat record of summary.json: core fields, the measured ones that exist, then ``extra``."""
        record = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v is not None}
        return {**{k: v for k, v in self.extra.items() if k not in _FIELDS}, **record}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> RunSummary:
        record = _current(record)
        missing = [name for name in _CORE if name not in record]
        if missing:
            raise ValueError(f"a run summary needs {', '.join(missing)}")
        summary = cls(**{name: record[name] for name in _CORE})
        summary.update({k: v for k, v in record.items() if k not in _CORE})
        return summary

    def write(self, directory: Path) -> Path:
        """Write ``directory/summary.json`` atomically (a reader never sees half a file)."""
        return atomic.write(
            Path(directory) / FILE_NAME, jsonfile.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        )

    @classmethod
    def read(cls, directory: Path) -> RunSummary:
        return cls.from_dict(json.loads((Path(directory) / FILE_NAME).read_text()))


def _current(record: dict[str, Any]) -> dict[str, Any]:
    """A summary.json of an older release in today's words: its ``world_size`` (processes) is ``processes``, and its
    all-reduce fit's ``world_size`` (the devices of the ring) is ``devices``."""
    record = dict(record)
    if "processes" not in record and "world_size" in record:
        record["processes"] = record.pop("world_size")
    fit = record.get("allreduce")
    if isinstance(fit, dict) and "devices" not in fit and "world_size" in fit:
        record["allreduce"] = {"devices" if k == "world_size" else k: v for k, v in fit.items()}
    return record


_FIELDS = {f.name for f in dataclasses.fields(RunSummary)}
_CORE = [f.name for f in dataclasses.fields(RunSummary) if f.default is dataclasses.MISSING and f.name != "extra"]
