"""The Ray cluster configs in launchers/ pass Ray's own cluster-launcher schema, and agree with what launcher=ray
expects of them. No cloud here: `ray up` itself is not run."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO

pytestmark = pytest.mark.ray

CONFIGS = {"gpu": REPO / "launchers" / "ray-gpu.yaml", "tpu": REPO / "launchers" / "ray-tpu.yaml"}


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_cluster_config_passes_rays_schema(kind):
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(CONFIGS[kind].read_text())
    validate_config(prepare_config(copy.deepcopy(config)))  # raises jsonschema's ValidationError when malformed
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "the head drives the job; ranks go to the accelerator VMs"
    assert config["file_mounts"] == {"~/scaletrain": "."}


def test_gpu_workers_offer_the_gpus_they_are_created_with():
    config = yaml.safe_load(CONFIGS["gpu"].read_text())
    worker = config["available_node_types"]["gpu_worker"]
    attached = sum(a["acceleratorCount"] for a in worker["node_config"]["guestAccelerators"])
    assert worker["resources"]["GPU"] == attached
    assert worker["min_workers"] == worker["max_workers"] == config["max_workers"]


def test_tpu_workers_are_tpu_vms_offering_their_chips():
    from ray._private.accelerators.tpu import TPUAcceleratorManager

    config = yaml.safe_load(CONFIGS["tpu"].read_text())
    worker = config["available_node_types"]["tpu_worker"]
    node = worker["node_config"]
    assert "machineType" not in node  # how Ray's GCP provider tells a TPU VM from a Compute Engine VM
    assert TPUAcceleratorManager.is_valid_tpu_accelerator_type(node["acceleratorType"])
    assert worker["resources"]["TPU"] == 4  # the 4 chips of a v4-8 host, all reserved by one rank
