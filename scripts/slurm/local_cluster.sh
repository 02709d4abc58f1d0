#!/usr/bin/env bash
# A real single-node SLURM cluster on this machine, for the SLURM tests (and for trying the launcher):
# munge, MariaDB + slurmdbd (accounting: without it the submitit launcher cannot see a cancelled or
# failed job and waits forever), slurmctld and slurmd, all started by hand (no systemd).
#
#   sudo scripts/slurm/local_cluster.sh install   # Debian packages: slurm-wlm munge slurmdbd mariadb-server
#   sudo scripts/slurm/local_cluster.sh start     # writes /etc/slurm/*.conf, starts the daemons, waits for the node
#   sudo scripts/slurm/local_cluster.sh stop      # stops every daemon by the PID this script saved
#
# Run as root on a throwaway machine (CI, a container): it writes /etc/slurm and /etc/munge.
set -euo pipefail

STATE=${SLURM_LOCAL_STATE:-/var/tmp/seq2seq-slurm}
CLUSTER=seq2seq
DB_PASS=seq2seq-local

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

write_configs() {
  local host mem cpus node
  host=$(hostname)
  node=$(slurmd -C | head -n 1)                       # NodeName=... CPUs=... RealMemory=...
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=$mem/RealMemory=$((mem * 9 / 10))/" <<<"$node")  # a bit below the total
  mkdir -p /etc/slurm "$STATE"/{log,spool,state}
  cat >/etc/slurm/slurm.conf <<CONF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$((mem * 9 / 10 / cpus))
ReturnToService=2
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
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

start() {
  write_configs
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
  slurmctld
  slurmd
  wait_for 60 "the node to come up idle" bash -c "sinfo -h -o %T | grep -q idle"
  log "up: $(sinfo -h -o '%P %D %T %c CPUs %m MB')"
}

stop() {
  for pidfile in "$STATE"/{slurmd,slurmctld,slurmdbd}.pid "$STATE/mysql/mariadb.pid" "$STATE/munged.pid"; do
    if [[ -s $pidfile ]]; then
      local pid; pid=$(cat "$pidfile")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
      kill -9 "$pid" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  log "stopped"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
