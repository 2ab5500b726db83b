#!/usr/bin/env bash
# scaletrain's test network: N "hosts" on this one Linux machine, each a network namespace with its own address,
# hostname and /etc/hosts, all on one bridge with no route out. Needs root and iproute2 (ip, tc); see NETWORK.md.
#
#   tests/netns.sh up N           N hosts st-h0..st-h{N-1} at 10.213.0.1..N/24 (idempotent: converges to exactly N)
#   tests/netns.sh down           remove everything (ends whatever still runs in the namespaces); safe when nothing exists
#   tests/netns.sh exec I CMD...  run CMD in host I, with the hostname st-hI (its own UTS namespace)
#   tests/netns.sh shape I RATE [delay D] [loss P]
#                                 cap host I's link at RATE (tbf, e.g. 200mbit) both ways; delay/loss need netem
#   tests/netns.sh shape I off    remove the shaping
#   tests/netns.sh cut I          pull host I's cable (its bridge-side veth down: packets vanish, like a real cut)
#   tests/netns.sh heal I         plug it back in
#   tests/netns.sh status         hosts, addresses, links, qdiscs, and whether netem exists in this kernel
#
# Layout of host I: namespace st-hI; veth pair st-vI (root namespace, on bridge st-br0) <-> st-eI (in st-hI) holding
# 10.213.0.(I+1)/24; loopback up; IPv6 off on the test links. The bridge has no address, and IPv6 is off on it, so
# nothing in the namespaces can reach the root namespace or beyond. /etc/netns/st-hI/ overlays /etc/hosts (the stock
# Debian line "127.0.1.1 st-hI" plus the other hosts' names), /etc/hostname, and /etc/resolv.conf (no name server,
# so no lookup leaves the host) for every command started with `ip netns exec st-hI`.
set -euo pipefail

BR=st-br0
NET=10.213.0
PREFIX=st-h
BURST=${ST_BURST:-64kb}  # tbf bucket; raise it for rates well above 1gbit

die() { echo "netns.sh: $*" >&2; exit 2; }
ns() { echo "$PREFIX$1"; }
host_veth() { echo "st-e$1"; }     # inside the namespace
bridge_veth() { echo "st-v$1"; }   # root namespace, enslaved to the bridge
address() { echo "$NET.$(( $1 + 1 ))"; }
need_root() { [ "$(id -u)" = 0 ] || die "needs root (ip netns, ip link, tc)"; }
need_index() { [[ "${1:-}" =~ ^[0-9]+$ ]] || die "'${1:-}' is not a host index (0, 1, ...)"; }
need_host() { need_index "$1"; ip netns list | grep -qw "$(ns "$1")" || die "host $1 ($(ns "$1")) is not up; run: $0 up N"; }
ipv6_off() { local f="/proc/sys/net/ipv6/conf/$1/disable_ipv6"; if [ -w "$f" ]; then echo 1 > "$f"; fi; }

existing_hosts() {  # the indices of the namespaces that exist, ascending
  ip netns list | awk '{print $1}' | sed -n "s/^$PREFIX\([0-9][0-9]*\)$/\1/p" | sort -n
}

remove_host() {
  local i=$1 name pids
  name=$(ns "$i")
  if ip netns list | grep -qw "$name"; then
    pids=$(ip netns pids "$name" 2>/dev/null || true)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(ip netns pids "$name" 2>/dev/null || true)
        [ -z "$pids" ] && break
        sleep 0.3
      done
      # shellcheck disable=SC2086
      [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$name" 2>/dev/null || true  # also deletes st-eI and so its peer st-vI
  fi
  ip link del "$(bridge_veth "$i")" 2>/dev/null || true
  rm -rf "/etc/netns/$name"
}

write_etc() {  # /etc overlays for host I of N
  local i=$1 n=$2 dir j
  dir="/etc/netns/$(ns "$i")"
  mkdir -p "$dir"
  {
    echo "127.0.0.1	localhost"
    echo "127.0.1.1	$(ns "$i")"  # what Debian's installer writes: the host's own name resolves to loopback
    echo "::1	localhost ip6-localhost ip6-loopback"
    for ((j = 0; j < n; j++)); do
      [ "$j" = "$i" ] || echo "$(address "$j")	$(ns "$j")"
    done
  } > "$dir/hosts.tmp"
  mv "$dir/hosts.tmp" "$dir/hosts"
  echo "$(ns "$i")" > "$dir/hostname"
  printf '# scaletrain test network: no name server, so no lookup leaves this host\noptions attempts:1 timeout:1\n' \
    > "$dir/resolv.conf"
}

cmd_up() {
  local n=${1:-} i name
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 250 ] || die "up N: N must be 1..250"
  need_root
  if ! ip link show "$BR" >/dev/null 2>&1; then
    ip link add "$BR" type bridge
  fi
  ipv6_off "$BR"
  ip addr flush dev "$BR"
  ip link set "$BR" up
  for i in $(existing_hosts); do  # converge to exactly N hosts
    if [ "$i" -ge "$n" ]; then remove_host "$i"; fi
  done
  for ((i = 0; i < n; i++)); do
    name=$(ns "$i")
    ip netns list | grep -qw "$name" || ip netns add "$name"
    if ! ip netns exec "$name" ip link show "$(host_veth "$i")" >/dev/null 2>&1; then
      ip link del "$(bridge_veth "$i")" 2>/dev/null || true
      ip link add "$(bridge_veth "$i")" type veth peer name "$(host_veth "$i")" netns "$name"
    fi
    ipv6_off "$(bridge_veth "$i")"
    ip link set "$(bridge_veth "$i")" master "$BR" up
    ip netns exec "$name" sh -c "
      set -e
      ip link set lo up
      [ -w /proc/sys/net/ipv6/conf/$(host_veth "$i")/disable_ipv6 ] &&
        echo 1 > /proc/sys/net/ipv6/conf/$(host_veth "$i")/disable_ipv6 || true
      ip addr flush dev $(host_veth "$i")
      ip addr add $(address "$i")/24 dev $(host_veth "$i")
      ip link set $(host_veth "$i") up
    "
    write_etc "$i" "$n"
  done
  echo "up: $n host(s): $(for ((i = 0; i < n; i++)); do printf '%s=%s ' "$(ns "$i")" "$(address "$i")"; done)"
}

cmd_down() {
  local i
  if [ "$(id -u)" != 0 ]; then echo "down: not root, nothing to do"; return 0; fi
  for i in $(existing_hosts); do remove_host "$i"; done
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^st-v[0-9]+$' || true); do
    ip link del "$link" 2>/dev/null || true
  done
  ip link del "$BR" 2>/dev/null || true
  rm -rf /etc/netns/${PREFIX}[0-9]*
  rmdir /etc/netns 2>/dev/null || true
  echo "down: test network removed"
}

cmd_exec() {
  local i=${1:-}
  need_host "$i"
  shift
  [ $# -ge 1 ] || die "exec I CMD...: no command"
  # shellcheck disable=SC2016  # "$@" is expanded by the inner sh
  exec ip netns exec "$(ns "$i")" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$(ns "$i")" "$@"
}

netem_available() {  # try netem on the loopback of a throwaway namespace
  local probe=st-netem-probe ok=1
  ip netns add "$probe" 2>/dev/null || return 1
  ip netns exec "$probe" tc qdisc add dev lo root netem delay 1ms >/dev/null 2>&1 || ok=0
  ip netns del "$probe" 2>/dev/null || true
  [ "$ok" = 1 ]
}

cmd_shape() {
  local i=${1:-} rate=${2:-} delay="" loss="" dev
  need_root
  need_host "$i"
  [ -n "$rate" ] || die "shape I RATE|off [delay D] [loss P]"
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      delay) delay=${2:?delay needs a value, e.g. 20ms}; shift 2 ;;
      loss) loss=${2:?loss needs a value, e.g. 1%}; shift 2 ;;
      *) die "shape: unknown option '$1' (delay D, loss P)" ;;
    esac
  done
  if [ "$rate" = off ]; then
    tc qdisc del dev "$(bridge_veth "$i")" root 2>/dev/null || true
    ip netns exec "$(ns "$i")" tc qdisc del dev "$(host_veth "$i")" root 2>/dev/null || true
    echo "shape: host $i unshaped"
    return 0
  fi
  if [ -n "$delay$loss" ] && ! netem_available; then
    die "netem is not available in this kernel (no emulated latency or loss here); shape with a rate only"
  fi
  for dev in "$(bridge_veth "$i")" "$(host_veth "$i")"; do
    local run=()
    [ "$dev" = "$(host_veth "$i")" ] && run=(ip netns exec "$(ns "$i")")
    "${run[@]}" tc qdisc del dev "$dev" root 2>/dev/null || true
    "${run[@]}" tc qdisc add dev "$dev" root handle 1: tbf rate "$rate" burst "$BURST" latency 50ms
    if [ -n "$delay$loss" ]; then
      "${run[@]}" tc qdisc add dev "$dev" parent 1:1 handle 10: netem ${delay:+delay "$delay"} ${loss:+loss "$loss"}
    fi
  done
  echo "shape: host $i at $rate both ways${delay:+, delay $delay each way}${loss:+, loss $loss each way}"
}

cmd_cut() { need_root; need_host "${1:-}"; ip link set "$(bridge_veth "$1")" down; echo "cut: host $1 unplugged"; }
cmd_heal() {
  need_root
  need_host "${1:-}"
  ip link set "$(bridge_veth "$1")" master "$BR" up
  echo "heal: host $1 plugged back in"
}

cmd_status() {
  local i name
  if ! ip link show "$BR" >/dev/null 2>&1 && [ -z "$(existing_hosts)" ]; then
    echo "status: test network is down"
  else
    echo "bridge $BR: $(ip -br link show "$BR" 2>/dev/null | awk '{print $2}' || echo missing)"
    for i in $(existing_hosts); do
      name=$(ns "$i")
      echo "$name: $(ip netns exec "$name" ip -br -4 addr show dev "$(host_veth "$i")" 2>/dev/null | awk '{print $1, $2, $3}')," \
        "cable $(ip -br link show "$(bridge_veth "$i")" 2>/dev/null | awk '{print $2}' || echo missing)," \
        "qdisc $(tc qdisc show dev "$(bridge_veth "$i")" root 2>/dev/null | head -1 | cut -d' ' -f2-)," \
        "processes $(ip netns pids "$name" 2>/dev/null | wc -l)"
    done
  fi
  if [ "$(id -u)" = 0 ]; then
    if netem_available; then echo "netem: available (shape ... delay/loss)"; else echo "netem: not in this kernel (rate only)"; fi
  fi
}

sub=${1:-}
[ $# -gt 0 ] && shift
case "$sub" in
  up) cmd_up "$@" ;;
  down) cmd_down ;;
  exec) cmd_exec "$@" ;;
  shape) cmd_shape "$@" ;;
  cut) cmd_cut "$@" ;;
  heal) cmd_heal "$@" ;;
  status) cmd_status ;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
