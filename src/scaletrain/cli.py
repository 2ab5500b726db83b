"""``python -m scaletrain`` / ``scaletrain``: a Hydra app whose user errors end in one sentence and exit code 2."""

from __future__ import annotations

import re
import sys
from typing import Any

from scaletrain import config
from scaletrain.errors import ConfigError, ScaletrainError

_exit_codes: list[int] = []  # one per job: a multirun exits with the worst


def _report(exc: ScaletrainError) -> None:
    print(f"scaletrain: error: {exc}", file=sys.stderr)


def hydra_args(argv: list[str]) -> Any:
    """Hydra's own reading of the command line (flags and overrides), or None when Hydra will reject it itself."""
    from hydra._internal.utils import get_args_parser

    try:
        return get_args_parser().parse_known_args(argv)[0]
    except SystemExit:
        return None


def check_group_overrides(args: Any) -> None:
    """Unknown strategy/launcher/workload names, and `strategy=` without its '+', fail here with the choices."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except HydraException:
        return  # a malformed override: check_composes reports it
    for override in overrides:
        group = override.key_or_group
        if group not in config.SELECTABLE or override.is_delete():
            continue
        if group == "strategy" and override.type == OverrideType.CHANGE:
            raise ConfigError(
                f"strategy={override.get_value_element_as_str()} needs a leading '+' because no strategy is chosen "
                f"by default: write +strategy={override.get_value_element_as_str()}."
            )
        names = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        known = config.choices(group)
        for name in names:
            if name not in known:
                raise ConfigError(f"{group}={name} does not exist; choose one of: {', '.join(known)}.")


def check_composes(args: Any, conf) -> None:
    """Hydra's own composition errors (an unknown key, a misplaced '+', a malformed value) as one sentence.

    A single run is composed here once, the way Hydra will compose it (about 40 ms); multiruns are left to Hydra's
    sweeper.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    if args.multirun or args.help or args.hydra_help or args.shell_completion:
        return
    if args.config_path or args.config_name or args.config_dir:
        return  # the user's own config search path: Hydra composes and reports it
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        try:
            compose("config", overrides=args.overrides)
        except HydraException as exc:
            raise ConfigError(_composition_error(exc)) from None


def _composition_error(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    unknown = re.match(r"Could not override '([^']+)'", lines[0]) if lines else None
    if unknown and exc.__cause__ is not None:
        reason = str(exc.__cause__).splitlines()[0]
        return (
            f"{unknown[1]} is not a setting scaletrain knows ({reason}); check its spelling "
            "(`python -m scaletrain --cfg job` prints every setting)."
        )
    text = "; ".join(line.rstrip(".") for line in lines) or type(exc).__name__
    return f"the command line could not be applied to the configuration: {text}."


def _task(cfg) -> None:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from scaletrain.run import run_job

    try:
        try:
            raw = OmegaConf.to_container(cfg, resolve=True)
        except OmegaConfBaseException as exc:
            raise ConfigError(f"the configuration does not resolve: {str(exc).splitlines()[0]}.") from None
        code = run_job(config.load(raw))
    except ScaletrainError as exc:
        _report(exc)
        code = exc.exit_code
    _exit_codes.append(code)


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        conf = config.conf_dir()
        args = hydra_args(argv)
        if args is not None:  # None: Hydra prints its own usage error below
            check_group_overrides(args)
            check_composes(args, conf)
    except ScaletrainError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    sys.argv = [sys.argv[0], *argv]
    try:
        hydra.main(version_base="1.3", config_path=str(conf), config_name="config")(_task)()
    except SystemExit as exc:
        # Hydra exits 1 after printing why it could not compose the config (e.g. an unknown key):
        # that is bad input, so it gets the same exit code as our own config errors.
        if exc.code == 1 and not _exit_codes:
            sys.exit(ConfigError.exit_code)
        raise
    sys.exit(max(_exit_codes, default=0))
