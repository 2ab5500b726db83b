"""The xla strategy's driver side: device choice, TPU detection, version check, per-host env. No torch_xla needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from scaletrain.common import hardware
from scaletrain.contract.env import ClusterEnv
from scaletrain.contract.errors import ConfigError
from scaletrain.strategies import xla


def _pci(root: Path, slot: str, vendor: str, device: str) -> None:
    d = root / "bus/pci/devices" / slot
    d.mkdir(parents=True)
    (d / "vendor").write_text(vendor + "\n")
    (d / "device").write_text(device + "\n")


def test_tpu_chips_are_counted_from_a_fake_sysfs_tree(tmp_path):
    sys_root, dev_root = tmp_path / "sys", tmp_path / "dev"
    dev_root.mkdir()
    _pci(sys_root, "0000:00:04.0", "0x1ae0", "0x005e")  # a TPU v4 chip
    _pci(sys_root, "0000:00:05.0", "0x1ae0", "0x005e")
    _pci(sys_root, "0000:00:06.0", "0x1ae0", "0x0042")  # another Google device: not a TPU
    _pci(sys_root, "0000:00:07.0", "0x10de", "0x2330")  # an NVIDIA GPU
    assert hardware.tpu_chip_count(sys_root, dev_root) == 2


def test_tpu_chips_fall_back_to_dev_accel_nodes(tmp_path):
    (tmp_path / "dev").mkdir()
    for name in ("accel0", "accel1", "accel2", "accel3", "accelerometer"):
        (tmp_path / "dev" / name).touch()
    assert hardware.tpu_chip_count(tmp_path / "sys", tmp_path / "dev") == 4


def test_this_machine_has_no_tpu():
    assert hardware.tpu_chip_count() == 0  # the bad-input tests rely on it


def test_device_choice_config_first_then_pjrt_device_then_hardware():
    assert xla.resolve_device(xla.Config(device="CPU"), {"PJRT_DEVICE": "TPU"}) == ("CPU", "strategy.device=CPU")
    assert xla.resolve_device(xla.Config(), {"PJRT_DEVICE": "tpu"}) == ("TPU", "PJRT_DEVICE=tpu")
    assert xla.resolve_device(xla.Config(), {}) == ("CPU", "no TPU found")
    with pytest.raises(ConfigError, match="PJRT_DEVICE=GPU is not a device"):
        xla.resolve_device(xla.Config(), {"PJRT_DEVICE": "GPU"})


def test_auto_picks_tpu_when_chips_are_found_mocked_tpu(monkeypatch):
    monkeypatch.setattr(hardware, "tpu_chip_count", lambda: 4)  # no TPU exists here
    assert xla.resolve_device(xla.Config(), {}) == ("TPU", "4 TPU chip(s) found")


def test_config_normalises_the_device_and_rejects_bad_values():
    config = xla.Config(device="tpu")
    config.validate()
    assert config.device == "TPU"
    with pytest.raises(ConfigError, match="strategy.mesh_shape=\\[2, 0\\] must list positive sizes"):
        xla.Config(mesh_shape=[2, 0]).validate()
    with pytest.raises(ConfigError, match="strategy.num_devices=0 must be at least 1"):
        xla.Config(num_devices=0).validate()


@pytest.mark.parametrize(
    ("versions", "problem"),
    [
        ({"torch": "2.9.0", "torch-xla": "2.9.0"}, None),
        ({"torch": "2.9.0+cpu", "torch-xla": "2.9.0"}, None),
        ({"torch": "2.13.0", "torch-xla": "2.9.0"}, "torch 2.13.0 does not match torch-xla 2.9.0"),
        ({"torch": "2.9.0"}, "needs torch-xla, which is not installed"),
    ],
)
def test_torch_and_torch_xla_releases_must_match(versions, problem):
    def version(name: str) -> str:
        if name not in versions:
            raise xla.metadata.PackageNotFoundError(name)
        return versions[name]

    if problem is None:
        xla.check_versions(version)
    else:
        with pytest.raises(ConfigError, match=problem):
            xla.check_versions(version)


def _env(world_size: int) -> ClusterEnv:
    return ClusterEnv(0, 0, world_size, 1, 0, world_size, "10.0.0.1", 29500, "local")


def test_worker_env_sets_the_pjrt_device_and_cpu_device_count():
    assert xla.PLUGIN.worker_env(xla.Config(device="CPU", num_devices=3), _env(1)) == {
        "PJRT_DEVICE": "CPU",
        "CPU_NUM_DEVICES": "3",
    }
    assert xla.PLUGIN.worker_env(xla.Config(device="CUDA"), _env(2)) == {
        "PJRT_DEVICE": "CUDA",
        "XLA_COORDINATOR_PORT": "29501",
    }
    assert xla.PLUGIN.procs_per_node == 1 and xla.PLUGIN.procs_per_node_required


def _job(*overrides: str):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scaletrain.contract import config

    with initialize_config_dir(config_dir=str(config.conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=["+strategy=xla", *overrides, "checkpoint.dir=/tmp/x", "output_dir=/tmp/x"])
    return config.load(OmegaConf.to_container(cfg, resolve=True))


def test_local_launcher_starts_one_process_per_host_for_xla():
    from scaletrain.driver.launchers.local import LocalLauncher

    launcher = LocalLauncher(_job("launcher.nnodes=3", "launcher.master_port=29500"))
    assert launcher.nproc == 1 and launcher.world_size == 3
    with pytest.raises(ConfigError, match="launcher.nproc_per_node=4 does not fit strategy xla"):
        LocalLauncher(_job("launcher.nproc_per_node=4")).preflight()
