"""launcher=ray's pure parts: addresses, sizing a job to a cluster's nodes, the sentences for what can never be
placed, and rank numbering from where the actors landed. No Ray needed."""

from __future__ import annotations

import pytest

from scaletrain.contract.errors import ConfigError, LaunchError
from scaletrain.driver.launchers import ray_cluster as rc

GPU_NODES = [
    rc.Node("head", "10.0.0.1", {"CPU": 8.0}),  # a CPU-only head, as on most GPU clusters
    rc.Node("gpu-a", "10.0.0.2", {"CPU": 32.0, "GPU": 4.0}),
    rc.Node("gpu-b", "10.0.0.3", {"CPU": 32.0, "GPU": 4.0}),
]


@pytest.mark.parametrize(
    ("address", "expected"),
    [("10.0.0.1:6379", ("10.0.0.1", 6379)), ("ray://head:10001", ("head", 10001)), ("[::1]:6379", ("::1", 6379))],
)
def test_addresses_split_into_host_and_port(address, expected):
    assert rc.split_address(address) == expected


@pytest.mark.parametrize("address", ["head", "http://head:80", "head:0", "head:99999", "ray://"])
def test_malformed_address_is_a_config_error_naming_it(address):
    with pytest.raises(ConfigError, match=rf"launcher.address='{address}' is not a Ray address"):
        rc.split_address(address)


def test_probe_of_a_port_nobody_listens_on_fails_fast_with_the_address():
    with pytest.raises(LaunchError, match=r"nothing answers at 127.0.0.1:1 \(connection refused"):
        rc.probe("127.0.0.1:1", timeout_s=2)


def test_node_holds_as_many_bundles_as_its_scarcest_resource_allows():
    node = rc.Node("n", "ip", {"CPU": 32.0, "GPU": 4.0, "TPU": 0.0})
    assert node.holds({"CPU": 1.0, "GPU": 1.0}) == 4
    assert node.holds({"CPU": 10.0}) == 3
    assert node.holds({"CPU": 0.1, "GPU": 0.5}) == 8
    assert node.holds({"CPU": 1.0, "TPU": 4.0}) == 0


def test_auto_sizing_gives_one_rank_per_gpu_and_skips_the_cpu_only_head():
    gpus = rc.gpus_per_rank("auto", GPU_NODES, None)
    assert gpus == 1.0
    rank = rc.bundle(1, gpus, {})
    assert rank == {"CPU": 1.0, "GPU": 1.0}
    assert rc.auto_nproc(GPU_NODES, rank, None) == 8


def test_one_process_per_host_strategies_get_a_host_share_of_gpus_and_one_rank_per_gpu_node():
    gpus = rc.gpus_per_rank("auto", GPU_NODES, 1)
    assert gpus == 4.0
    assert rc.auto_nproc(GPU_NODES, rc.bundle(1, gpus, {}), 1) == 2


def test_cpu_only_clusters_follow_the_local_launchers_rule_per_node():
    nodes = [rc.Node("a", "1", {"CPU": 2.0}), rc.Node("b", "2", {"CPU": 16.0})]
    assert rc.gpus_per_rank("auto", nodes, None) == 0.0
    assert rc.auto_nproc(nodes, rc.bundle(1, 0, {}), None) == 2 + 8


def test_tpu_bundles_count_tpu_hosts():
    nodes = [rc.Node(f"tpu-{i}", f"10.1.0.{i}", {"CPU": 96.0, "TPU": 4.0}) for i in range(4)]
    rank = rc.bundle(1, 0, {"TPU": 4})
    assert rank == {"CPU": 1.0, "TPU": 4.0}
    assert rc.auto_nproc(nodes, rank, None) == 4
    rc.check_fits(nodes, rank, 4, "STRICT_SPREAD", "head:6379")


def test_more_gpus_per_rank_than_any_node_has_names_the_setting():
    with pytest.raises(LaunchError) as err:
        rc.check_fits(GPU_NODES, {"CPU": 1.0, "GPU": 8.0}, 1, "PACK", "head:6379")
    assert str(err.value) == (
        "launcher.num_gpus_per_rank=8 asks for more GPU per rank than any node of the Ray cluster has "
        "(at most 4 per node, 3 node(s) at head:6379); lower it or add nodes with more GPU."
    )


def test_tpus_on_a_cluster_without_any_name_resources_per_rank():
    with pytest.raises(LaunchError, match=r"launcher.resources_per_rank.TPU=4 asks for more TPU .* \(none, 3 node"):
        rc.check_fits(GPU_NODES, {"CPU": 1.0, "TPU": 4.0}, 1, "PACK", "head:6379")


def test_strict_spread_over_more_ranks_than_usable_nodes_says_how_many_fit():
    with pytest.raises(LaunchError) as err:
        rc.check_fits(GPU_NODES, {"CPU": 1.0, "GPU": 1.0}, 3, "STRICT_SPREAD", "head:6379")
    assert "each of the 3 ranks on its own node but only 2 of the 3 node(s)" in str(err.value)
    assert "use launcher.nproc=2, add nodes, or use SPREAD" in str(err.value)
    rc.check_fits(GPU_NODES, {"CPU": 1.0}, 3, "STRICT_SPREAD", "head:6379")  # CPU-only ranks fit the head too


def test_more_ranks_than_the_cluster_holds_says_its_capacity():
    with pytest.raises(LaunchError, match=r"launcher.nproc=9 ranks of \{CPU: 1, GPU: 1\} do not fit .* at most 8"):
        rc.check_fits(GPU_NODES, {"CPU": 1.0, "GPU": 1.0}, 9, "PACK", "head:6379")
    rc.check_fits(GPU_NODES, {"CPU": 1.0, "GPU": 1.0}, 8, "SPREAD", "head:6379")


def _landed(*nodes: str) -> list[dict]:
    return [
        {
            "node_id": n,
            "ip": f"10.0.0.{n[-1]}",
            "host": f"h{n[-1]}",
            "gpu_ids": [str(i)],
            "free_port": 29400 + i,
            "worker_port": 30000 + i,
        }
        for i, n in enumerate(nodes)
    ]


def test_ranks_are_contiguous_per_node_and_rank_0_sits_on_the_first_bundles_node():
    placed = _landed("n2", "n1", "n2", "n1")  # SPREAD alternates nodes bundle by bundle
    slots = rc.plan(placed)
    assert [(s.bundle_index, s.rank, s.local_rank, s.node_rank) for s in slots] == [
        (0, 0, 0, 0),
        (2, 1, 1, 0),
        (1, 2, 0, 1),
        (3, 3, 1, 1),
    ]
    envs = rc.cluster_envs(slots, placed)
    assert [e.rank for e in envs] == [0, 1, 2, 3]
    # Rank 0's actor (bundle 0) picked the rendezvous port; each rank has its own worker address.
    assert {(e.master_addr, e.master_port, e.world_size, e.num_nodes) for e in envs} == {("10.0.0.2", 29400, 4, 2)}
    assert envs[0].hosts == ("10.0.0.2", "10.0.0.1") and envs[0].source == "ray"
    assert envs[0].worker_addresses == ("10.0.0.2:30000", "10.0.0.2:30002", "10.0.0.1:30001", "10.0.0.1:30003")
    assert envs[2].torchrun_vars() | {"MASTER_PORT": "x"} == {
        "RANK": "2",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "4",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.2",
        "MASTER_PORT": "x",
    }


def test_ranks_of_a_node_see_all_its_gpus_in_local_rank_order():
    placed = _landed("n1", "n2", "n1")  # bundle 0 got GPU 0, bundle 2 got GPU 2, both on n1
    slots = rc.plan(placed)
    assert rc.visible_gpus(slots, placed) == {0: "0,2", 1: "0,2", 2: "1"}
    assert rc.visible_gpus(slots, [dict(p, gpu_ids=[]) for p in placed]) == {}
