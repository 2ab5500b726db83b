"""Which network interface a host's ranks talk over: the one holding this host's address on the route to MASTER_ADDR.

Gloo (and NCCL's bootstrap) otherwise advertise the address this host's *name* resolves to, which on a stock Debian
or Ubuntu host (``127.0.1.1 myhost`` in /etc/hosts) is loopback: every other host is then told to connect to its own
loopback ("Gloo connectFullMesh failed ... Connection refused, remote=[127.0.0.1]"). ``socket_ifname_env`` names
the right interface in GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME, unless the user set them.

How the interface is found, without sending a packet: a UDP socket ``connect``-ed to MASTER_ADDR only asks the
kernel for a route, and ``getsockname`` then gives this host's source address on it; the interface holding that
address (``SIOCGIFADDR`` per interface, else ``ip -o addr``, /proc/net/if_inet6 for IPv6) is the answer.
A loopback master means a one-host job: "lo". When the master's name resolves to loopback *on the master itself*
(the stock /etc/hosts line) in a job of several hosts, loopback cannot be right: the route to another host is used
when one is known, else this host's only non-loopback interface that is up.

When no interface can be told (a name that does not resolve, no route, several candidates), nothing is set and the
one log line says why: the job then behaves exactly as without this module, and the rendezvous reports the real
problem (an unreachable master fails there with its own error).
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

VARIABLES = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")
LOOPBACK = "lo"
_SIOCGIFFLAGS = 0x8913
_SIOCGIFADDR = 0x8915
_IFF_UP = 0x1
_IFF_LOOPBACK = 0x8

# The pick is a per-host fact, logged by each host's first rank. The worker shows ranks > 0 only warnings, so this
# logger passes INFO itself; its records still go to the worker's (root) handler.
log = logging.getLogger("scaletrain.common.netif")
log.setLevel(logging.INFO)


class NoInterface(OSError):
    """No interface of this host could be told for the address; the message says why."""


@dataclass(frozen=True)
class Pick:
    ifname: str
    local_ip: str
    why: str  # ends the log line: why this interface


def resolve(host: str, port: int = 9) -> str:
    """``host``'s first address as getaddrinfo orders them (the one a TCP connect would try first)."""
    host = host.strip().strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise NoInterface(f"{host} does not resolve ({getattr(exc, 'strerror', None) or exc})") from None
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            return sockaddr[0].split("%")[0]
    raise NoInterface(f"{host} resolves to no IPv4 or IPv6 address")


def source_address(ip: str, port: int = 9) -> str:
    """This host's address on its route to ``ip``: a UDP connect asks the kernel for the route and sends nothing."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((ip, port or 9))
        except OSError as exc:
            raise NoInterface(f"this host has no route to {ip} ({exc.strerror or exc})") from None
        return s.getsockname()[0].split("%")[0]


def interface_of(local_ip: str) -> str:
    """The interface holding ``local_ip`` (one of this host's own addresses)."""
    if ipaddress.ip_address(local_ip).is_loopback:
        return LOOPBACK
    for finder in (_ipv4_by_ioctl, _ipv6_from_proc, _from_ip_command):
        name = finder().get(local_ip)
        if name:
            return name
    raise NoInterface(f"no interface of this host holds {local_ip}")


def interface_for(master_addr: str, port: int = 9) -> str:
    """The name of the interface whose address routes to ``master_addr`` (a host name or an IP); "lo" for loopback.

    Raises NoInterface (an OSError) when the name does not resolve or there is no route to it.
    """
    return _route_pick(master_addr, port).ifname


def pick(master_addr: str, port: int = 9, multi_host: bool = False, peers: Iterable[str] = ()) -> Pick:
    """The interface this host's ranks should use, and why. ``multi_host``: the job spans several hosts, so a
    loopback answer is wrong; ``peers``: other hosts' names or addresses, to route to in that case."""
    first = _route_pick(master_addr, port)
    if first.ifname != LOOPBACK or not multi_host:
        return first
    # The master's name is loopback here: this is the master, and its stock /etc/hosts maps its own name there.
    own = first.local_ip
    peers = list(peers)
    loopback_peers = 0
    for peer in peers:
        try:
            p = _route_pick(peer, port, label="")
        except NoInterface:
            continue
        if p.ifname != LOOPBACK:
            why = f"MASTER_ADDR={master_addr} is loopback ({own}) here; this is the route to {peer}"
            return Pick(p.ifname, p.local_ip, why)
        loopback_peers += 1
    if peers and loopback_peers == len(peers):  # e.g. a test cluster whose "nodes" are names for this machine
        return Pick(LOOPBACK, own, f"every host of the job ({', '.join(peers)}) is loopback here: one machine")
    candidates = _up_interfaces()
    if len(candidates) == 1:
        [(name, ip)] = candidates.items()
        why = f"MASTER_ADDR={master_addr} is loopback ({own}) here and {name} is the only other interface up"
        return Pick(name, ip, why)
    listed = ", ".join(f"{n} ({ip})" for n, ip in sorted(candidates.items())) or "none"
    raise NoInterface(
        f"MASTER_ADDR={master_addr} resolves to loopback ({own}) on this host, yet the job spans several hosts, "
        f"and the interfaces up here are {listed}"
    )


def socket_ifname_env(
    environ: Mapping[str, str],
    master_addr: str | None = None,
    port: int | None = None,
    multi_host: bool = False,
    peers: Iterable[str] = (),
    announce: bool = True,
) -> dict[str, str]:
    """``{"GLOO_SOCKET_IFNAME": name, "NCCL_SOCKET_IFNAME": name}`` for the interface that reaches the master
    (``master_addr``, else $MASTER_ADDR), minus any of the two the user set already (non-empty): theirs are kept.
    {} when both are set, or when no interface can be told (then the libraries' own default applies). With
    ``announce``, one log line says which interface and why."""
    user = {k: environ[k] for k in VARIABLES if environ.get(k, "").strip()}
    missing = [k for k in VARIABLES if k not in user]
    if not missing:
        _say(announce, "network: keeping your " + ", ".join(f"{k}={v}" for k, v in user.items()))
        return {}
    master = master_addr or environ.get("MASTER_ADDR", "").strip()
    if not master:
        _say(announce, "network: no MASTER_ADDR, so no interface picked; gloo/NCCL choose by this host's name")
        return {}
    if port is None:
        raw = environ.get("MASTER_PORT", "")
        port = int(raw) if raw.isdigit() and 0 < int(raw) < 65536 else 9
    try:
        chosen = pick(master, port, multi_host=multi_host, peers=peers)
    except NoInterface as exc:
        _say(
            announce,
            f"network: no interface picked ({exc}); gloo/NCCL choose by this host's name. Set GLOO_SOCKET_IFNAME "
            "(and NCCL_SOCKET_IFNAME) to the interface the hosts reach each other on if the ranks cannot connect",
        )
        return {}
    chosen_env = {k: chosen.ifname for k in missing}
    kept = "".join(f"; keeping your {k}={v}" for k, v in user.items())
    _say(
        announce,
        f"network: ranks on this host talk over {chosen.ifname} ({chosen.local_ip}): {chosen.why}; "
        + " ".join(f"{k}={v}" for k, v in chosen_env.items())
        + kept,
    )
    return chosen_env


def apply(environ, master_addr: str, port: int | None = None, **kwargs) -> dict[str, str]:
    """``socket_ifname_env`` written into ``environ`` (e.g. os.environ, before init_process_group); what it set."""
    chosen = socket_ifname_env(environ, master_addr, port, **kwargs)
    environ.update(chosen)
    return chosen


def _say(announce: bool, line: str) -> None:
    if announce:
        log.info("%s", line)


def _route_pick(host: str, port: int, label: str = "MASTER_ADDR=") -> Pick:
    ip = resolve(host, port or 9)
    if ipaddress.ip_address(ip).is_loopback:
        target = label + (host if host.strip("[]") == ip else f"{host} ({ip})")
        return Pick(LOOPBACK, ip, f"{target} is loopback, so every rank is on this host")
    local_ip = source_address(ip, port)
    name = interface_of(local_ip)
    target = label + (host if host.strip("[]") == ip else f"{host} ({ip})")
    if local_ip == ip:
        return Pick(name, local_ip, f"{target} is this host's own address")
    return Pick(name, local_ip, f"this host's route to {target} leaves through it")


def _ipv4_by_ioctl() -> dict[str, str]:
    """address -> interface for every interface's (primary) IPv4 address."""
    found: dict[str, str] = {}
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        return found
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                raw = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address
                continue
            found.setdefault(socket.inet_ntoa(raw[20:24]), name)
    return found


def _ipv6_from_proc() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        with open("/proc/net/if_inet6") as f:
            lines = f.read().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and len(fields[0]) == 32:
            found.setdefault(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))), fields[5])
    return found


def _from_ip_command() -> dict[str, str]:
    """Every address from ``ip -o addr`` (secondary IPv4 addresses too, which SIOCGIFADDR does not report)."""
    found: dict[str, str] = {}
    ip = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.path.exists(p)), None)
    if ip is None:
        return found
    try:
        out = subprocess.run([ip, "-o", "addr", "show"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return found
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("inet", "inet6"):
            found.setdefault(fields[3].split("/")[0], fields[1].split("@")[0])
    return found


def _up_interfaces() -> dict[str, str]:
    """name -> IPv4 address of every interface that is up, has one, and is not loopback."""
    up: dict[str, str] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for ip, name in _ipv4_by_ioctl().items():
            try:
                raw = fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            flags = struct.unpack("H", raw[16:18])[0]
            if flags & _IFF_UP and not flags & _IFF_LOOPBACK and not ipaddress.ip_address(ip).is_loopback:
                up.setdefault(name, ip)
    return up


def apply_for(env) -> dict[str, str]:
    """``apply`` for a rank of a ClusterEnv, into os.environ before init_process_group: each host's first rank says
    which interface it picked, when the job spans several hosts."""
    multi_host = env.num_nodes > 1
    return apply(os.environ, env.master_addr, env.master_port, multi_host=multi_host, peers=env.hosts,
                 announce=env.local_rank == 0 and multi_host)  # fmt: skip
