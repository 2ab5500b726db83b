"""Read W&B offline run files (``run-<id>.wandb``) back, for tests: the transaction log W&B writes and syncs.

The file is a 7-byte header (``:W&B``, magic 0xBEE1, version) followed by a LevelDB-style log: 32 KiB blocks of
records, each a 7-byte header (CRC32, length, type FULL/FIRST/MIDDLE/LAST) and a chunk of a serialized
``wandb_internal_pb2.Record``. Parsed with W&B's own protobuf definitions.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[pb.Record]:
    raw = Path(path).read_bytes()
    assert raw[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pending, pos = [], b"", HEADER
    while pos + HEADER <= len(raw):
        room = BLOCK - pos % BLOCK
        if room < HEADER:  # the block's tail is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[pos : pos + HEADER])
        chunk = raw[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0 and length == 0:
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


@dataclass
class OfflineRun:
    run_id: str
    group: str
    project: str
    config: dict = field(default_factory=dict)  # nested keys nested: config["_wandb"]["visualize"][chart key]
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    files: Path | None = None  # the run's files/ directory (media/table/*.table.json)
    job_type: str = ""

    def table(self, key: str) -> list[dict]:
        """The rows of the wandb.Table logged under ``key`` (a custom chart's is ``<chart key>_table``), as dicts."""
        assert self.files is not None and f"{key}/path" in self.summary, f"no table {key} in the run's summary"
        stored = json.loads((self.files / self.summary[f"{key}/path"]).read_text())
        return [dict(zip(stored["columns"], row, strict=True)) for row in stored["data"]]

    def chart(self, key: str) -> dict:
        """The panel config of the custom chart logged under ``key`` (``_wandb.visualize`` in the run's config)."""
        return self.config["_wandb"]["visualize"][key]["panel_config"]


def _update_config(config: dict, items) -> None:
    for i in items:
        keys = [i.key] if i.key else list(i.nested_key)
        node = config
        for k in keys[:-1]:
            if not isinstance(node.get(k), dict):
                node[k] = {}
            node = node[k]
        node[keys[-1]] = json.loads(i.value_json)


def read_run(path: Path) -> OfflineRun:
    run = None
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run = OfflineRun(r.run_id, r.run_group, r.project, files=Path(path).parent / "files", job_type=r.job_type)
            _update_config(run.config, r.config.update)
        elif kind == "config" and run is not None:
            _update_config(run.config, record.config.update)
        elif kind == "history" and run is not None:
            run.history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary" and run is not None:
            run.summary.update(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.summary.update}
            )
    assert run is not None, f"{path} holds no run record"
    return run


def offline_runs(directory: Path) -> list[Path]:
    """Every W&B run file under ``directory``."""
    return sorted(Path(directory).rglob("offline-run-*/run-*.wandb"))
