"""The global batch split over devices and accumulation steps (scaletrain/rank/batching.py)."""

from __future__ import annotations

import pytest

from scaletrain.contract.errors import ConfigError
from scaletrain.rank.batching import accumulation_steps, split


def test_the_global_batch_is_micro_times_devices_times_steps():
    s = split(64, 2, 8)
    assert (s.per_device, s.micro_batch_size, s.accumulation_steps) == (32, 8, 4)
    assert s.micro_batch_size * s.devices * s.accumulation_steps == s.global_batch_size


def test_without_a_micro_batch_or_when_the_share_fits_it_one_step():
    assert accumulation_steps(64, 2, None) == 1
    assert accumulation_steps(64, 8, 8) == 1  # the share is exactly the micro-batch
    assert split(64, 16, 8).micro_batch_size == 4  # a sweep's largest point: the share fits, nothing to accumulate


def test_the_same_global_batch_at_every_world_size():
    """The samples of an optimizer step stay 64 whether 1, 2 or 4 devices compute them."""
    assert [accumulation_steps(64, n, 8) for n in (1, 2, 4, 8)] == [8, 4, 2, 1]


def test_a_share_that_is_no_whole_number_of_micro_batches_names_sizes_that_work():
    with pytest.raises(ConfigError) as err:
        split(64, 2, 12)
    message = str(err.value)
    assert "train.micro_batch_size=12" in message and "32 samples per device" in message
    assert "train.micro_batch_size=8 (4 accumulation steps)" in message
    assert "train.global_batch_size=48 or 72" in message  # the nearest multiples of 12 x 2


def test_a_global_batch_the_devices_cannot_split_is_refused():
    with pytest.raises(ConfigError, match="not divisible by the 3 device"):
        split(64, 3, 8)
    assert split(64, 3, None).accumulation_steps == 1  # without a micro-batch, the strategy's own check speaks
