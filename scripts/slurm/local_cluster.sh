#!/usr/bin/env bash
# A real SLURM cluster on this machine, for the SLURM tests (and for trying the launcher): munge,
# MariaDB + slurmdbd (accounting: without it the submitit launcher cannot see a cancelled or failed job
# and waits forever), slurmctld and slurmd, all started by hand (no systemd).
#
#   sudo scripts/slurm/local_cluster.sh install          # Debian packages: slurm-wlm munge slurmdbd mariadb-server
#   sudo scripts/slurm/local_cluster.sh start            # one node, this host: writes /etc/slurm/*.conf, starts the daemons
#   sudo scripts/slurm/local_cluster.sh start --nodes 2  # two hosts, node1 and node2 (below)
#   sudo scripts/slurm/local_cluster.sh on node2 CMD...  # run CMD on a host of the two-node cluster
#   sudo scripts/slurm/local_cluster.sh stop             # stops every daemon by the PID this script saved, removes the hosts
#
# Two nodes are two hosts of their own: each a network namespace (`ip netns`) with its own hostname (a
# UTS namespace), its own address on a private subnet ($SUBNET.11, .12, ...), joined to the controller's
# $SUBNET.1 by a veth pair on a bridge, and its own slurmd. Its /etc/hosts (from /etc/netns/NS/hosts)
# names every node, so SLURM_NODELIST, MASTER_ADDR and gloo resolve as on a real cluster. The hosts
# share this machine's CPUs and file system; traffic between them crosses the bridge, not loopback.
#
# Run as root on a throwaway machine (CI, a container): it writes /etc/slurm, /etc/munge and /etc/netns.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/tmp/seq2seq-slurm}
CLUSTER=seq2seq
DB_PASS=seq2seq-local
SUBNET=${SLURM_LOCAL_SUBNET:-10.77.0}  # a /24 of its own for the hosts of the two-node mode
BRIDGE=s2s-br0

log() { echo "[local_cluster] $*" >&2; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "gave up waiting for $what after ${seconds}s; logs are in $STATE/log"
  return 1
}

install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq slurm-wlm munge slurmdbd mariadb-server >/dev/null
}

write_configs() {  # write_configs NODES
  local nodes=$1 host mem cpus node controller=127.0.0.1
  host=$(hostname)
  node=$(slurmd -C | head -n 1)                       # NodeName=... CPUs=... RealMemory=...
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=$mem/RealMemory=$((mem * 9 / 10 / nodes))/" <<<"$node")  # a bit below the total, shared
  if ((nodes > 1)); then  # the same hardware line once per host, each with its name and address
    controller=$SUBNET.1
    node=$(for i in $(seq "$nodes"); do sed "s/^NodeName=[^ ]*/NodeName=node$i NodeAddr=$SUBNET.$((10 + i))/" <<<"$node"; done)
  fi
  mkdir -p /etc/slurm "$STATE"/{log,spool,state}
  for i in $(seq "$nodes"); do mkdir -p "$STATE/spool/node$i"; done
  mkdir -p "$STATE/spool/$host"
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$host($controller)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem * 9 / 10 / cpus))
ReturnToService=2
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd-%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd-%n.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat >/etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
PidFile=$STATE/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
CONF
  chmod 600 /etc/slurm/slurmdbd.conf
}

add_hosts() {  # add_hosts NODES: a bridge at $SUBNET.1, then one namespace host per node on it
  local nodes=$1 i ns
  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Traffic between the hosts is bridged, and a machine whose bridges pass through iptables
  # (bridge-nf-call-iptables) and whose FORWARD policy is DROP (Docker sets it) would drop it.
  if command -v iptables >/dev/null; then iptables -I FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT; fi
  for i in $(seq "$nodes"); do
    ns=s2s-node$i
    ip netns add "$ns"
    ip link add "s2s-node$i" type veth peer name eth0 netns "$ns"
    ip link set "s2s-node$i" master "$BRIDGE" up
    ip -n "$ns" addr add "$SUBNET.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    mkdir -p "/etc/netns/$ns"
    {
      echo "127.0.0.1 localhost"
      echo "$SUBNET.1 $(hostname)"
      for j in $(seq "$nodes"); do echo "$SUBNET.$((10 + j)) node$j"; done
    } >"/etc/netns/$ns/hosts"
  done
}

remove_hosts() {  # every namespace host, its processes, and the bridge, whatever is left of them
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '/^s2s-node/ {print $1}'); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if command -v iptables >/dev/null; then
    while iptables -D FORWARD -i "$BRIDGE" -o "$BRIDGE" -j ACCEPT 2>/dev/null; do :; done
  fi
}

on() {  # on NODE CMD...: run CMD on that host (its network namespace, its hostname, its /etc/hosts)
  local node=$1; shift
  # nsenter, not `ip netns exec`: that one mounts a fresh /sys, without the cgroup file systems slurmd needs.
  exec nsenter --net="/run/netns/s2s-$node" unshare --uts --mount sh -c \
    'hostname "$0" && mount --bind "/etc/netns/s2s-$0/hosts" /etc/hosts && exec "$@"' "$node" "$@"
}

start() {  # start [--nodes N]
  local nodes=1
  if [[ ${1:-} == --nodes ]]; then nodes=${2:?--nodes needs a count}; fi
  write_configs "$nodes"
  # munge: its key, its runtime folder, then the daemon (as the munge user).
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  [[ -s /etc/munge/munge.key ]] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  chown -R munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  chmod 400 /etc/munge/munge.key
  runuser -u munge -- munged --pid-file=/run/munge/munged.pid
  wait_for 20 munge munge -n
  cp /run/munge/munged.pid "$STATE/munged.pid"

  # MariaDB for accounting.
  mkdir -p /run/mysqld "$STATE/mysql" && chown mysql:mysql /run/mysqld "$STATE/mysql"  # written by the mysql user
  [[ -d /var/lib/mysql/mysql ]] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >"$STATE/log/mariadb-install.log" 2>&1
  mariadbd --user=mysql --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
    --pid-file="$STATE/mysql/mariadb.pid" --log-error="$STATE/mysql/mariadb.log" >/dev/null 2>&1 &
  wait_for 60 MariaDB mariadb -e "select 1"
  mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
              CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

  slurmdbd
  wait_for 60 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  if ((nodes > 1)); then
    remove_hosts
    add_hosts "$nodes"
  fi
  slurmctld
  if ((nodes > 1)); then
    for i in $(seq "$nodes"); do (on "node$i" slurmd); done
  else
    slurmd
  fi
  wait_for 60 "$nodes node(s) to come up idle" bash -c "[[ \$(sinfo -h -N -t idle -o %N | wc -l) == $nodes ]]"
  log "up: $(sinfo -h -o '%P %D %T %c CPUs %m MB %N')"
}

stop() {
  for pidfile in "$STATE"/slurmd*.pid "$STATE"/{slurmctld,slurmdbd}.pid "$STATE/mysql/mariadb.pid" "$STATE/munged.pid"; do
    if [[ -s $pidfile ]]; then
      local pid; pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  remove_hosts
  log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) shift; start "$@" ;;
  on) shift; on "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 install | start [--nodes N] | on NODE CMD... | stop" >&2; exit 2 ;;
esac
