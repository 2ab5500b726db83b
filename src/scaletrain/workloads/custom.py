"""Your model and your data, trained by scaletrain's own training driver: ``workload=custom``.

Each framework section names builders by Hydra ``_target_`` (a dotted path, plus keyword arguments):

- ``torch`` (used by ddp and xla): ``model`` returns a ``torch.nn.Module``; ``train_data`` (and optionally
  ``val_data``) a torch ``Dataset`` or ``IterableDataset`` (read through a ``DataLoader`` with a distributed sampler,
  in ``workload.num_workers`` worker processes) or ``(inputs, targets)`` arrays held in memory.
- ``tensorflow`` (used by mirrored and tpu): ``model`` returns a Keras model (called inside the strategy's scope);
  ``train_data``/``val_data`` a ``tf.data.Dataset`` of unbatched ``(inputs, targets)`` rows (batched, shuffled,
  sharded and prefetched by scaletrain) or ``(inputs, targets)`` arrays.

Give both sections and the PyTorch-vs-TensorFlow head-to-head runs on your model. The loss is a name
(``cross_entropy``, ``mse``) or a ``_target_`` callable: torch's ``loss(outputs, targets, reduction=...)`` as
``torch.nn.functional.cross_entropy`` is, TensorFlow's ``loss(targets, outputs)`` giving one loss per row. The
optimizer is ``train.optimizer`` unless ``optimizer`` names one: a ``_partial_`` torch optimizer that receives the
parameters, or a Keras optimizer. ``metrics`` name more validation figures, each a ``_target_`` callable like the
loss (torch: ``metric(outputs, targets)``, TensorFlow: ``metric(targets, outputs)``) returning the batch's mean:
reported as ``val_<name>`` (the mean over every validation row) beside ``val_loss`` and ``val_accuracy``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaletrain.contract.errors import ConfigError
from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask, check_worker_start_method, is_tf_dataset, is_torch_dataset

LOSS_NAMES = ("cross_entropy", "mse")
SECTIONS = {"torch": "torch", "tensorflow": "tensorflow"}  # framework -> the config section it reads
_BUILDERS = ("model", "train_data", "val_data")


@dataclass
class Config:
    name: str = "custom"
    torch: dict[str, Any] | None = None  # {model: {_target_: ...}, train_data: {...}, val_data: {...}}
    tensorflow: dict[str, Any] | None = None  # the same for Keras and tf.data (a _target_ of null: not given)
    loss: Any = "cross_entropy"  # cross_entropy | mse | {_target_: ...}
    optimizer: dict[str, Any] | None = None  # {_target_: torch.optim.AdamW, _partial_: true, lr: 0.001}
    num_workers: int = 2  # DataLoader worker processes per rank (0: load in the training process)
    worker_start_method: str = "forkserver"  # how they start: forkserver | spawn | fork (see docs/your-model.md)
    steps_per_epoch: int | None = None  # batches per epoch, for data without a length
    shuffle_buffer: int = 10000  # tf.data: rows shuffled together (all of them, up to this many)
    metrics: dict[str, Any] = field(default_factory=dict)  # {name: {_target_: ...}}: val_<name> at each validation

    def validate(self) -> None:
        if not named_frameworks(self):
            raise ConfigError(
                "workload=custom needs your model and data: set workload.torch.model._target_ and "
                "workload.torch.train_data._target_ (or the same under workload.tensorflow)."
            )
        for framework in named_frameworks(self):
            section = getattr(self, framework)
            unknown = sorted(set(section) - set(_BUILDERS))
            if unknown:
                raise ConfigError(
                    f"workload.{framework}.{unknown[0]} is not known; a section holds {', '.join(_BUILDERS)}."
                )
            for key in ("model", "train_data"):
                if not _target(section.get(key)):
                    raise ConfigError(
                        f"workload.{framework}.{key}._target_ is not set; name the function that builds it, e.g. "
                        f"workload.{framework}.{key}._target_=my_pkg.{key}."
                    )
        if isinstance(self.loss, str) and self.loss not in LOSS_NAMES:
            raise ConfigError(
                f"workload.loss={self.loss!r} is not known; use one of {', '.join(LOSS_NAMES)} or a _target_ callable."
            )
        if self.num_workers < 0:
            raise ConfigError(f"workload.num_workers={self.num_workers} must be 0 or more.")
        check_worker_start_method(self.worker_start_method)
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"workload.steps_per_epoch={self.steps_per_epoch} must be at least 1 (or null).")
        if self.shuffle_buffer < 1:
            raise ConfigError(f"workload.shuffle_buffer={self.shuffle_buffer} must be at least 1.")
        for name, spec in self.metrics.items():
            if not name.isidentifier() or not _target(spec):
                raise ConfigError(
                    f"workload.metrics.{name} must be a metric named by _target_ under a plain name, e.g. "
                    "'+workload.metrics.top5={_target_: my_pkg.top5_accuracy}'."
                )


def named_frameworks(config: Config) -> tuple[str, ...]:
    """The frameworks this workload can train under: the sections that name a builder."""
    return tuple(
        framework
        for framework in SECTIONS
        if any(_target(spec) for spec in (getattr(config, framework) or {}).values())
    )


def _section(config: Config, framework: str) -> dict[str, Any]:
    section = getattr(config, framework)
    if framework not in named_frameworks(config):
        other = "tensorflow" if framework == "torch" else "torch"
        raise ConfigError(
            f"workload=custom has no {framework} section (only {other}); set workload.{framework}.model and "
            f"workload.{framework}.train_data, or pick a strategy of the other framework."
        )
    return section


def _target(spec: Any) -> str | None:
    target = spec.get("_target_") if isinstance(spec, dict) else None
    return target if isinstance(target, str) and target not in ("", "???") else None


def _build(section: dict[str, Any], key: str) -> Any:
    from hydra.utils import instantiate

    return instantiate(section[key], _convert_="all")


def _torch_data(data: Any, key: str) -> Any:
    """A Dataset as it is; (inputs, targets) arrays as two tensors."""
    import torch

    return _data(data, f"workload.torch.{key}", is_torch_dataset, torch.as_tensor, "a torch Dataset or IterableDataset")


def _tf_data(data: Any, key: str) -> Any:
    """A tf.data.Dataset as it is; (inputs, targets) arrays as two NumPy arrays."""
    import numpy as np

    return _data(
        data, f"workload.tensorflow.{key}", is_tf_dataset, np.asarray, "a tf.data.Dataset of (inputs, targets) rows"
    )


def _data(data: Any, setting: str, is_dataset: Any, as_array: Any, dataset_kind: str) -> Any:
    if is_dataset(data):
        return data
    if isinstance(data, tuple | list) and len(data) == 2:
        return tuple(as_array(part) for part in data)
    raise ConfigError(
        f"{setting} returned a {type(data).__name__}; return {dataset_kind}, or (inputs, targets) arrays."
    )


def _loss(config: Config) -> Any:
    if isinstance(config.loss, str):
        return config.loss
    from hydra.utils import instantiate

    return instantiate(config.loss, _partial_=True)


def _metrics(config: Config) -> dict[str, Any]:
    """Each metric as a callable (its keyword arguments bound), by name."""
    from hydra.utils import instantiate

    return {name: instantiate(spec, _partial_=True) for name, spec in config.metrics.items()}


def _optimizer(config: Config) -> Any:
    if config.optimizer is None:
        return None
    from hydra.utils import instantiate

    return instantiate(config.optimizer)


class Custom(WorkloadPlugin):
    Config = Config

    def frameworks(self, config: Config) -> tuple[str, ...]:
        return named_frameworks(config)

    def framework_missing(self, config: Config, framework: str, strategy: str) -> str:
        return (
            f"workload=custom has no {framework} section for +strategy={strategy}; set workload.{framework}.model "
            f"and workload.{framework}.train_data, or pick a strategy of {' or '.join(named_frameworks(config))}."
        )

    def preflight(self, config: Config) -> None:
        """Every named builder importable, before anything starts."""
        from scaletrain.workloads.function import locate

        for framework in named_frameworks(config):
            for key in _BUILDERS:
                spec = getattr(config, framework).get(key)
                if _target(spec):
                    locate(_target(spec), f"workload.{framework}.{key}._target_")
        for key in ("loss", "optimizer"):
            spec = getattr(config, key)
            if isinstance(spec, dict):
                locate(_target(spec), f"workload.{key}._target_")
        for name, spec in config.metrics.items():
            locate(_target(spec), f"workload.metrics.{name}._target_")

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        import torch

        section = _section(config, "torch")
        torch.manual_seed(seed)  # the same initial weights on every run of this seed (DDP then copies rank 0's)
        model = _build(section, "model")
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(
                f"workload.torch.model._target_={_target(section['model'])} returned a {type(model).__name__}, "
                "not a torch.nn.Module."
            )
        return TorchTask(
            model=model,
            train=_torch_data(_build(section, "train_data"), "train_data"),
            val=_torch_data(_build(section, "val_data"), "val_data") if _target(section.get("val_data")) else None,
            loss=_loss(config),
            optimizer=_optimizer(config),
            num_workers=config.num_workers,
            worker_start_method=config.worker_start_method,
            steps_per_epoch=config.steps_per_epoch,
            metrics=_metrics(config),
        )

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        section = _section(config, "tensorflow")

        def model_fn() -> Any:
            import keras

            keras.utils.set_random_seed(seed)  # the same initial weights on every process and every run
            return _build(section, "model")

        return TFTask(
            model_fn=model_fn,
            train=_tf_data(_build(section, "train_data"), "train_data"),
            val=_tf_data(_build(section, "val_data"), "val_data") if _target(section.get("val_data")) else None,
            loss=_loss(config),
            optimizer=_optimizer(config),
            steps_per_epoch=config.steps_per_epoch,
            shuffle_buffer=config.shuffle_buffer,
            metrics=_metrics(config),
        )


PLUGIN = Custom()
