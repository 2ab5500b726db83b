"""netcheck: the pair schedule, the verdict, and the agents' real measurements between in-process agents on loopback.

The multi-host behaviour (a Ray cluster across network namespaces, one host's link shaped to a tenth of the others')
is tested in tests/integration/test_network.py.
"""

from __future__ import annotations

import itertools
import json
import logging
from types import SimpleNamespace

import pytest

from scaletrain.contract import config
from scaletrain.contract.errors import ConfigError
from scaletrain.driver import netcheck
from scaletrain.driver.netcheck import Link, judge

HOSTS3 = [{"address": f"10.0.0.{i + 1}", "hostname": f"h{i}"} for i in range(3)]


def links(gbit: dict[tuple[int, int], float], rtt: dict[tuple[int, int], float] | None = None) -> list[Link]:
    rtt = rtt or {}
    return [Link(a, b, v, v, rtt.get((a, b), 2e-4)) for (a, b), v in gbit.items()]


def full(n: int, speed: list[float]) -> dict[tuple[int, int], float]:
    """Every pair at the slower of its two hosts' link speeds."""
    return {(a, b): min(speed[a], speed[b]) for a, b in itertools.combinations(range(n), 2)}


@pytest.mark.parametrize("n", range(1, 9))
def test_rounds_hold_every_pair_once_and_each_host_once_per_round(n):
    rounds = netcheck.rounds(n)
    pairs = [p for r in rounds for p in r]
    assert sorted(pairs) == list(itertools.combinations(range(n), 2))
    for r in rounds:
        hosts = [h for p in r for h in p]
        assert len(hosts) == len(set(hosts))
    assert len(rounds) <= max(n - 1 + n % 2, 0)


def test_a_host_at_a_tenth_of_the_others_is_named_alone():
    report = judge(HOSTS3, links(full(3, [0.5, 0.5, 0.05])))
    assert not report["ok"]
    assert [s["address"] for s in report["slow"]] == ["10.0.0.3"]
    assert report["verdict"].startswith("network check: 1 of 3 hosts slow: 10.0.0.3 (h2): its links carry 0.05 Gbit/s")
    assert "10% of the other hosts' median 0.5 Gbit/s" in report["verdict"]
    assert "10.0.0.1" not in report["verdict"] and "10.0.0.2" not in report["verdict"]
    assert [h["gbit_per_s"] for h in report["hosts"]] == [0.5, 0.5, 0.05]  # each host: its best pair


def test_even_hosts_and_noise_below_the_ratio_name_nobody():
    report = judge(HOSTS3, links(full(3, [0.5, 0.45, 0.3])))  # 0.3 is 63 % of 0.475: not below half
    assert report["ok"] and report["slow"] == []
    assert report["verdict"].startswith(
        "network check: no slow host among 3 (even: 0.3–0.45 Gbit/s, round trips 0.2 ms)"
    )


def test_many_hosts_two_slow():
    speeds = [10, 10, 1, 10, 10, 2]
    hosts = [{"address": f"h{i}", "hostname": None} for i in range(6)]
    report = judge(hosts, links(full(6, speeds)))
    assert [s["address"] for s in report["slow"]] == ["h2", "h5"]
    assert report["verdict"].startswith("network check: 2 of 6 hosts slow: h2: its links carry 1 Gbit/s, 10% of the")


def test_expected_bandwidth_names_hosts_below_it_and_allows_ten_percent():
    assert judge(HOSTS3, links(full(3, [0.95, 0.95, 0.95])), expect_gbit=1.0)["ok"]
    report = judge(HOSTS3, links(full(3, [0.8, 0.8, 0.8])), expect_gbit=1.0)
    assert [s["address"] for s in report["slow"]] == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert "below the 1 Gbit/s expected" in report["verdict"]


def test_two_hosts_cannot_tell_which_end_is_slow():
    hosts = HOSTS3[:2]
    assert judge(hosts, links({(0, 1): 0.05}))["ok"]  # no ratio with one link
    report = judge(hosts, links({(0, 1): 0.05}), expect_gbit=0.2)
    assert not report["ok"]
    assert (
        "the link between 10.0.0.1 (h0) and 10.0.0.2 (h1) carries 0.05 Gbit/s, below the 0.2 Gbit/s expected"
        in (report["verdict"])
    )


def test_a_pair_is_its_slower_direction():
    report = judge(HOSTS3, [Link(0, 1, 1.0, 1.0, 1e-4), Link(0, 2, 1.0, 0.05, 1e-4), Link(1, 2, 1.0, 0.05, 1e-4)])
    assert [s["address"] for s in report["slow"]] == ["10.0.0.3"]  # host 2 sends slowly: its uplink


def test_an_unreachable_host_is_named_with_the_error():
    broken = [Link(0, 1, 1.0, 1.0, 1e-4), Link(0, 2, error="h0 -> h2: timed out"), Link(1, 2, error="h1 -> h2: x")]
    report = judge(HOSTS3, broken)
    assert [s["address"] for s in report["slow"]] == ["10.0.0.3"]
    assert "10.0.0.3 (h2): could not be reached (h0 -> h2: timed out)" in report["verdict"]


def test_long_round_trips_are_named_only_when_clearly_longer():
    rtt = {(0, 1): 2e-4, (0, 2): 5e-3, (1, 2): 5e-3}
    report = judge(HOSTS3, links(full(3, [1, 1, 1]), rtt))
    assert [s["address"] for s in report["slow"]] == ["10.0.0.3"]
    assert "its round trips take 5 ms against the others' 0.2 ms" in report["verdict"]
    noisy = {(0, 1): 2e-4, (0, 2): 6e-4, (1, 2): 6e-4}  # 3x, but not 1 ms longer: scheduling noise
    assert judge(HOSTS3, links(full(3, [1, 1, 1]), noisy))["ok"]


def test_the_verdict_carries_the_allreduce_fit():
    fit = {"alpha_s": 1.5e-4, "bandwidth_gbit_per_s": 0.48}
    report = judge(HOSTS3, links(full(3, [0.5] * 3)), fit)
    assert report["verdict"].endswith("; a ring all-reduce over the 3 hosts fits α = 150 µs and 0.48 Gbit/s")
    assert "the all-reduce failed (x)" in judge(HOSTS3, links(full(3, [0.5] * 3)), {"error": "x"})["verdict"]


def test_sizes_parse_with_units():
    assert netcheck._sizes("16K,256k,2M,1MiB,4096") == (16384, 262144, 2097152, 1048576, 4096)


# --- real agents on loopback --------------------------------------------------------------------------------------


@pytest.fixture
def agents():
    started = [netcheck.Agent("127.0.0.1", 0, advertise="127.0.0.1") for _ in range(3)]
    yield started
    for a in started:
        a.close()


QUICK = netcheck.Options(nbytes=2**20, cap_s=0.5, pings=5, sizes=(4096, 65536, 262144), repeats=2)


def test_agents_time_every_pair_and_a_correct_ring_allreduce(agents):
    fleet = netcheck.TcpFleet([f"127.0.0.1:{a.port}" for a in agents])
    report = netcheck.check(fleet, QUICK)
    assert len(report["links"]) == 3
    for link in report["links"]:
        assert link["error"] is None and link["a_to_b_gbit_per_s"] > 0 and link["b_to_a_gbit_per_s"] > 0
        assert 0 < link["rtt_s"] < 0.5
    ar = report["allreduce"]
    assert ar["sum_ok"] and ar["devices"] == 3 and len(ar["median_time_s"]) == 3
    assert ar["beta_s_per_byte"] >= 0 and ar["alpha_s"] >= 0
    assert report["verdict"].startswith("network check:")


def test_the_bandwidth_cap_bounds_a_transfer(agents):
    got = agents[0].bandwidth("127.0.0.1", agents[1].port, 64 * 2**30, 0.3)  # 64 GiB, capped at 0.3 s
    assert got["capped"] and 0.25 < got["seconds"] < 1.0 and got["gbit_per_s"] > 0


def test_an_agent_that_is_gone_is_an_error_not_a_hang(agents):
    port = agents[2].port
    agents[2].close()
    assert "error" in agents[0].bandwidth("127.0.0.1", port, 2**20, 0.5)
    assert "error" in agents[0].latency("127.0.0.1", port, 3)


def test_main_with_hosts_prints_the_verdict_and_writes_json(agents, tmp_path, capsys):
    out = tmp_path / "nc.json"
    hosts = ",".join(f"127.0.0.1:{a.port}" for a in agents)
    code = netcheck.main(
        [
            "--hosts",
            hosts,
            "--bytes",
            "1M",
            "--cap-s",
            "0.5",
            "--pings",
            "3",
            "--allreduce-sizes",
            "4K,64K",
            "--repeats",
            "1",
            "--json",
            str(out),
        ]
    )
    verdict = capsys.readouterr().out.strip()
    report = json.loads(out.read_text())
    assert report["verdict"] == verdict and code == (0 if report["ok"] else 1)
    assert [h["address"] for h in report["hosts"]] == ["127.0.0.1"] * 3


def test_main_says_when_no_agent_answers(capsys):
    assert netcheck.main(["--hosts", "127.0.0.1:1", "--connect-timeout", "2"]) == 2
    assert "no netcheck agent answers at 127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--hosts", "a", "--ratio", "1.5"],
        ["--hosts", "a", "--expect-gbit", "0"],
        ["--hosts", "a", "--allreduce-sizes", "4K"],
    ],
)
def test_bad_options_are_usage_errors(argv):
    with pytest.raises(SystemExit) as exc:
        netcheck.parse_args(argv)
    assert exc.value.code == 2


# --- the preflight hook -------------------------------------------------------------------------------------------


def test_preflight_settings_are_validated():
    assert config.typed(config.PreflightConfig, {"network": True, "network_gbit": 10}, "preflight").network_gbit == 10
    with pytest.raises(ConfigError, match=r"preflight.network_gbit=-1.0 must be positive"):
        config.typed(config.PreflightConfig, {"network_gbit": -1}, "preflight")
    with pytest.raises(ConfigError, match="preflight.netwrk is not a setting of preflight"):
        config.typed(config.PreflightConfig, {"netwrk": True}, "preflight")


def test_preflight_skips_what_is_not_a_ray_cluster(caplog):
    cfg = config.PreflightConfig(network=True)
    with caplog.at_level(logging.INFO, logger="scaletrain"):
        assert netcheck.preflight(SimpleNamespace(preflight=cfg, launcher=SimpleNamespace(name="local"))) is None
        local_ray = SimpleNamespace(name="ray", address=None)
        assert netcheck.preflight(SimpleNamespace(preflight=cfg, launcher=local_ray)) is None
    assert "skipped for launcher=local" in caplog.text and "one host: no link to check" in caplog.text
