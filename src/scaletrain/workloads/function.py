"""A user's own training function, named by a Hydra ``_target_`` and called once per rank with a RunContext."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from scaletrain.contract.errors import ConfigError
from scaletrain.workloads.plugin import WorkloadPlugin


@dataclass
class Config:
    name: str = "function"
    fn: dict[str, Any] = field(default_factory=dict)  # {_target_: pkg.module.train, **keyword arguments}

    def validate(self) -> None:
        target = self.fn.get("_target_")
        if not isinstance(target, str) or target in ("", "???"):
            raise ConfigError(
                "workload.fn._target_ is not set; pass workload.fn._target_=your_package.module.train_function."
            )


def locate(target: str, setting: str) -> None:
    """``target`` importable, else a ConfigError naming ``setting``."""
    import pkgutil

    try:
        pkgutil.resolve_name(target)  # the standard library's dotted-name import ("pkg.module.attr")
    except Exception as exc:  # ImportError, AttributeError, ValueError, or whatever the module raised on import
        cause = exc.__cause__ or exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise ConfigError(
            f"{setting}={target} cannot be imported ({reason}); check the name and that its module is importable."
        ) from None


class Function(WorkloadPlugin):
    Config = Config
    trains_itself = True

    def preflight(self, config: Config) -> None:
        locate(config.fn["_target_"], "workload.fn._target_")

    def run(self, ctx) -> dict[str, Any]:
        from hydra.utils import instantiate

        fn = instantiate(ctx.job.workload.fn, _partial_=True)
        result = fn(ctx)
        return dict(result) if isinstance(result, dict) else {}


PLUGIN = Function()
