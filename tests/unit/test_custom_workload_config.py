"""workload=custom: what its settings accept, and the one-sentence refusals before anything starts."""

from __future__ import annotations

import pytest
from test_config import compose_job

from scaletrain import workloads
from scaletrain.contract.errors import ConfigError
from scaletrain.workloads import custom

TORCH = ("workload.torch.model._target_=torch.nn.Identity", "workload.torch.train_data._target_=builtins.list")


def test_the_sections_given_are_the_frameworks_it_trains_under():
    job = compose_job("+strategy=ddp", "workload=custom", *TORCH)
    assert custom.PLUGIN.frameworks(job.workload) == ("torch",)
    workloads.preflight(job)  # importable builders, a torch strategy: accepted


@pytest.mark.parametrize(
    "overrides, says",
    [
        ((), "workload=custom needs your model and data: set workload.torch.model._target_"),
        (("workload.torch.model._target_=torch.nn.Identity",), "workload.torch.train_data._target_ is not set"),
        ((*TORCH, "workload.loss=hinge"), "workload.loss='hinge' is not known; use one of cross_entropy, mse"),
        ((*TORCH, "workload.num_workers=-1"), "workload.num_workers=-1 must be 0 or more"),
        (
            (*TORCH, "workload.worker_start_method=thread"),
            "workload.worker_start_method='thread' is not known; use one of forkserver, spawn, fork.",
        ),  # fmt: skip
        ((*TORCH, "workload.steps_per_epoch=0"), "workload.steps_per_epoch=0 must be at least 1"),
        ((*TORCH, "+workload.torch.test_data._target_=x.y"), "workload.torch.test_data is not known"),
        ((*TORCH, "+workload.metrics.top5=5"), "workload.metrics.top5 must be a metric named by _target_"),
    ],
)
def test_bad_settings_are_refused_in_one_sentence(overrides, says):
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        compose_job("+strategy=ddp", "workload=custom", *overrides)


def test_a_strategy_of_a_framework_without_a_section_is_refused_before_anything_starts():
    job = compose_job("+strategy=mirrored", "workload=custom", *TORCH)
    with pytest.raises(ConfigError, match="workload=custom has no tensorflow section for \\+strategy=mirrored"):
        workloads.preflight(job)


def test_a_builder_that_cannot_be_imported_is_named():
    job = compose_job("+strategy=ddp", "workload=custom", "workload.torch.model._target_=no_such_pkg.model",
                      "workload.torch.train_data._target_=builtins.list")  # fmt: skip
    with pytest.raises(ConfigError, match="workload.torch.model._target_=no_such_pkg.model cannot be imported"):
        workloads.preflight(job)


def test_a_model_builder_must_return_a_torch_module():
    job = compose_job("+strategy=ddp", "workload=custom", "workload.torch.model._target_=builtins.dict",
                      "workload.torch.train_data._target_=builtins.list")  # fmt: skip
    with pytest.raises(ConfigError, match="returned a dict, not a torch.nn.Module"):
        custom.PLUGIN.build_torch(job.workload, seed=0)


def test_data_of_the_wrong_kind_is_named():
    job = compose_job("+strategy=ddp", "workload=custom", *TORCH)
    with pytest.raises(ConfigError, match="workload.torch.train_data returned a list; return a torch Dataset"):
        custom.PLUGIN.build_torch(job.workload, seed=0)


def test_a_metric_that_cannot_be_imported_is_named():
    job = compose_job("+strategy=ddp", "workload=custom", *TORCH, "+workload.metrics.top5._target_=no_such.top5")
    with pytest.raises(ConfigError, match="workload.metrics.top5._target_=no_such.top5 cannot be imported"):
        workloads.preflight(job)
