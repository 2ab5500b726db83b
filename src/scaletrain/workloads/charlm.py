"""A small GPT-style causal language model over bytes, in PyTorch and Keras: ``workload=charlm``.

The corpus exists on every machine with no download: the Python standard library's own source files (``*.py``
under ``sysconfig``'s stdlib directory, site-packages left out), or any directory given as ``workload.corpus_dir``.
Files are split by position in sorted order (every ``val_every_nth_file``-th is validation), concatenated once into
a cache per corpus (``~/.cache/scaletrain/charlm/<sha256>/{train,val}.bin``) and read lazily from there: windows of
``seq_len + 1`` bytes, through a DataLoader over a memory map (PyTorch) and ``FixedLengthRecordDataset`` (tf.data).

The driver hashes the corpus in its pre-flight and writes the file list and the hash into ``job.json``; each rank
hashes its own and refuses in one sentence when it differs (another Python on another node would train on other
text). Validation reports the loss in bits per byte (``val_bits_per_byte``).
"""

from __future__ import annotations

import hashlib
import math
import socket
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scaletrain.contract import atomic
from scaletrain.contract.errors import ConfigError
from scaletrain.rank.flops import cache_file
from scaletrain.workloads.byte_windows import tf_windows
from scaletrain.workloads.plugin import WorkloadPlugin
from scaletrain.workloads.task import TFTask, TorchTask

VOCAB = 256  # bytes
LN2 = math.log(2)


@dataclass
class Config:
    name: str = "charlm"
    seq_len: int = 128  # bytes of context
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    corpus_dir: str | None = None  # None: this Python's standard library
    corpus_glob: str = "*.py"  # the files of corpus_dir (searched recursively)
    val_every_nth_file: int = 10  # every n-th file in sorted order is validation text
    val_sequences: int | None = 512  # validation windows scored (None: all of them)
    # Filled in by the driver's pre-flight (job.json): what every rank must find on its own host
    corpus_sha256: str | None = None
    corpus_files: list[str] = field(default_factory=list)

    def validate(self) -> None:
        for key, minimum in (("seq_len", 2), ("d_model", 1), ("n_layers", 1), ("n_heads", 1),
                             ("val_every_nth_file", 2)):  # fmt: skip
            if getattr(self, key) < minimum:
                raise ConfigError(f"workload.{key}={getattr(self, key)} must be at least {minimum}.")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"workload.d_model={self.d_model} is not divisible by workload.n_heads={self.n_heads}; each head "
                f"takes an equal part: use a d_model that is a multiple of {self.n_heads}."
            )
        if self.val_sequences is not None and self.val_sequences < 1:
            raise ConfigError(f"workload.val_sequences={self.val_sequences} must be at least 1 (or null for all).")


def corpus_root(config: Config) -> Path:
    if config.corpus_dir:
        return Path(config.corpus_dir).expanduser().resolve()
    return Path(sysconfig.get_paths()["stdlib"])


def corpus_files(config: Config) -> list[str]:
    """The corpus' files, relative to its root, sorted (the standard library's own: no installed packages)."""
    root = corpus_root(config)
    if not root.is_dir():
        raise ConfigError(f"workload.corpus_dir={str(root)!r} is not a directory; give a directory of text files.")
    skip = {"site-packages", "dist-packages", "__pycache__"}
    found = sorted(
        str(p.relative_to(root)) for p in root.rglob(config.corpus_glob) if p.is_file() and not skip & set(p.parts)
    )
    if len(found) < config.val_every_nth_file:
        raise ConfigError(
            f"{root} holds {len(found)} file(s) matching workload.corpus_glob={config.corpus_glob!r}, too few to split "
            f"one in {config.val_every_nth_file} off for validation; give a directory with more text files."
        )
    return found


def corpus_sha256(root: Path, files: list[str]) -> str:
    """One hash over every file's name and bytes, in order."""
    digest = hashlib.sha256()
    for name in files:
        data = (root / name).read_bytes()
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def split(files: list[str], every_nth: int) -> tuple[list[str], list[str]]:
    """(train files, validation files): every n-th file in sorted order is validation text."""
    return [f for i, f in enumerate(files) if i % every_nth], [f for i, f in enumerate(files) if i % every_nth == 0]


def prepared(config: Config) -> tuple[Path, Path]:
    """The train and validation byte files of this host's corpus, built into the cache when missing; refuses a
    corpus that differs from the one the driver hashed (job.json)."""
    root, files = corpus_root(config), config.corpus_files or corpus_files(config)
    try:
        sha = corpus_sha256(root, files)
    except OSError as exc:
        raise ConfigError(
            f"workload charlm: {socket.gethostname()} cannot read the corpus the job was prepared with ({exc}); run "
            "every rank on the same Python (or the same workload.corpus_dir)."
        ) from None
    if config.corpus_sha256 and sha != config.corpus_sha256:
        raise ConfigError(
            f"workload charlm: the corpus under {root} on {socket.gethostname()} differs from the one the job was "
            f"prepared with (sha256 {sha[:12]}... against {config.corpus_sha256[:12]}...); run every rank on the "
            "same Python (or the same workload.corpus_dir)."
        )
    directory = cache_file().parent / "charlm" / sha[:16]
    paths = directory / "train.bin", directory / "val.bin"
    for path, part in zip(paths, split(files, config.val_every_nth_file), strict=True):
        if not path.is_file():
            directory.mkdir(parents=True, exist_ok=True)
            # ranks of one host building it at once: each renames a whole file
            with atomic.replacing(path, "wb") as out:
                for name in part:
                    out.write((root / name).read_bytes())
    return paths


class CharLM(WorkloadPlugin):
    Config = Config

    def preflight(self, config: Config) -> None:
        """Hash this host's corpus into the job (job.json): every rank checks its own against it."""
        root, files = corpus_root(config), corpus_files(config)
        sha = corpus_sha256(root, files)
        if config.corpus_sha256 and config.corpus_sha256 != sha:
            raise ConfigError(
                f"workload.corpus_sha256={config.corpus_sha256} does not match the corpus under {root} (sha256 {sha}); "
                "drop the setting to take this host's corpus, or point workload.corpus_dir at the text it names."
            )
        config.corpus_sha256, config.corpus_files = sha, files

    def build_torch(self, config: Config, seed: int) -> TorchTask:
        import torch

        from scaletrain.workloads import gpt_torch

        train, val = prepared(config)
        torch.manual_seed(seed)
        return TorchTask(
            model=gpt_torch.GPT(VOCAB, config.seq_len, config.d_model, config.n_layers, config.n_heads),
            train=gpt_torch.ByteWindows(train, config.seq_len),
            val=gpt_torch.ByteWindows(val, config.seq_len, config.val_sequences),
            loss="cross_entropy",
            metrics={"bits_per_byte": lambda out, y: torch.nn.functional.cross_entropy(out, y) / LN2},
        )

    def build_tensorflow(self, config: Config, seed: int) -> TFTask:
        from scaletrain.rank.loops.tf_steps import tf
        from scaletrain.workloads import gpt_keras, keras_models

        train, val = prepared(config)

        def bits_per_byte(y: Any, out: Any) -> Any:
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=out)) / LN2

        shape = (config.seq_len, config.d_model, config.n_layers, config.n_heads)
        return TFTask(
            model_fn=keras_models.seeded(seed, lambda: gpt_keras.gpt(VOCAB, *shape)),
            train=tf_windows(tf, train, config.seq_len),
            val=tf_windows(tf, val, config.seq_len, config.val_sequences),
            loss="cross_entropy",
            metrics={"bits_per_byte": bits_per_byte},
        )


PLUGIN = CharLM()
