"""The job's defaults in Hydra's ConfigStore: the dataclasses are the one source of every default.

``job_schema`` is ``contract.config.Job``'s defaults (train, checkpoint, scaling, logger, watchdog, preflight and the
top-level settings); ``schema/<group>/<name>`` is each plugin's ``Config``'s. conf/config.yaml and every file under
conf/<group>/ pull theirs in through their defaults list and set only what differs, so Hydra composes every setting:
``--cfg job`` prints them all, and an unknown key is refused while the command line is composed (struct mode).

They are stored as plain mappings, not as typed structured configs: the values are checked once, by
``contract.config.load`` (one validation per process, with its one-sentence messages), and a mapping-valued setting
whose default is null (``scaling.network``, ``launcher.runtime_env``) takes a mapping on the command line, which a
typed node of None refuses (OmegaConf merges into it and fails); one whose default is a mapping takes new keys.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from scaletrain.contract import config, registry

JOB = "job_schema"


def plugin_of(path: Path) -> str | None:
    """The plugin a file under conf/<group>/ selects: the schema its defaults list pulls in (workload=digits_cnn is
    digits with other values); None for a file that pulls in none (a logger: its section is the job schema's)."""
    found = re.search(r"^\s*-\s*/schema/\w+/(\w+)@", Path(path).read_text(), re.M)
    return found[1] if found else None


def register() -> None:
    """Store the schemas (again: the store replaces an entry of the same name). Before any composition: the CLI
    calls it first, and so does anything composing conf/ through Hydra's compose API."""
    store = ConfigStore.instance()
    store.store(name=JOB, node=_defaults(config.Job))
    for group, names in registry.GROUPS.items():
        for name in names:
            store.store(group=f"schema/{group}", name=name, node=_defaults(registry.module(group, name).Config))


def _defaults(schema: type) -> DictConfig:
    """The dataclass's defaults as a plain mapping ('???' where a setting must be given), its mapping-valued
    settings open: ``launcher.resources_per_rank={TPU: 4}`` adds keys that Hydra's struct mode would refuse."""
    node = OmegaConf.create(_values(schema))
    _open_mappings(node, schema)
    return node


def _values(schema: type) -> dict:
    values = {}
    for field in dataclasses.fields(schema):
        if field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is dataclasses.MISSING:
            values[field.name] = "???"  # must be given
        elif dataclasses.is_dataclass(field.default_factory):
            values[field.name] = _values(field.default_factory)  # a section of the job
        else:
            values[field.name] = field.default_factory()
    return values


def _open_mappings(node: DictConfig, schema: type) -> None:
    for field in dataclasses.fields(schema):
        value = node.get(field.name)
        nested = field.default_factory if field.default_factory is not dataclasses.MISSING else None
        if isinstance(value, DictConfig) and dataclasses.is_dataclass(nested):
            _open_mappings(value, nested)  # a section of the job (train, scaling, ...)
        elif isinstance(value, DictConfig):
            OmegaConf.set_struct(value, False)
