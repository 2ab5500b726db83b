"""``python -m scaletrain`` / ``scaletrain``: a Hydra app whose user errors end in one sentence and exit code 2."""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from scaletrain import config
from scaletrain.errors import ConfigError, ScaletrainError

_exit_codes: list[int] = []  # one per job: a multirun exits with the worst
_new_dirs: list[Path] = []  # a single run's directory and its parents that did not exist before this command
_RUN_DIR_OVERRIDE = re.compile(r"[+~]*hydra\.run\.dir=")
_SAFE_PATH = re.compile(r"[\w./-]+")


def _report(exc: ScaletrainError) -> None:
    print(f"scaletrain: error: {exc}", file=sys.stderr)


# Hydra 1.3's command-line flags, as hydra.main reads them (tests/unit/test_cli.py holds this table to Hydra's own
# parser, which is internal to Hydra): (option strings, argparse keywords). Read here only to pre-check a run.
HYDRA_FLAGS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--help", "-h"), {"action": "store_true"}),
    (("--hydra-help",), {"action": "store_true"}),
    (("--cfg", "-c"), {"choices": ["job", "hydra", "all"]}),
    (("--resolve",), {"action": "store_true"}),
    (("--package", "-p"), {}),
    (("--run", "-r"), {"action": "store_true"}),
    (("--multirun", "-m"), {"action": "store_true"}),
    (("--shell-completion", "-sc"), {"action": "store_true"}),
    (("--config-path", "-cp"), {}),
    (("--config-name", "-cn"), {}),
    (("--config-dir", "-cd"), {}),
    (("--experimental-rerun",), {}),
    (("--info", "-i"), {"nargs": "?", "const": "all",
                        "choices": ["all", "config", "defaults", "defaults-tree", "plugins", "searchpath"]}),
)  # fmt: skip


def hydra_args(argv: list[str]) -> Any:
    """The command line read as Hydra will read it (flags and overrides), or None when Hydra will reject it (or
    print its version) itself."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--version", action="store_true")
    for names, keywords in HYDRA_FLAGS:
        parser.add_argument(*names, **keywords)
    try:
        args = parser.parse_known_args(argv)[0]
    except (SystemExit, argparse.ArgumentError):
        return None
    return None if args.version else args


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


def check_composes(args: Any, conf) -> Path | None:
    """A single run composed once the way Hydra will compose it and pre-flighted, so that bad input is refused
    before Hydra creates the run directory; returns that directory. Hydra's own composition errors (an unknown key,
    a misplaced '+', a malformed value) become one sentence. Multiruns are left to Hydra's sweeper.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import open_dict, read_write

    if args.multirun or args.help or args.hydra_help or args.shell_completion:
        return None
    if args.config_path or args.config_name or args.config_dir:
        return None  # the user's own config search path: Hydra composes and reports it
    with initialize_config_dir(version_base="1.3", config_dir=str(conf)):
        try:
            cfg = compose("config", overrides=args.overrides, return_hydra_config=True)
        except HydraException as exc:
            raise ConfigError(_composition_error(exc)) from None
    if args.cfg or args.info or args.experimental_rerun:
        return None  # Hydra prints or reruns; no new run starts here
    previous = HydraConfig.instance().cfg
    try:  # ${hydra:runtime.output_dir} resolved as Hydra's run_job will
        HydraConfig.instance().set_config(cfg)
        run_dir = str(cfg.hydra.run.dir)
        with read_write(cfg.hydra.runtime), open_dict(cfg.hydra.runtime):
            cfg.hydra.runtime.output_dir = os.path.abspath(run_dir)
        HydraConfig.instance().set_config(cfg)
        task = copy.deepcopy(cfg)
        with read_write(task), open_dict(task):
            del task["hydra"]
        preflight(config.load(_resolved(task)))
    finally:
        HydraConfig.instance().cfg = previous
    return Path(run_dir)


def preflight(job: config.Job) -> None:
    """What run.py checks before anything starts (and checks again in the app: it is cheap), for a launcher that
    can check it all without reaching a cluster (local, or a Ray this job starts itself). A cluster's launcher and a
    sweep check the rest in the app, where a refusal removes the run directory again."""
    from scaletrain import preflight as checks
    from scaletrain import run

    offline = job.launcher.name == "local" or (job.launcher.name == "ray" and job.launcher.address is None)
    if offline and not job.scaling.world_sizes:
        checks.job(job)
        run.preflight_point(job)


def _resolved(cfg) -> dict[str, Any]:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"the configuration does not resolve: {str(exc).splitlines()[0]}.") from None


def _remove_if_only_hydra_files(run_dir: Path, job_name: str) -> None:
    """Remove the run directory a refused run left, when Hydra's own files are all that is in it, and the parents
    Hydra created for it (outputs/DATE) while they are empty."""
    hydra_files = {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", f"{job_name}.log", ".hydra"}
    if not all(str(p.relative_to(run_dir)) in hydra_files for p in run_dir.rglob("*")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in run_dir.parents:
        if parent not in _new_dirs:
            break
        try:
            parent.rmdir()  # only while empty
        except OSError:
            break


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
    from hydra.core.hydra_config import HydraConfig

    from scaletrain.run import run_job

    try:
        code = run_job(config.load(_resolved(cfg)))
    except ScaletrainError as exc:
        _report(exc)
        code = exc.exit_code
        hydra = HydraConfig.get()
        if Path(hydra.runtime.output_dir) in _new_dirs[:1]:
            _remove_if_only_hydra_files(_new_dirs[0], hydra.job.name)
    _exit_codes.append(code)


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        conf = config.conf_dir()
        args = hydra_args(argv)
        run_dir = None
        if args is not None:  # None: Hydra prints its own usage error below
            check_group_overrides(args)
            run_dir = check_composes(args, conf)
    except ScaletrainError as exc:
        _report(exc)
        sys.exit(exc.exit_code)
    absolute = Path(os.path.abspath(run_dir or "."))
    _new_dirs[:] = [d for d in (absolute, *absolute.parents) if not d.exists()]
    chosen = args is not None and any(_RUN_DIR_OVERRIDE.match(o) for o in args.overrides)
    if _new_dirs and not chosen and _SAFE_PATH.fullmatch(str(run_dir)):
        argv.append(f"hydra.run.dir={run_dir}")  # the default's ${now:...} must name the directory checked here
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
