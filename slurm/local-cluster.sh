#!/usr/bin/env bash
# local-cluster.sh: start, stop or inspect a real SLURM cluster on this one machine.
#
# This is for scaletrain's tests and CI, and for trying scaletrain locally. It is NOT a way to
# set up a production cluster. It uses Debian 12 (bookworm) packages and runs as root. It does
# not need systemd, docker or cgroups.
#
#   sudo bash slurm/local-cluster.sh start    # install what is missing, configure, start (idempotent)
#   sudo bash slurm/local-cluster.sh stop     # cancel jobs, stop only the daemons this script started
#   bash slurm/local-cluster.sh status        # sinfo + squeue
#
# What `start` brings up:
#   munged; MariaDB + slurmdbd, so `sacct` works; slurmctld; and two compute nodes, n1 and n2.
#   n1 and n2 are two slurmd processes on this machine (Debian builds Slurm with multiple-slurmd
#   support). Each slurmd runs in its own UTS namespace, so `hostname` inside a job prints n1 or n2.
#   Each node declares CPUs=4 whatever the real core count is (SlurmdParameters=config_overrides).
#   Partitions: `debug` (default) and `urgent`. A job in `urgent` preempts and requeues `debug`
#   jobs. The timers are tuned for fast tests: a requeued job starts again after about 6 s, and the
#   scheduler runs every second.
#   `start` returns once sinfo shows both nodes idle. If they are not idle within
#   SLURM_START_TIMEOUT seconds, it exits non-zero and prints the log tails.
#   If the cluster is already up and healthy with the same config, `start` does nothing.
#
# Environment knobs:
#   SLURM_WITH_DBD=1          1: MariaDB + slurmdbd (full sacct). 0: no database, only jobcomp/filetxt (`sacct -c`)
#   SLURM_START_TIMEOUT=60    seconds to wait for each daemon and for the nodes to become idle
#   SLURM_FRESH=1             1: on a real (re)start, wipe the controller state and the accounting DB (job ids restart at 1)
#   SLURM_SKIP_INSTALL=0      1: never run apt-get
#
# State left behind after `stop`: the packages, /etc/slurm/*, /var/spool/slurm*, /var/log/slurm,
# /var/lib/mysql and a "127.0.0.1 n1 n2" line in /etc/hosts.
set -euo pipefail
# Shell gotcha: with pipefail, `cmd | grep -q` fails at random, because grep exits early and
# cmd dies of SIGPIPE. This script captures command output in a variable and matches on that.

ACTION=${1:-start}
WITH_DBD=${SLURM_WITH_DBD:-1}
TIMEOUT=${SLURM_START_TIMEOUT:-60}
FRESH=${SLURM_FRESH:-1}
SKIP_INSTALL=${SLURM_SKIP_INSTALL:-0}

NODES=(n1 n2)
NODE_RANGE="n[1-2]"
CPUS_PER_NODE=4
MEM_PER_NODE=4000        # MB, declared (config_overrides: not checked against the hardware)
CLUSTER=localcluster
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm
CTLD_STATE=/var/spool/slurmctld
SLURMD_SPOOL=/var/spool/slurmd
RUN_DIR=/run/local-slurm            # pid files, plus the list of daemons this script started
STARTED=$RUN_DIR/started
DB_PASS=slurmpw                     # local MariaDB account for slurmdbd; it is reachable only through localhost

log() { echo "[local-cluster $(date +%T)] $*"; }
die() { echo "[local-cluster] ERROR: $*" >&2; exit 1; }

wait_for() {  # wait_for <seconds> <description> <command...>: poll until the command succeeds
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then
      echo "[local-cluster] ERROR: timed out after ${t}s waiting for $what; log tails follow" >&2
      dump_logs
      die "timed out after ${t}s waiting for $what (logs: $LOG_DIR; what did start is still running: 'bash $0 stop' stops it)"
    fi
    sleep 0.2
  done
}

dump_logs() {
  local f
  for f in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd-n*.log "$LOG_DIR"/slurmdbd.log "$LOG_DIR"/mariadbd.out; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f ----" >&2
    tail -n 15 "$f" >&2 || true
  done
  if command -v sinfo >/dev/null 2>&1; then
    echo "---- sinfo -N -l ----" >&2
    sinfo -N -l >&2 2>&1 || true
  fi
}

mark_started() { echo "$1" >> "$STARTED"; }
was_started() { [ -f "$STARTED" ] && grep -qx "$1" "$STARTED"; }

# ---- health checks (each one captures output before matching, see the gotcha above) ----
munge_ok() { local c; c=$(munge -n 2>/dev/null) && [ -n "$c" ] && unmunge <<<"$c" >/dev/null 2>&1; }
ctld_up() { local out; out=$(scontrol ping 2>/dev/null) || return 1; [[ $out == *" is UP"* ]]; }
idle_node_count() { local out; out=$(sinfo -h -N -t idle -o %N 2>/dev/null) || { echo 0; return; }; sort -u <<<"$out" | grep -c . || true; }
all_nodes_idle() { [ "$(idle_node_count)" -ge "${#NODES[@]}" ]; }
# responding and not down/drained/failed; allocated or mixed nodes (running jobs) count as healthy
healthy_node_count() {
  local out; out=$(sinfo -h -N -r -o '%N %t' 2>/dev/null) || { echo 0; return; }
  awk '$2 !~ /^(down|drain|drng|drained|fail|failg|unk|boot)/ {print $1}' <<<"$out" | sort -u | grep -c . || true
}
dbd_listening() { (: </dev/tcp/127.0.0.1/6819) 2>/dev/null; }
cluster_registered() { local out; out=$(sacctmgr -n -P list cluster format=cluster 2>/dev/null) || return 1; [[ $out == *"$CLUSTER"* ]]; }

pidfile_of() {
  case $1 in
    slurmd-*)  echo "$RUN_DIR/$1.pid" ;;
    slurmctld) echo "$RUN_DIR/slurmctld.pid" ;;
    slurmdbd)  echo "$RUN_DIR/slurmdbd.pid" ;;
    mariadb)   echo /run/mysqld/mysqld.pid ;;
    munge)     echo /run/munge/munged.pid ;;
  esac
}
alive() { local pf; pf=$(pidfile_of "$1"); [ -s "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; }

# ---- install ----
PKGS=(slurmctld slurmd slurm-client munge)
install_pkgs() {
  [ "$SKIP_INSTALL" = 1 ] && return 0
  local pkgs=("${PKGS[@]}") p missing=()
  [ "$WITH_DBD" = 1 ] && pkgs+=(slurmdbd mariadb-server)
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ "${#missing[@]}" = 0 ]; then log "packages already installed"; return 0; fi
  command -v apt-get >/dev/null || die "missing packages: ${missing[*]}, and no apt-get (this script needs Debian 12)"
  export DEBIAN_FRONTEND=noninteractive
  local apt_install=(apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0)
  # `apt-get update` only when needed: there are no package lists (a fresh container), or the
  # install fails with the lists we have (stale lists point at files the mirror no longer has).
  # apt/dpkg chatter goes to a file; it is shown only if the install fails
  local apt_log; apt_log=$(mktemp /tmp/local-cluster-apt.XXXXXX)
  log "installing: ${missing[*]}"
  if compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null && "${apt_install[@]}" "${missing[@]}" >"$apt_log" 2>&1; then
    rm -f "$apt_log"
    return 0
  fi
  log "running apt-get update first"
  if ! { apt-get update -qq && "${apt_install[@]}" "${missing[@]}"; } >"$apt_log" 2>&1; then
    tail -n 30 "$apt_log" >&2
    die "package installation failed (full output: $apt_log)"
  fi
  rm -f "$apt_log"
}

# ---- config ----
slurm_conf() {  # print slurm.conf to stdout
  local host=$1 acct n i=0
  if [ "$WITH_DBD" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/none"
  else
    acct="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG_DIR/jobcomp.log"
  fi
  cat <<EOF
# Generated by scaletrain's slurm/local-cluster.sh: one machine, two slurmd (multiple-slurmd mode).
# For tests and local experiments only.
ClusterName=$CLUSTER
# must equal \`hostname -s\`; the (address) part avoids a DNS lookup
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job waits cred_expire+1 s before it may start again (default 120 s; minimum 5; needs a daemon restart)
AuthInfo=cred_expire=5
MailProg=/bin/true
MpiDefault=none
# no cgroups: track processes through /proc, no task binding
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# accept the CPUs/RealMemory declared below even if the hardware has fewer
SlurmdParameters=config_overrides
ReturnToService=2
SchedulerType=sched/backfill
# scan the queue every second (defaults: 60 s / 30 s), so pending and requeued jobs start quickly
SchedulerParameters=sched_interval=1,bf_interval=1
# SIGTERM -> SIGKILL after 2 s instead of 30 s, so tests do not sit on COMPLETING jobs
KillWait=2
SlurmctldPort=6817
SlurmctldPidFile=$RUN_DIR/slurmctld.pid
SlurmdPidFile=$RUN_DIR/slurmd-%n.pid
StateSaveLocation=$CTLD_STATE
SlurmdSpoolDir=$SLURMD_SPOOL/%n
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# real preemption: a job in partition 'urgent' preempts (requeues) jobs of partition 'debug'. The
# victim first gets its --signal (e.g. B:USR1), then SIGTERM after GraceTime (checked every 30 s)
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
$acct
EOF
  for n in "${NODES[@]}"; do
    i=$((i + 1))
    echo "NodeName=$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$((17000 + i)) CPUs=$CPUS_PER_NODE RealMemory=$MEM_PER_NODE State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=$NODE_RANGE Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=10"
  echo "PartitionName=urgent Nodes=$NODE_RANGE MaxTime=INFINITE State=UP PriorityTier=2"
}

slurmdbd_conf() {
  cat <<EOF
# Generated by scaletrain's slurm/local-cluster.sh. For tests and local experiments only.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$LOG_DIR/slurmdbd.log
PidFile=$RUN_DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
}

write_configs() {
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$CTLD_STATE" "$RUN_DIR"
  local n
  for n in "${NODES[@]}"; do mkdir -p "$SLURMD_SPOOL/$n"; done
  printf '%s\n' "$NEW_SLURM_CONF" > "$CONF_DIR/slurm.conf"
  if [ "$WITH_DBD" = 1 ]; then
    (umask 077 && slurmdbd_conf > "$CONF_DIR/slurmdbd.conf")
    chmod 600 "$CONF_DIR/slurmdbd.conf"   # slurmdbd refuses a file that others can read
  fi
  # make the node names resolvable (jobs may look up their own hostname). Rewrite the file in
  # place rather than with sed -i, because /etc/hosts may be a bind mount.
  local want="127.0.0.1 ${NODES[*]} # local-slurm nodes" hosts
  hosts=$(cat /etc/hosts)
  if ! grep -qxF "$want" <<<"$hosts"; then
    hosts=$(grep -v '# local-slurm nodes$' <<<"$hosts" || true)
    printf '%s\n%s\n' "$hosts" "$want" > /etc/hosts
  fi
}

# ---- daemons ----
start_munge() {
  if munge_ok; then log "munged already running"; return 0; fi
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 755 /run/munge
  runuser -u munge -- /usr/sbin/munged
  mark_started munge
  wait_for "$TIMEOUT" munged munge_ok
}

start_db() {
  [ "$WITH_DBD" = 1 ] || return 0
  if mysqladmin ping >/dev/null 2>&1; then
    log "MariaDB/MySQL already running"
  else
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      --socket=/run/mysqld/mysqld.sock >"$LOG_DIR/mariadbd.out" 2>&1 < /dev/null &
    mark_started mariadb
    wait_for "$TIMEOUT" MariaDB mysqladmin ping
  fi
  [ "$FRESH" = 1 ] && mysql -u root -e "DROP DATABASE IF EXISTS slurm_acct_db"
  mysql -u root <<EOF
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
  /usr/sbin/slurmdbd
  mark_started slurmdbd
  wait_for "$TIMEOUT" "slurmdbd on 127.0.0.1:6819" dbd_listening
}

start_slurm() {
  [ "$FRESH" = 1 ] && rm -rf "${CTLD_STATE:?}"/* "${SLURMD_SPOOL:?}"/n*/*
  /usr/sbin/slurmctld
  mark_started slurmctld
  wait_for "$TIMEOUT" slurmctld ctld_up
  local n use_uts=1
  if ! unshare --uts true 2>/dev/null; then
    use_uts=0
    log "WARNING: 'unshare --uts' is not permitted here; \`hostname\` inside jobs will print $(hostname) instead of n1/n2"
  fi
  for n in "${NODES[@]}"; do
    if [ "$use_uts" = 1 ]; then
      # own UTS namespace, so `hostname` inside jobs on this node prints the node name
      unshare --uts sh -c "hostname $n && exec /usr/sbin/slurmd -N $n"
    else
      /usr/sbin/slurmd -N "$n"
    fi
    mark_started "slurmd-$n"
  done
  wait_for "$TIMEOUT" "nodes ${NODES[*]} to be idle in sinfo" all_nodes_idle
  if [ "$WITH_DBD" = 1 ]; then
    wait_for "$TIMEOUT" "cluster $CLUSTER to be registered in slurmdbd" cluster_registered
  fi
}

# Is the instance this script started still complete and usable, with the config we would write now?
running_and_current() {
  [ -f "$STARTED" ] || return 1
  [ -f "$CONF_DIR/slurm.conf" ] && [ "$(cat "$CONF_DIR/slurm.conf")" = "$NEW_SLURM_CONF" ] || return 1
  local n
  alive slurmctld || return 1
  for n in "${NODES[@]}"; do alive "slurmd-$n" || return 1; done
  if [ "$WITH_DBD" = 1 ]; then
    { alive slurmdbd || dbd_listening; } || return 1
    # slurmdbd outlives a dead MariaDB and keeps answering on its port; accounting then silently stops
    mysqladmin ping >/dev/null 2>&1 || { log "MariaDB is not answering"; return 1; }
    cluster_registered || return 1
  fi
  munge_ok && ctld_up && [ "$(healthy_node_count)" -ge "${#NODES[@]}" ]
}

stop_group() {  # SIGTERM each listed daemon that this script started (by the PID in its pid file), then wait
  local name pf pid pids=""
  for name in "$@"; do
    was_started "$name" || continue
    pf=$(pidfile_of "$name")
    [ -s "$pf" ] || continue
    pid=$(cat "$pf")
    kill -0 "$pid" 2>/dev/null || continue
    log "stopping $name (pid $pid)"
    kill "$pid" 2>/dev/null || true
    pids="$pids $pid"
  done
  for pid in $pids; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then log "pid $pid still alive after 10 s, sending SIGKILL"; kill -9 "$pid" 2>/dev/null || true; fi
  done
  return 0
}

do_stop() {
  if [ ! -f "$STARTED" ]; then log "nothing started by this script is running"; return 0; fi
  if ctld_up; then
    # cancel every job first, so that slurmd cleans up the job steps
    local jobs
    jobs=$(squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      log "cancelling jobs: ${jobs//$'\n'/ }"
      # shellcheck disable=SC2086
      scancel --quiet $jobs 2>/dev/null || true
      for _ in $(seq 1 50); do [ -z "$(squeue -h 2>/dev/null || true)" ] && break; sleep 0.2; done
    fi
  fi
  local n slurmds=()
  for n in "${NODES[@]}"; do slurmds+=("slurmd-$n"); done
  stop_group "${slurmds[@]}" slurmctld
  stop_group slurmdbd
  stop_group mariadb munge
  rm -f "$STARTED"
  log "stopped"
}

do_start() {
  [ "$(id -u)" = 0 ] || die "run as root (sudo bash $0 start)"
  local t0=$SECONDS install_s t1
  install_pkgs
  install_s=$((SECONDS - t0))
  NEW_SLURM_CONF=$(slurm_conf "$(hostname -s)")
  if running_and_current; then
    log "cluster already running (started by this script, same config): nothing to do"
    sinfo -N -l
    return 0
  fi
  if [ -f "$STARTED" ]; then log "previous instance is incomplete or its config changed: restarting it"; do_stop; fi
  t1=$SECONDS
  write_configs
  start_munge
  start_db
  start_slurm
  log "cluster up: install ${install_s} s, configure+start $((SECONDS - t1)) s"
  sinfo -N -l
}

case $ACTION in
  start)  do_start ;;
  stop)
    [ "$(id -u)" = 0 ] || die "run as root (sudo bash $0 stop)"
    do_stop
    ;;
  status)
    command -v sinfo >/dev/null || die "sinfo not found: the slurm packages are not installed (run: bash $0 start)"
    ctld_up || die "slurmctld is not responding (run: bash $0 start)"
    sinfo -N -l
    squeue
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
