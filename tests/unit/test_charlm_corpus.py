"""workload=charlm: the corpus (files, split, hash, cache), its windows in both frameworks, and the twin models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from scaletrain.contract.errors import ConfigError
from scaletrain.rank.loops import torch_flops
from scaletrain.workloads import charlm, gpt_torch


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """Twelve small 'source files' (one inside a site-packages directory, which is left out) and a private cache."""
    monkeypatch.setenv("SCALETRAIN_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "lib"
    for i in range(12):
        path = root / ("pkg" if i % 2 else "") / f"m{i:02d}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def f{i}():\n    return {i}\n" * 20)
    (root / "site-packages").mkdir()
    (root / "site-packages" / "installed.py").write_text("x = 1\n")
    return charlm.Config(corpus_dir=str(root), seq_len=16, val_every_nth_file=4)


def test_the_corpus_is_the_sorted_source_files_split_by_position(corpus):
    files = charlm.corpus_files(corpus)
    assert len(files) == 12 and files == sorted(files) and not any("site-packages" in f for f in files)
    train, val = charlm.split(files, 4)
    assert val == files[0::4] and len(train) == 9 and not set(train) & set(val)


def test_the_driver_hashes_the_corpus_into_the_job_and_each_rank_checks_its_own(corpus):
    charlm.PLUGIN.preflight(corpus)  # the driver: job.json then carries the hash and the file list
    assert len(corpus.corpus_sha256) == 64 and len(corpus.corpus_files) == 12
    train, val = charlm.prepared(corpus)  # a rank whose corpus matches: the cached byte files
    root = charlm.corpus_root(corpus)
    sizes = [sum((root / f).stat().st_size for f in part) for part in charlm.split(corpus.corpus_files, 4)]
    assert [train.stat().st_size, val.stat().st_size] == sizes
    built = train.stat().st_mtime_ns
    assert charlm.prepared(corpus)[0].stat().st_mtime_ns == built  # built once per corpus
    (root / corpus.corpus_files[3]).write_text("changed on this node\n")
    with pytest.raises(ConfigError, match=r"differs from the one the job was prepared with \(sha256 "):
        charlm.prepared(corpus)


def test_a_pinned_hash_that_does_not_match_is_refused_before_start(corpus):
    pinned = dataclasses.replace(corpus, corpus_sha256="0" * 64)
    with pytest.raises(ConfigError, match="workload.corpus_sha256=0000.* does not match the corpus under"):
        charlm.PLUGIN.preflight(pinned)


def test_windows_are_next_byte_pairs_read_lazily(corpus):
    train, _ = charlm.prepared(corpus)
    data = np.fromfile(train, dtype=np.uint8)
    windows = gpt_torch.ByteWindows(train, 16)
    assert len(windows) == len(data) // 17
    x, y = windows[2]
    assert x.tolist() == data[34:50].tolist() and y.tolist() == data[35:51].tolist()
    assert len(gpt_torch.ByteWindows(train, 16, limit=3)) == 3


@pytest.mark.tf
def test_tf_data_reads_the_same_windows(corpus):
    from scaletrain.rank.loops.tf_steps import tf

    train, _ = charlm.prepared(corpus)
    torch_windows = gpt_torch.ByteWindows(train, 16)
    dataset = charlm.tf_windows(tf, train, 16)
    assert int(dataset.cardinality()) == len(torch_windows)
    for i, (x, y) in enumerate(dataset.take(3)):
        assert x.numpy().tolist() == torch_windows[i][0].tolist() and y.numpy().tolist() == torch_windows[i][1].tolist()


def test_the_torch_model_predicts_every_next_byte_causally():
    torch.manual_seed(0)
    model = gpt_torch.GPT(256, 16, 32, 2, 4)
    ids = torch.randint(0, 256, (2, 16))
    logits = model(ids)
    assert logits.shape == (2, 16, 256)
    changed = ids.clone()
    changed[:, 10] = (changed[:, 10] + 1) % 256
    assert torch.allclose(model(changed)[:, :10], logits[:, :10])  # no position sees a later byte


@pytest.mark.tf
def test_the_keras_twin_has_the_same_parameters_and_flops():
    from scaletrain.rank.loops import tf_flops
    from scaletrain.workloads import gpt_keras

    keras_model = gpt_keras.gpt(256, 16, 32, 2, 4)
    torch_model = gpt_torch.GPT(256, 16, 32, 2, 4)
    assert keras_model.count_params() == sum(p.numel() for p in torch_model.parameters())
    ids = np.random.randint(0, 256, (2, 16)).astype(np.int32)
    counted_tf = tf_flops.training_flops_per_sample(keras_model, "cross_entropy", ids, ids)
    counted_torch = torch_flops.training_flops_per_sample(
        torch_model, _sequence_ce, torch.from_numpy(ids).long(),
        torch.from_numpy(ids).long())  # fmt: skip
    assert counted_tf == pytest.approx(counted_torch, rel=0.02)


def _sequence_ce(out, y):
    from scaletrain.rank.loops.torch_stepper import cross_entropy

    return cross_entropy(out, y)
