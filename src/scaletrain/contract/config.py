"""Typed job configuration: Hydra's output validated into dataclasses, with every user-facing message here.

The strategy, launcher and workload groups are plugins: the YAML file ``conf/<group>/<name>.yaml`` names the
module ``scaletrain.<strategies|launchers|workloads>.<name>``, whose ``Config`` dataclass is the schema for that
group's settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, MissingMandatoryValue, OmegaConfBaseException

from scaletrain.contract import atomic, registry
from scaletrain.contract.errors import ConfigError
from scaletrain.contract.scaling import ScalingConfig

GROUPS = tuple(registry.GROUPS)
SELECTABLE = (*GROUPS, "logger")  # config groups a user picks by name on the command line
DEFAULT_STRATEGY = "ddp"
WANDB_PROJECT_FORBIDDEN = "/\\#?%:"
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding limit


JOB_FILE = "job.json"  # in the run directory: the whole job as the driver composed and checked it; all a rank reads
NONFINITE_POLICIES = ("stop", "warn")
# Settings renamed, old name -> new: a job.json of an older release is read in the new words; a command line that
# uses the old name is told the new one.
RENAMED = {
    "scaling.world_sizes": "scaling.device_counts",  # a sweep's sizes are devices, not processes (2026-12-07)
    "scaling.forecast_world_sizes": "scaling.forecast_device_counts",
}


def renamed(key: str) -> str | None:
    """The sentence for a setting given by its old name; None if ``key`` was never renamed."""
    new = RENAMED.get(key)
    return f"{key} is now called {new} (it counts devices, not processes); write {new}=... instead." if new else None


LR_SCHEDULES = ("constant", "cosine", "linear", "step")  # train.lr_schedule (rank/loops/schedule.py)
PRECISIONS = ("fp32", "bf16", "fp16")  # train.precision (precision.py)


@dataclass
class TrainConfig:
    epochs: int = 1
    max_steps: int | None = None  # stop after this many optimizer steps, even mid-epoch
    global_batch_size: int = 32  # samples per optimizer step over all ranks, at any world size
    micro_batch_size: int | None = None  # per device: at most this many at once, in accumulation steps (batching.py)
    optimizer: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    log_every_n_steps: int = 10
    on_nonfinite: str = "stop"  # a NaN or infinite loss: stop (exit 4, no checkpoint of it) | warn (train on)
    # The learning rate at each optimizer step (rank/loops/schedule.py): a linear warm-up, then the schedule
    lr_schedule: str = "constant"  # constant | cosine | linear | step
    warmup_steps: int = 0
    schedule_steps: int | None = None  # cosine and linear decay over this many steps; None: the epochs' steps
    min_lr_ratio: float = 0.0  # cosine and linear end at this fraction of train.lr
    lr_step_every_n_steps: int | None = None  # step: multiply the rate by lr_step_gamma every this many steps
    lr_step_gamma: float = 0.1
    clip_grad_norm: float | None = None  # clip the global gradient norm (over every rank) to this; None: no clipping
    precision: str = "fp32"  # fp32 | bf16 | fp16: mixed (weights and optimizer in fp32, compute in the low precision)
    flops_per_sample: float | None = None  # training FLOPs (forward + backward) per sample; None: counted (flops.py)
    peak_flops_per_s: float | None = None  # one device's peak; None: the known accelerator's, or measured on a CPU

    def validate(self) -> None:
        self._validate_schedule()
        if self.on_nonfinite not in NONFINITE_POLICIES:
            raise ConfigError(
                f"train.on_nonfinite={self.on_nonfinite!r} is not known; use stop (end at the first non-finite loss) "
                "or warn (log it and train on)."
            )
        if self.epochs < 1:
            raise ConfigError(f"train.epochs={self.epochs} must be at least 1.")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"train.max_steps={self.max_steps} must be at least 1 (or null for no limit).")
        if self.global_batch_size < 1:
            raise ConfigError(f"train.global_batch_size={self.global_batch_size} must be at least 1.")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise ConfigError(
                f"train.micro_batch_size={self.micro_batch_size} must be at least 1 (the samples one device computes "
                "at once), or null for the whole per-device batch."
            )
        if self.optimizer not in ("sgd", "adam", "adamw"):
            raise ConfigError(f"train.optimizer='{self.optimizer}' is not known; use sgd, adam or adamw.")
        if self.lr <= 0:
            raise ConfigError(f"train.lr={self.lr} must be positive, e.g. train.lr=0.01.")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"train.momentum={self.momentum} must lie in [0, 1), e.g. train.momentum=0.9.")
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay={self.weight_decay} must be 0 or more, e.g. 0 or 1e-4.")
        if self.log_every_n_steps < 1:
            raise ConfigError(f"train.log_every_n_steps={self.log_every_n_steps} must be at least 1.")
        for key in ("flops_per_sample", "peak_flops_per_s"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"train.{key}={value} must be positive, or null to count (measure) it.")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ConfigError(
                f"train.clip_grad_norm={self.clip_grad_norm} must be positive (the largest global gradient norm, "
                "e.g. 1.0), or null for no clipping."
            )

    def _validate_schedule(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision={self.precision!r} is not known; use fp32, bf16 (mixed bfloat16) or fp16 (mixed "
                "float16 with loss scaling, CUDA GPUs only)."
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(
                f"train.lr_schedule={self.lr_schedule!r} is not known; use one of: {', '.join(LR_SCHEDULES)}."
            )
        if self.warmup_steps < 0:
            raise ConfigError(f"train.warmup_steps={self.warmup_steps} must be 0 or more.")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            raise ConfigError(
                f"train.schedule_steps={self.schedule_steps} must be at least 1 (or null: the epochs' steps)."
            )
        if (
            self.schedule_steps is not None
            and self.lr_schedule in ("cosine", "linear")
            and (self.warmup_steps >= self.schedule_steps)
        ):
            raise ConfigError(
                f"train.warmup_steps={self.warmup_steps} leaves none of train.schedule_steps={self.schedule_steps} "
                f"to decay over; use fewer warm-up steps or a longer schedule."
            )
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"train.min_lr_ratio={self.min_lr_ratio} must lie in [0, 1], e.g. 0.1.")
        if self.lr_schedule == "step" and (self.lr_step_every_n_steps or 0) < 1:
            raise ConfigError(
                f"train.lr_schedule=step needs train.lr_step_every_n_steps of at least 1 (got "
                f"{self.lr_step_every_n_steps}): the rate is multiplied by train.lr_step_gamma={self.lr_step_gamma} "
                "every that many steps, e.g. train.lr_step_every_n_steps=1000."
            )
        if not 0 < self.lr_step_gamma <= 1:
            raise ConfigError(f"train.lr_step_gamma={self.lr_step_gamma} must lie in (0, 1], e.g. 0.1.")


@dataclass
class CheckpointConfig:
    dir: str = "checkpoints"
    every_n_steps: int = 100  # 0: only at the end of training
    keep_last: int = 2
    # How often ranks agree whether a stop was requested (one tiny collective): None at every log step, 0 never.
    stop_check_every_n_steps: int | None = None

    def validate(self) -> None:
        if not self.dir.strip():
            raise ConfigError(
                f"checkpoint.dir={self.dir!r} is empty, which would write checkpoints into the current directory; "
                "give a directory such as checkpoint.dir=checkpoints, or leave it unset for the run's own."
            )
        if self.every_n_steps < 0:
            raise ConfigError(
                f"checkpoint.every_n_steps={self.every_n_steps} must be 0 or more (0: only at the end of training)."
            )
        if self.keep_last < 1:
            raise ConfigError(
                f"checkpoint.keep_last={self.keep_last} would keep no checkpoint; keep at least one, e.g. "
                "checkpoint.keep_last=2."
            )
        if (self.stop_check_every_n_steps or 0) < 0:
            raise ConfigError(
                f"checkpoint.stop_check_every_n_steps={self.stop_check_every_n_steps} must be 0 or more "
                "(0: never, null: at every log step)."
            )


@dataclass
class WatchdogConfig:
    """The hang watchdog (common/watchdog.py) and the straggler detector (stragglers.py): docs/operations.md."""

    enabled: bool = True
    hang_timeout_s: float | None = None  # null: max(120 s, 20 × the slowest step seen); no rank advancing that long
    straggler_slowdown: float = 1.5  # a rank whose own step time is this many times the others' is a straggler...
    straggler_windows: int = 3  # ...over this many log windows (the median of their ratios)

    def validate(self) -> None:
        if self.hang_timeout_s is not None and self.hang_timeout_s <= 0:
            raise ConfigError(
                f"watchdog.hang_timeout_s={self.hang_timeout_s} must be positive, or null to derive it from the "
                "step time."
            )
        if not self.straggler_slowdown > 1:
            raise ConfigError(
                f"watchdog.straggler_slowdown={self.straggler_slowdown} must be more than 1 (1.5: a rank 50 % slower "
                "than the others is named)."
            )
        if self.straggler_windows < 1:
            raise ConfigError(f"watchdog.straggler_windows={self.straggler_windows} must be at least 1.")


@dataclass
class PreflightConfig:
    """Checks run before the job starts (docs/operations.md "Networks"): ``network`` times the links between a Ray
    cluster's nodes (scaletrain.driver.netcheck) and writes netcheck.json into the run directory."""

    network: bool = False  # launcher=ray: time every pair of the cluster's nodes and an all-reduce first
    network_gbit: float | None = None  # also name a node whose links carry less than this (Gbit/s)
    network_stop: bool = False  # true: a node named slow refuses the job (exit 2) instead of a warning

    def validate(self) -> None:
        if self.network_gbit is not None and self.network_gbit <= 0:
            raise ConfigError(
                f"preflight.network_gbit={self.network_gbit} must be positive (Gbit/s, e.g. 10), or null."
            )


@dataclass
class LoggerConfig:
    name: str = "none"  # none | wandb
    project: str = "scaletrain"
    entity: str | None = None
    mode: str = "auto"  # auto: online when WANDB_API_KEY is set, offline otherwise; online | offline
    group: str | None = None  # W&B group; a scaling sweep sets one for all its runs
    tags: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.name not in ("none", "wandb"):
            raise ConfigError(f"logger='{self.name}' is not known; use logger=wandb or logger=none.")
        if self.mode not in ("auto", "online", "offline"):
            raise ConfigError(f"logger.mode='{self.mode}' is not known; use auto, online or offline.")
        if self.name != "wandb":
            return
        # W&B's own rules (wandb.Settings.validate_project, validate_run_tags), checked before any run starts.
        bad = sorted(set(WANDB_PROJECT_FORBIDDEN) & set(self.project))
        if not self.project.strip() or len(self.project) > 128 or bad:
            why = f"contains {' '.join(bad)}" if bad else "is empty" if not self.project.strip() else "is too long"
            raise ConfigError(
                f"logger.project={self.project!r} {why}, which W&B does not accept; give a name of 1 to 128 "
                f"characters without any of {' '.join(WANDB_PROJECT_FORBIDDEN)}."
            )
        for tag in self.tags:
            if not 1 <= len(str(tag)) <= 64:
                raise ConfigError(f"logger.tags item {tag!r} must be 1 to 64 characters long, as W&B requires.")


@dataclass
class Job:
    """One fully resolved, validated job: what every launcher and every rank works from."""

    strategy: Any = None  # the strategy module's Config instance (None in the schema: no +strategy given)
    launcher: Any = None  # the launcher's Config (launchers/NAME.py)
    workload: Any = None  # the workload's Config (workloads/NAME.py)
    train: TrainConfig = field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    scaling: ScalingConfig = field(default_factory=ScalingConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    watchdog: WatchdogConfig = field(default_factory=WatchdogConfig)
    preflight: PreflightConfig = field(default_factory=PreflightConfig)
    seed: int = 0
    resume: bool = False
    max_restarts: int = 0
    script: str | None = None  # an unmodified torchrun-style script run instead of a workload
    script_args: list[str] = field(default_factory=list)
    output_dir: str = "."
    strategy_was_picked: bool = False  # True when no +strategy was given and scaletrain chose one

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save_json(self, path: Path) -> None:
        """Atomically: the srun tasks of a SLURM job all write the same file while their peers may read it."""
        atomic.write(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def conf_dir() -> Path:
    """The Hydra config directory: inside the package in a wheel, at the top of a source checkout otherwise."""
    here = Path(__file__).resolve().parents[1]  # the scaletrain package (this module is in contract/)
    for candidate in (here / "conf", here.parent.parent / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise ConfigError(f"scaletrain's configs were not found in {here / 'conf'}; reinstall scaletrain.")


def choices(group: str) -> list[str]:
    """The names a user may give for a config group (the YAML files under conf/<group>/)."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


def plugin_module(group: str, name: str) -> ModuleType:
    """The module implementing ``name`` in ``group``; a name with no YAML file is a user error."""
    known = choices(group)
    if name not in known:
        raise ConfigError(f"{group} '{name}' does not exist; choose one of: {', '.join(known)}.")
    return registry.module(group, name)


def typed(schema: type, values: Mapping[str, Any] | None, where: str) -> Any:
    """Merge ``values`` onto the dataclass ``schema``; wrong keys or types become one-sentence ConfigErrors."""
    if values is not None and not isinstance(values, Mapping):
        names = [f.name for f in dataclasses.fields(schema)]
        raise ConfigError(
            f"{where}={values!r} is not valid: {where} is a group of settings ({', '.join(names)}); set one of "
            f"them, e.g. {where}.{names[0]}=VALUE."
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(dict(values or {})))
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        raise ConfigError(_describe_omegaconf_error(exc, schema, where)) from None
    _check_finite(obj, where)
    check = getattr(obj, "validate", None)
    if check is not None:
        check()
    return obj


def _check_finite(obj: Any, where: str) -> None:
    """NaN and infinity are accepted by YAML and OmegaConf but are never a sensible setting (lr=nan trains to NaN)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = value.items() if isinstance(value, Mapping) and "float" in str(f.type) else [("", value)]
        for sub, item in items:
            if isinstance(item, float) and not math.isfinite(item):
                key = f"{where}.{f.name}" + (f".{sub}" if sub else "")
                example = "" if sub or f.default in (dataclasses.MISSING, None) else f", e.g. {key}={f.default}"
                raise ConfigError(f"{key}={item} is not a finite number; give a finite value{example}.")


def _describe_omegaconf_error(exc: OmegaConfBaseException, schema: type, where: str) -> str:
    key = str(getattr(exc, "full_key", None) or getattr(exc, "key", None) or "")
    fields = {f.name: f.type for f in dataclasses.fields(schema)}
    if isinstance(exc, MissingMandatoryValue):
        return f"{where}.{key} must be set; pass {where}.{key}=VALUE."
    top = key.split(".")[0]
    if isinstance(exc, ConfigKeyError) or top not in fields:
        return renamed(f"{where}.{key}") or (
            f"{where}.{key} is not a setting of {where}; valid settings are: {', '.join(fields)}."
        )
    return (
        f"{where}.{key}={getattr(exc, 'value', None)!r} is not valid ({fields[top]} expected); "
        f"fix the value of {where}.{key}."
    )


def load(raw: Mapping[str, Any]) -> Job:
    """Validate a resolved config mapping (from Hydra or a saved job.json) into a Job."""
    raw = dict(raw)
    known = [f.name for f in dataclasses.fields(Job)]
    for key in raw:
        if key not in known:
            raise ConfigError(
                f"{key} is not a setting scaletrain knows; drop +{key}=... or check its spelling "
                "(`python -m scaletrain --cfg job` prints every setting)."
            )
    picked = raw.get("strategy") is None
    strategy_raw = dict(raw.get("strategy") or {"name": DEFAULT_STRATEGY})
    groups: dict[str, Any] = {}
    for group, values in (
        ("strategy", strategy_raw),
        ("launcher", raw.get("launcher")),
        ("workload", raw.get("workload")),
    ):
        if values is not None and not isinstance(values, Mapping):
            raise ConfigError(f"{group}={values!r} is not a {group} name; choose one of: {', '.join(choices(group))}.")
        values = dict(values or {})
        name = values.get("name")
        if not name:
            raise ConfigError(f"no {group} was chosen; pass {group}=NAME, one of: {', '.join(choices(group))}.")
        groups[group] = typed(plugin_module(group, name).Config, values, group)

    job = Job(
        **groups,
        train=typed(TrainConfig, raw.get("train"), "train"),
        checkpoint=typed(CheckpointConfig, raw.get("checkpoint"), "checkpoint"),
        scaling=typed(ScalingConfig, raw.get("scaling"), "scaling"),
        logger=typed(LoggerConfig, raw.get("logger"), "logger"),
        watchdog=typed(WatchdogConfig, raw.get("watchdog"), "watchdog"),
        preflight=typed(PreflightConfig, raw.get("preflight"), "preflight"),
        **_top_level(raw),
        strategy_was_picked=bool(raw.get("strategy_was_picked") or picked),
    )
    _validate(job)
    return job


def _top_level(raw: Mapping[str, Any]) -> dict[str, Any]:
    scalars = {"seed": int, "resume": bool, "max_restarts": int, "script": (str, type(None)), "output_dir": str}
    out: dict[str, Any] = {}
    for key, kind in scalars.items():
        if key in raw:
            value = raw[key]
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise ConfigError(f"{key}={value!r} has the wrong type; give {key} as in conf/config.yaml.")
            out[key] = value
    if "script_args" in raw:
        out["script_args"] = [str(a) for a in (raw["script_args"] or [])]
    return out


def _validate(job: Job) -> None:
    if not 0 <= job.seed <= MAX_SEED:
        raise ConfigError(f"seed={job.seed} must be a whole number from 0 to {MAX_SEED}, e.g. seed=0.")
    if job.max_restarts < 0:
        raise ConfigError(f"max_restarts={job.max_restarts} must be 0 or more.")
    if not job.output_dir.strip() or Path(job.output_dir).is_file():
        raise ConfigError(
            f"output_dir={job.output_dir!r} is {'a file' if job.output_dir.strip() else 'empty'}; leave it unset "
            "for the run's own directory, or give a directory."
        )
    if job.script is not None and Path(job.script).is_dir():
        raise ConfigError(f"script={job.script} is a directory; give the path of a Python training script in it.")
    if job.script is not None and not Path(job.script).is_file():
        raise ConfigError(f"script={job.script} does not exist; give the path of a Python training script.")


def current_names(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A saved job's mapping with the settings RENAMED since under their new names (a copy)."""
    raw = json.loads(json.dumps(raw))
    for old, new in RENAMED.items():
        (section, old_key), new_key = old.split("."), new.split(".")[1]
        values = raw.get(section)
        if isinstance(values, dict) and old_key in values and new_key not in values:
            values[new_key] = values.pop(old_key)
    return raw


def load_json(path: Path) -> Job:
    """A saved job.json, an older release's too (its renamed settings read in today's names)."""
    return load(current_names(json.loads(Path(path).read_text())))
