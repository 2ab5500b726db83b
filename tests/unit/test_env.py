"""ClusterEnv detection from torchrun, SLURM and plain local environments, and SLURM node lists."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from scaletrain.contract.env import ClusterEnv, detect, expand_hostlist, slurm_master_port
from scaletrain.contract.errors import ClusterEnvError

FIXTURES = Path(__file__).parent / "fixtures"


def _fixture(name: str, **changes: str | None) -> dict[str, str]:
    """A captured-style environment from fixtures/, with variables changed (None removes one)."""
    env = json.loads((FIXTURES / name).read_text())
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _srun_step(**changes: str | None) -> dict[str, str]:
    """Task 3 of `srun` in a 2-node x 2-task sbatch job 4242 on n[1-2]; it runs on n2 as local task 1."""
    return _fixture("slurm_env_srun_2x2_rank3.json", **changes)


# --- torchrun-style ---------------------------------------------------------------------------------


def test_torchrun_reads_every_variable() -> None:
    env = detect(
        {
            "RANK": "5",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "8",
            "LOCAL_WORLD_SIZE": "4",
            "GROUP_RANK": "1",
            "MASTER_ADDR": "10.0.0.7",
            "MASTER_PORT": "29600",
        }
    )
    assert env == ClusterEnv(
        rank=5,
        local_rank=1,
        world_size=8,
        local_world_size=4,
        node_rank=1,
        num_nodes=2,
        master_addr="10.0.0.7",
        master_port=29600,
        source="torchrun",
    )
    assert not env.is_rank_zero


def test_torchrun_defaults_with_only_rank_and_world_size() -> None:
    env = detect({"RANK": "0", "WORLD_SIZE": "2"})
    assert (env.local_rank, env.local_world_size, env.node_rank, env.num_nodes) == (0, 2, 0, 1)
    assert (env.master_addr, env.master_port, env.source) == ("127.0.0.1", 29500, "torchrun")
    assert env.hosts == () and env.job_id is None
    assert env.is_rank_zero


def test_torchrun_node_rank_falls_back_to_node_rank_and_counts_uneven_nodes() -> None:
    env = detect({"RANK": "4", "WORLD_SIZE": "5", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "0", "NODE_RANK": "2"})
    assert (env.node_rank, env.num_nodes) == (2, 3)


def test_torchrun_vars_round_trip_through_detect() -> None:
    env = detect(_srun_step())
    exported = env.torchrun_vars()
    assert exported == {
        "RANK": "3",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "4",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "1",
        "NODE_RANK": "1",
        "MASTER_ADDR": "n1",
        "MASTER_PORT": "19242",
    }
    again = detect(exported)
    assert again == dataclasses.replace(env, source="torchrun", hosts=(), job_id=None)


# --- SLURM ------------------------------------------------------------------------------------------


def test_slurm_srun_step_on_two_nodes() -> None:
    assert detect(_srun_step()) == ClusterEnv(
        rank=3,
        local_rank=1,
        world_size=4,
        local_world_size=2,
        node_rank=1,
        num_nodes=2,
        master_addr="n1",
        master_port=15000 + 4242,
        source="slurm",
        hosts=("n1", "n2"),
        job_id="4242",
    )


def test_slurm_master_addr_and_port_can_be_overridden() -> None:
    env = detect(_srun_step(MASTER_ADDR="10.1.2.3", MASTER_PORT="31000"))
    assert (env.master_addr, env.master_port, env.hosts) == ("10.1.2.3", 31000, ("n1", "n2"))


def test_slurm_step_on_part_of_the_allocation_uses_the_step_nodes() -> None:
    env = detect(
        _srun_step(
            SLURM_JOB_NODELIST="n[1-4]",
            SLURM_JOB_NUM_NODES="4",
            SLURM_STEP_NODELIST="n[3-4]",
            SLURM_NODELIST="n[3-4]",
        )
    )
    assert (env.hosts, env.master_addr, env.num_nodes) == (("n3", "n4"), "n3", 2)


def test_slurm_uneven_tasks_per_node_gives_this_nodes_count() -> None:
    env = detect(
        _srun_step(
            SLURM_NTASKS="7",
            SLURM_PROCID="6",
            SLURM_LOCALID="0",
            SLURM_NODEID="3",
            SLURM_NNODES="4",
            SLURM_STEP_NUM_NODES="4",
            SLURM_STEP_NODELIST="gpu[01-04]",
            SLURM_STEP_TASKS_PER_NODE="2(x3),1",
            SLURM_NTASKS_PER_NODE=None,
        )
    )
    assert (env.local_world_size, env.node_rank, env.num_nodes) == (1, 3, 4)
    assert env.hosts == ("gpu01", "gpu02", "gpu03", "gpu04")


def test_slurm_plain_ntasks_per_node_is_used_without_per_node_lists() -> None:
    env = detect(_srun_step(SLURM_STEP_TASKS_PER_NODE=None, SLURM_TASKS_PER_NODE=None, SLURM_NTASKS_PER_NODE="2"))
    assert env.local_world_size == 2


# Environments captured on the local cluster (slurm/local-cluster.sh) by tests/integration/slurm_jobs.py:
# the batch shell and every srun task of a 2-node job with 1 and with 2 tasks per node.
CAPTURED = FIXTURES / "slurm"


@pytest.mark.parametrize(("shape", "rank"), [("2x1", 0), ("2x1", 1), ("2x2", 0), ("2x2", 1), ("2x2", 2), ("2x2", 3)])
def test_captured_srun_task_environments(shape: str, rank: int) -> None:
    environ = json.loads((CAPTURED / f"srun_{shape}_task{rank}.json").read_text())
    per_node = int(shape.split("x")[1])
    job_id = environ["SLURM_JOB_ID"]
    assert detect(environ) == ClusterEnv(
        rank=rank,
        local_rank=rank % per_node,
        world_size=2 * per_node,
        local_world_size=per_node,
        node_rank=rank // per_node,
        num_nodes=2,
        master_addr="n1",
        master_port=15000 + int(job_id) % 20000,
        source="slurm",
        hosts=("n1", "n2"),
        job_id=job_id,
    )


@pytest.mark.parametrize("shape", ["2x1", "2x2"])
def test_captured_batch_shell_is_one_local_process(shape: str) -> None:
    environ = json.loads((CAPTURED / f"batch_{shape}.json").read_text())
    assert environ["SLURM_PROCID"] == "0" and int(environ["SLURM_NTASKS"]) > 1  # what fooled the old rule
    assert detect(environ).source == "local"
    assert detect(environ).world_size == 1


def test_salloc_shell_is_local_not_slurm() -> None:
    env = detect(_fixture("slurm_env_salloc_shell.json"))
    assert env.source == "local"
    assert (env.rank, env.world_size, env.master_addr, env.master_port) == (0, 1, "127.0.0.1", 29500)


@pytest.mark.parametrize("job_name", ["bash", "interactive"])
def test_srun_inside_salloc_is_slurm(job_name: str) -> None:
    env = detect(_srun_step(SLURM_JOB_NAME=job_name))
    assert (env.source, env.rank, env.world_size) == ("slurm", 3, 4)


def test_torchrun_inside_slurm_wins() -> None:
    worker = _srun_step(
        RANK="6",
        LOCAL_RANK="2",
        WORLD_SIZE="8",
        LOCAL_WORLD_SIZE="4",
        GROUP_RANK="1",
        MASTER_ADDR="n1",
        MASTER_PORT="29400",
    )
    env = detect(worker)
    assert (env.source, env.rank, env.world_size, env.local_world_size) == ("torchrun", 6, 8, 4)
    assert env.master_port == 29400


def test_torchrun_style_worker_of_a_slurm_step_keeps_the_step_hosts() -> None:
    """launcher=slurm's worker: the torchrun variables on top of its srun task's. netif needs the other hosts."""
    torchrun = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
                "MASTER_ADDR": "n1", "MASTER_PORT": "29400"}  # fmt: skip
    env = detect(_srun_step(**torchrun))
    assert (env.source, env.num_nodes, env.hosts) == ("torchrun", 2, ("n1", "n2"))
    # outside a step, or with a node list of another size or that does not parse, nothing is taken from SLURM
    assert detect(_srun_step(**torchrun, SLURM_STEP_ID=None, SLURM_STEPID=None)).hosts == ()
    assert detect(_srun_step(**torchrun, SLURM_STEP_NODELIST="n[1-3]")).hosts == ()
    assert detect(_srun_step(**torchrun, SLURM_STEP_NODELIST="n[1-")).hosts == ()
    assert detect(torchrun).hosts == ()


def test_slurm_master_port_differs_between_jobs_and_stays_in_range() -> None:
    ports = {slurm_master_port(job_id) for job_id in ("4242", "4243", "123456789", "1", "0")}
    assert len(ports) == 5
    assert all(15000 <= port < 35000 for port in ports)
    assert slurm_master_port("4242") == 19242


# --- plain local --------------------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"HOME": "/root", "PATH": "/usr/bin", "LOCAL_RANK": "3"}])
def test_local_without_launcher_variables(environ: dict[str, str]) -> None:
    assert detect(environ) == ClusterEnv(
        rank=0,
        local_rank=0,
        world_size=1,
        local_world_size=1,
        node_rank=0,
        num_nodes=1,
        master_addr="127.0.0.1",
        master_port=29500,
        source="local",
    )


# --- purity -------------------------------------------------------------------------------------------


def test_detect_reads_only_the_mapping_and_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    before = dict(os.environ)
    step = _srun_step()
    frozen = MappingProxyType(dict(step))
    assert detect(frozen).source == "slurm"
    assert detect({}).source == "local"  # RANK in os.environ is not consulted
    assert dict(frozen) == step
    assert dict(os.environ) == before


def test_cluster_env_is_frozen() -> None:
    env = detect({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        env.rank = 1  # type: ignore[misc]


# --- malformed values ---------------------------------------------------------------------------------

TORCHRUN = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "0"}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"RANK": "x"}, "RANK='x' is not an integer"),
        ({"RANK": "1_0"}, "RANK='1_0' is not an integer"),
        ({"RANK": "4"}, "RANK='4' is out of range for WORLD_SIZE=4"),
        ({"RANK": "-1"}, "RANK='-1' is out of range"),
        ({"WORLD_SIZE": "0"}, "WORLD_SIZE='0' is out of range"),
        ({"LOCAL_RANK": "2"}, "LOCAL_RANK='2' is out of range for LOCAL_WORLD_SIZE=2"),
        ({"LOCAL_WORLD_SIZE": "two"}, "LOCAL_WORLD_SIZE='two' is not an integer"),
        ({"GROUP_RANK": "2"}, "GROUP_RANK='2' is out of range"),
        ({"MASTER_PORT": "70000"}, "MASTER_PORT='70000' is out of range"),
        ({"MASTER_PORT": "http"}, "MASTER_PORT='http' is not an integer"),
        ({"MASTER_ADDR": ""}, "MASTER_ADDR='' is empty"),
    ],
)
def test_malformed_torchrun_value_is_named_in_one_sentence(changes: dict[str, str], expected: str) -> None:
    with pytest.raises(ClusterEnvError) as raised:
        detect({**TORCHRUN, **changes})
    _assert_one_sentence(str(raised.value), expected)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"SLURM_PROCID": "abc"}, "SLURM_PROCID='abc' is not an integer"),
        ({"SLURM_PROCID": "4"}, "SLURM_PROCID='4' is out of range for SLURM_NTASKS=4"),
        ({"SLURM_LOCALID": "2"}, "SLURM_LOCALID='2' is out of range"),
        ({"SLURM_NODEID": "2"}, "SLURM_NODEID='2' is out of range for SLURM_STEP_NUM_NODES=2"),
        ({"SLURM_LOCALID": None}, "SLURM_LOCALID is not set"),
        ({"SLURM_STEP_TASKS_PER_NODE": "2(x"}, "SLURM_STEP_TASKS_PER_NODE='2(x' is malformed"),
        ({"SLURM_STEP_NODELIST": ""}, "SLURM_STEP_NODELIST='' is empty"),
        ({"SLURM_STEP_NODELIST": "n[1-2"}, "SLURM_STEP_NODELIST='n[1-2' has unbalanced or nested brackets"),
        ({"SLURM_STEP_NODELIST": "n[2-1]"}, "SLURM_STEP_NODELIST='n[2-1]' has an invalid range '2-1'"),
        ({"SLURM_JOB_ID": "abc"}, "SLURM_JOB_ID='abc' is not an integer"),
    ],
)
def test_malformed_slurm_value_is_named_in_one_sentence(changes: dict[str, str | None], expected: str) -> None:
    with pytest.raises(ClusterEnvError) as raised:
        detect(_srun_step(**changes))
    _assert_one_sentence(str(raised.value), expected)


def test_slurm_without_node_list_or_master_addr_says_what_to_set() -> None:
    env = _srun_step(SLURM_STEP_NODELIST=None, SLURM_NODELIST=None, SLURM_JOB_NODELIST=None)
    with pytest.raises(ClusterEnvError, match="MASTER_ADDR is not set"):
        detect(env)
    assert detect({**env, "MASTER_ADDR": "n1"}).hosts == ()


def _assert_one_sentence(message: str, expected: str) -> None:
    assert message.startswith(expected)
    assert "\n" not in message and message.endswith(".")
    assert "; " in message  # the part after the semicolon says what the value should be


# --- node lists ---------------------------------------------------------------------------------------

HOSTLISTS = [
    ("n1", ["n1"]),
    ("n[1-3]", ["n1", "n2", "n3"]),
    ("gpu[01-03,07]", ["gpu01", "gpu02", "gpu03", "gpu07"]),
    ("a[1-2],b3", ["a1", "a2", "b3"]),
    ("rack[1-2]-node[01-02]", ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]),
    ("n[8-10]", ["n8", "n9", "n10"]),
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("n[1-010]", [f"n{i}" for i in range(1, 11)]),
    ("n[1,3-4],m[07-09]", ["n1", "n3", "n4", "m07", "m08", "m09"]),
    ("a1,a1,b[2,2]", ["a1", "a1", "b2", "b2"]),
    (" n[1-2] , m3 ", ["n1", "n2", "m3"]),
    ("n1 n2\tn3", ["n1", "n2", "n3"]),
    ("a,,b", ["a", "b"]),
]


@pytest.mark.parametrize(("nodelist", "hosts"), HOSTLISTS)
def test_expand_hostlist(nodelist: str, hosts: list[str]) -> None:
    assert expand_hostlist(nodelist) == hosts


def _scontrol_works() -> bool:
    if shutil.which("scontrol") is None:
        return False
    try:
        done = subprocess.run(["scontrol", "show", "hostnames", "n[1-2]"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0 and done.stdout.split() == ["n1", "n2"] and not done.stderr


@pytest.mark.skipif(not _scontrol_works(), reason="needs a working `scontrol show hostnames`")
@pytest.mark.parametrize(("nodelist", "hosts"), HOSTLISTS)
def test_expand_hostlist_agrees_with_scontrol(nodelist: str, hosts: list[str]) -> None:
    done = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=10)
    assert done.stdout.split() == expand_hostlist(nodelist)


@pytest.mark.parametrize(
    ("nodelist", "problem"),
    [
        ("", "names no hosts"),
        (" , ", "names no hosts"),
        ("n[1-2", "has unbalanced or nested brackets"),
        ("n1-2]", "has unbalanced or nested brackets"),
        ("n[[1]]", "has unbalanced or nested brackets"),
        ("n[5-3]", "has an invalid range '5-3'"),
        ("n[]", "has an invalid range ''"),
        ("n[a-b]", "has an invalid range 'a-b'"),
        ("n[1-]", "has an invalid range '1-'"),
        ("n[0-99999999]", "has an invalid range '0-99999999'"),
    ],
)
def test_expand_hostlist_rejects_malformed_lists(nodelist: str, problem: str) -> None:
    with pytest.raises(ClusterEnvError) as raised:
        expand_hostlist(nodelist)
    _assert_one_sentence(str(raised.value), f"nodelist={nodelist!r} {problem}")
