"""``python -m scaletrain`` / ``scaletrain``: a Hydra app whose user errors end in one sentence and exit code 2."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from scaletrain.contract import config
from scaletrain.contract.errors import ConfigError, ScaletrainError
from scaletrain.driver import schema

_exit_codes: list[int] = []  # one per job: a multirun exits with the worst
_new_dirs: list[Path] = []  # a single run's directory and its parents that did not exist before this command


def _report(exc: ScaletrainError) -> None:
    print(f"scaletrain: error: {exc}", file=sys.stderr)


class RunDirectory(Callback):
    """Hydra callback (conf/config.yaml): before a single run's directory is created, note which of it and its
    parents do not exist yet, so that a run refused in the pre-flight removes what Hydra created for it."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        run_dir = Path(os.path.abspath(str(config.hydra.run.dir)))  # ${now:...} resolves once: run_job's too
        _new_dirs[:] = [d for d in (run_dir, *run_dir.parents) if not d.exists()]


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


def composition_error(exc: BaseException) -> str:
    """One sentence for Hydra's refusal to compose the command line (raised, not printed: HYDRA_FULL_ERROR)."""
    text = str(exc)
    missing = re.search(r"Could not find '([^'/]+)/([^']+)'", text)
    if missing and missing[1] in config.SELECTABLE:
        group, name = missing[1], missing[2]
        return f"{group}={name} does not exist; choose one of: {', '.join(config.choices(group))}."
    unplussed = re.search(r"Could not override '([^']+)'\. No match in the defaults list.*use \+(\S+)", text, re.S)
    if unplussed:
        group, wanted = unplussed[1], unplussed[2]
        return f"{wanted} needs a leading '+' because no {group} is chosen by default: write +{wanted}."
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    unknown = re.match(r"Could not override '([^']+)'", lines[0]) if lines else None
    if unknown and config.renamed(unknown[1]):
        return config.renamed(unknown[1])
    if unknown and exc.__cause__ is not None:
        reason = str(exc.__cause__).splitlines()[0]
        return (
            f"{unknown[1]} is not a setting scaletrain knows ({reason}); check its spelling "
            "(`python -m scaletrain --cfg job` prints every setting)."
        )
    joined = "; ".join(line.rstrip(".") for line in lines) or type(exc).__name__
    return f"the command line could not be applied to the configuration: {joined}."


def _task(cfg) -> None:
    from hydra.core.hydra_config import HydraConfig

    from scaletrain.driver.run import run_job

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
    """Hydra composes the command line once and runs ``_task`` on it; a composition error is raised to here (Hydra
    raises instead of printing it under HYDRA_FULL_ERROR, its documented switch) and becomes one sentence, exit 2."""
    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    schema.register()  # every default is a dataclass's: conf/*.yaml pull them in by name
    full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra.main(version_base="1.3", config_path=str(config.conf_dir()), config_name="config")(_task)()
    except (HydraException, OmegaConfBaseException) as exc:
        _report(ConfigError(composition_error(exc)))
        sys.exit(ConfigError.exit_code)
    except ScaletrainError as exc:  # from a callback (a multirun's comparison)
        _report(exc)
        sys.exit(exc.exit_code)
    finally:
        if full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full_error
    sys.exit(max(_exit_codes, default=0))
