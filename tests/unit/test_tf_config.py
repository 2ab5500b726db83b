"""TF_CONFIG: built from a ClusterEnv for every launcher, and a handed-in one checked before anything starts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from scaletrain.contract.env import ClusterEnv, detect
from scaletrain.contract.errors import ClusterEnvError, ConfigError
from scaletrain.strategies import tf_config

LOCAL_2 = ClusterEnv(
    rank=1,
    local_rank=1,
    world_size=2,
    local_world_size=2,
    node_rank=0,
    num_nodes=1,
    master_addr="127.0.0.1",
    master_port=29500,
    source="local",
    worker_addresses=("127.0.0.1:41001", "127.0.0.1:41777"),
)


def test_local_launcher_addresses_become_the_worker_list_with_this_rank_as_index():
    config = json.loads(tf_config.for_rank(LOCAL_2).to_json())
    assert config == {
        "cluster": {"worker": ["127.0.0.1:41001", "127.0.0.1:41777"]},
        "task": {"type": "worker", "index": 1},
    }


def test_slurm_hosts_give_one_port_per_task_above_the_master_port():
    environ = {
        "SLURM_PROCID": "3",
        "SLURM_LOCALID": "1",
        "SLURM_NODEID": "1",
        "SLURM_NTASKS": "4",
        "SLURM_STEP_NUM_NODES": "2",
        "SLURM_STEP_TASKS_PER_NODE": "2(x2)",
        "SLURM_STEP_NODELIST": "gpu[07-08]",
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
    }
    env = detect(environ)
    cluster = tf_config.for_rank(env)
    base = env.master_port
    # One port per rank over the whole job: hosts that share an address (several slurmd on one machine) never collide.
    assert cluster.workers == (f"gpu07:{base + 1}", f"gpu07:{base + 2}", f"gpu08:{base + 3}", f"gpu08:{base + 4}")
    assert cluster.task_index == 3


def test_hosts_sharing_an_address_get_distinct_worker_ports():
    """The local SLURM cluster's two nodes are one machine: rank 0 on n1 and rank 1 on n2 must not share a port."""
    environ = {
        "SLURM_PROCID": "1",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "1",
        "SLURM_NTASKS": "2",
        "SLURM_STEP_NUM_NODES": "2",
        "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
        "SLURM_STEP_NODELIST": "n[1-2]",
        "SLURM_JOB_ID": "17",
        "SLURM_STEP_ID": "0",
    }
    ports = [address.rsplit(":", 1)[1] for address in tf_config.for_rank(detect(environ)).workers]
    assert len(set(ports)) == 2


def test_torchrun_on_one_node_derives_ports_from_master_port():
    env = detect({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29600"})
    assert tf_config.worker_addresses(env) == ("10.0.0.5:29601", "10.0.0.5:29602")


def test_several_hosts_without_a_host_list_is_one_sentence():
    env = detect({"RANK": "0", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "h0"})
    with pytest.raises(ClusterEnvError, match="needs the address of each of the 4 ranks") as err:
        tf_config.worker_addresses(env)
    assert "\n" not in str(err.value)


def test_wrong_number_of_launcher_addresses_is_rejected():
    env = dataclasses.replace(LOCAL_2, worker_addresses=("127.0.0.1:1",))
    with pytest.raises(ClusterEnvError, match="1 worker addresses for a world size of 2"):
        tf_config.worker_addresses(env)


def test_parse_accepts_a_tutorial_tf_config_with_a_chief():
    raw = json.dumps(
        {"cluster": {"chief": ["c:2222"], "worker": ["w0:2222", "w1:2222"]}, "task": {"type": "worker", "index": 1}}
    )
    cluster = tf_config.parse(raw)
    assert cluster.workers == ("c:2222", "w0:2222", "w1:2222")
    assert cluster.task_index == 2  # the chief is task 0 of the job


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "TF_CONFIG='{not json' is not JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'has no "cluster" object'),
        ('{"cluster": {"worker": ["h:1"], "ps": ["p:2"]}}', "task type(s) ps, which MultiWorkerMirroredStrategy"),
        ('{"cluster": {"worker": ["h1", "h2:2"]}}', "entry 'h1' is not host:port"),
        ('{"cluster": {"worker": ["h:99999"]}}', "entry 'h:99999' is not host:port"),
        ('{"cluster": {"worker": "h:1"}}', "cluster.worker must be a list of host:port strings"),
        ('{"cluster": {"worker": []}}', "lists no workers"),
        ('{"cluster": {"worker": ["h:1", "h:1"]}}', "lists h:1 more than once"),
        (
            '{"cluster": {"worker": ["h:1", "g:1"]}, "task": {"type": "worker", "index": 2}}',
            "task.index=2 is out of range",
        ),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "evaluator", "index": 0}}', "task.type='evaluator'"),
        ('{"cluster": {"chief": ["a:1", "b:1"]}}', "lists 2 chiefs"),
    ],
)
def test_invalid_tf_config_is_one_sentence_naming_the_problem(raw, message):
    with pytest.raises(ConfigError) as err:
        tf_config.parse(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value) and str(err.value).endswith(".")


def test_a_rank_checks_its_tf_config_against_its_cluster_env():
    tf_config.check_matches(tf_config.for_rank(LOCAL_2), LOCAL_2)
    three = tf_config.TFCluster(("a:1", "b:1", "c:1"), "worker", 1)
    with pytest.raises(ClusterEnvError, match="lists 3 processes but the job has 2 ranks"):
        tf_config.check_matches(three, LOCAL_2)
    with pytest.raises(ClusterEnvError, match="says this process is task 0 but it is rank 1"):
        tf_config.check_matches(tf_config.TFCluster(("a:1", "b:1"), "worker", 0), LOCAL_2)
