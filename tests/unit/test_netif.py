"""netif: the interface that reaches MASTER_ADDR, for GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME.

Nothing here sends a packet: resolution is of loopback names and literal addresses (or faked), and the route lookup
is a UDP connect, which sends nothing. The real multi-host behaviour is tested in tests/integration/test_network.py.
"""

from __future__ import annotations

import errno
import logging
import socket

import pytest

from scaletrain.common import netif

BOTH = {"GLOO_SOCKET_IFNAME": "lo", "NCCL_SOCKET_IFNAME": "lo"}


@pytest.mark.parametrize("master", ["127.0.0.1", "127.0.1.1", "localhost", "::1", "[::1]"])
def test_a_loopback_master_is_lo(master):
    assert netif.interface_for(master) == "lo"
    assert netif.socket_ifname_env({"MASTER_ADDR": master, "MASTER_PORT": "29500"}) == BOTH


def test_master_addr_argument_wins_over_the_environment():
    assert netif.socket_ifname_env({"MASTER_ADDR": "bad name with spaces"}, master_addr="127.0.0.1") == BOTH


def test_own_address_maps_to_the_interface_holding_it():
    """Every IPv4 address of this host maps back to its interface (SIOCGIFADDR), and routes to itself."""
    found = netif._ipv4_by_ioctl()
    assert found.get("127.0.0.1") == "lo"
    for ip, name in found.items():
        if ip.startswith("127."):
            continue
        assert netif.interface_of(ip) == name
        assert netif.interface_for(ip) == name  # the route to one's own address: that address as source


def test_users_settings_are_kept(caplog):
    env = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "eth7", "NCCL_SOCKET_IFNAME": "ib0"}
    with caplog.at_level(logging.INFO, logger="scaletrain.common.netif"):
        assert netif.socket_ifname_env(env) == {}
    assert "keeping your GLOO_SOCKET_IFNAME=eth7, NCCL_SOCKET_IFNAME=ib0" in caplog.text


def test_only_the_unset_variable_is_filled(caplog):
    env = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "eth7", "NCCL_SOCKET_IFNAME": " "}
    with caplog.at_level(logging.INFO, logger="scaletrain.common.netif"):
        assert netif.socket_ifname_env(env) == {"NCCL_SOCKET_IFNAME": "lo"}  # blank counts as unset
    assert "keeping your GLOO_SOCKET_IFNAME=eth7" in caplog.text


def test_apply_writes_into_the_mapping_and_never_overwrites():
    env = {"GLOO_SOCKET_IFNAME": "eth7"}
    assert netif.apply(env, "127.0.0.1", 29500) == {"NCCL_SOCKET_IFNAME": "lo"}
    assert env == {"GLOO_SOCKET_IFNAME": "eth7", "NCCL_SOCKET_IFNAME": "lo"}


def test_one_line_says_which_interface_and_why(caplog):
    with caplog.at_level(logging.INFO, logger="scaletrain.common.netif"):
        netif.socket_ifname_env({"MASTER_ADDR": "127.0.0.1"})
    (line,) = caplog.messages
    assert line.startswith("network: ranks on this host talk over lo (127.0.0.1): MASTER_ADDR=127.0.0.1 is loopback")
    assert "GLOO_SOCKET_IFNAME=lo NCCL_SOCKET_IFNAME=lo" in line and "\n" not in line


def test_announce_false_is_silent(caplog):
    with caplog.at_level(logging.INFO, logger="scaletrain.common.netif"):
        netif.socket_ifname_env({"MASTER_ADDR": "127.0.0.1"}, announce=False)
    assert caplog.messages == []


def test_logger_passes_info_past_a_warning_only_root():
    """Ranks > 0 log warnings only (worker._setup_logging); the per-host pick line must still get through."""
    assert netif.log.getEffectiveLevel() == logging.INFO


# --- the fallback: when no interface can be told, nothing is set (the libraries' default applies) and a line says why


def test_unresolvable_master_falls_back_with_the_reason(monkeypatch, caplog):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(netif.socket, "getaddrinfo", no_such_name)
    with pytest.raises(netif.NoInterface, match="node-7 does not resolve"):
        netif.interface_for("node-7")
    with caplog.at_level(logging.INFO, logger="scaletrain.common.netif"):
        assert netif.socket_ifname_env({"MASTER_ADDR": "node-7"}) == {}
    assert "no interface picked (node-7 does not resolve (Name or service not known))" in caplog.text
    assert "Set GLOO_SOCKET_IFNAME" in caplog.text


def test_unreachable_master_falls_back_with_the_reason(monkeypatch, caplog):
    class NoRoute(socket.socket):
        def connect(self, address):
            raise OSError(errno.ENETUNREACH, "Network is unreachable")

    monkeypatch.setattr(netif.socket, "socket", NoRoute)
    with pytest.raises(netif.NoInterface, match=r"no route to 10\.213\.0\.9 \(Network is unreachable\)"):
        netif.interface_for("10.213.0.9")
    with caplog.at_level(logging.INFO, logger="scaletrain.common.netif"):
        assert netif.socket_ifname_env({"MASTER_ADDR": "10.213.0.9"}) == {}
    assert "no route to 10.213.0.9" in caplog.text


def test_no_master_addr_sets_nothing():
    assert netif.socket_ifname_env({}) == {}


# --- a multi-host job whose master name is loopback on the master itself (Debian's "127.0.1.1 host0")


def test_multi_host_loopback_master_uses_the_route_to_a_peer(monkeypatch):
    real = netif._route_pick

    def route(host, port, label="MASTER_ADDR="):
        if host == "host1":
            return netif.Pick("eth3", "10.0.0.1", "this host's route to host1 leaves through it")
        return real(host, port, label)

    monkeypatch.setattr(netif, "_route_pick", route)
    chosen = netif.pick("127.0.1.1", 29500, multi_host=True, peers=["127.0.1.1", "host1"])
    assert (chosen.ifname, chosen.local_ip) == ("eth3", "10.0.0.1")
    assert "is loopback (127.0.1.1) here; this is the route to host1" in chosen.why


def test_multi_host_loopback_master_uses_the_only_interface_up(monkeypatch):
    monkeypatch.setattr(netif, "_up_interfaces", lambda: {"eth0": "10.0.0.1"})
    chosen = netif.pick("127.0.1.1", multi_host=True)
    assert (chosen.ifname, chosen.local_ip) == ("eth0", "10.0.0.1")
    assert "eth0 is the only other interface up" in chosen.why


def test_multi_host_loopback_master_with_several_interfaces_falls_back(monkeypatch):
    monkeypatch.setattr(netif, "_up_interfaces", lambda: {"eth0": "10.0.0.1", "eth1": "10.1.0.1"})
    with pytest.raises(netif.NoInterface, match=r"interfaces up here are eth0 \(10.0.0.1\), eth1 \(10.1.0.1\)"):
        netif.pick("127.0.1.1", multi_host=True)
    assert netif.socket_ifname_env({"MASTER_ADDR": "127.0.1.1"}, multi_host=True, announce=False) == {}


def test_one_host_loopback_master_stays_lo(monkeypatch):
    monkeypatch.setattr(netif, "_up_interfaces", lambda: pytest.fail("one host: no need to look further"))
    assert netif.pick("127.0.1.1").ifname == "lo"


def test_multi_host_whose_every_host_is_loopback_here_stays_lo():
    # the local SLURM cluster: nodes n1 and n2 are names for this one machine; no interface but lo joins them
    chosen = netif.pick("127.0.0.1", multi_host=True, peers=["localhost", "127.0.0.1"])
    assert chosen.ifname == "lo" and "one machine" in chosen.why
