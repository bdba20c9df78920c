#!/usr/bin/env bash
# A real single-node Slurm on this machine, with accounting (slurmdbd + MariaDB) and two fake GPUs.
#
#   sudo tests/slurm/cluster.sh install          Debian's packages, where missing
#   sudo tests/slurm/cluster.sh start DIR        daemons up, node idle; state, logs, PID files in DIR
#   sudo tests/slurm/cluster.sh stop DIR         cancel jobs, stop each daemon by the PID in its file
#
# Debian 12 (Slurm 22.05), as root, no systemd. Why it looks like this (see also
# shared/docs/slurm-on-localhost.md):
# - the config is written to /etc/slurm/: the executor plugin strips SLURM_CONF from the job step,
#   and slurmdbd.conf/gres.conf are looked up beside slurm.conf. A slurm.conf that was there before
#   is kept as slurm.conf.labbook-saved and put back by `stop`;
# - two GPUs, declared with File=/dev/null and File=/dev/zero, a gres.conf line each: a gres
#   without a device file drains the node, and slurmd refuses the same file twice ("gpu duplicate
#   device file name"). Jobs then see CUDA_VISIBLE_DEVICES=0 (or 1, or 0,1) but have no GPU. Two,
#   so a training run with `gpus: 2` is given both in one task;
# - cgroups stay off: with device constraints, jobs without a GPU were denied /dev/null.
# - DIR must be traversable by the mysql user (MariaDB keeps its data there): `start` chmods it 755.
set -euo pipefail

ETC=/etc/slurm
DB_PASSWORD=labbook-ci  # a throwaway database that lives in DIR; listens on no network port
NODE=$(hostname -s)

log() { echo "cluster.sh: $*" >&2; }

install_packages() {
  local wanted=(slurmctld slurmd slurm-client munge slurmdbd mariadb-server) missing=()
  for package in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return
  log "installing ${missing[*]}"
  # the packages' own start scripts would start daemons with Debian's config: forbid that
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

# Waits until "$@" succeeds, at most $1 seconds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 2))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  log "timed out after ${seconds}s waiting for $what"
  return 1
}

stop_pid_file() {
  local pid_file=$1
  [ -s "$pid_file" ] || return 0
  local pid
  pid=$(cat "$pid_file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait_for 15 "PID $pid ($pid_file) to exit" bash -c "! kill -0 $pid" || kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pid_file"
}

write_config() {
  local dir=$1
  # CPUs and sockets as slurmd sees them; memory a little under the total, or slurmd refuses
  local hardware memory
  hardware=$(slurmd -C | head -1 | sed -E 's/ RealMemory=[0-9]+//')
  memory=$(($(slurmd -C | sed -nE 's/.*RealMemory=([0-9]+).*/\1/p') * 9 / 10))
  if [ -e $ETC/slurm.conf ] && ! grep -q "^# labbook test cluster" $ETC/slurm.conf; then
    mv $ETC/slurm.conf $ETC/slurm.conf.labbook-saved
  fi
  cat >$ETC/slurm.conf <<EOF
# labbook test cluster (tests/slurm/cluster.sh): state in $dir
ClusterName=labbook
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MpiDefault=none
GresTypes=gpu
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
# the plugin puts the rule name in the job comment; keep it in the accounting for sacct
AccountingStoreFlags=job_comment
$hardware NodeAddr=127.0.0.1 RealMemory=$memory Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat >$ETC/gres.conf <<EOF
# labbook test cluster: two fake GPUs
AutoDetect=off
NodeName=$NODE Name=gpu File=/dev/null
NodeName=$NODE Name=gpu File=/dev/zero
EOF
  cat >$ETC/slurmdbd.conf <<EOF
# labbook test cluster
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
PidFile=$dir/slurmdbd.pid
LogFile=$dir/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
  chmod 600 $ETC/slurmdbd.conf
}

start() {
  local dir=$1
  stop "$dir"  # leftovers of an earlier run
  mkdir -p "$dir"/{state,spool}
  chmod 755 "$dir"
  write_config "$dir"

  # a munged already running (a machine with Slurm) is used, and left running by `stop`
  if ! munge -n >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    wait_for 10 munged munge -n
    cp /run/munge/munged.pid "$dir/munged.pid"
  fi

  # MariaDB on its Unix socket only (the default path, which slurmdbd's "localhost" connects to)
  mkdir -p "$dir/mysql" /run/mysqld && chown mysql:mysql "$dir/mysql" /run/mysqld
  if [ ! -d "$dir/mysql/mysql" ]; then
    mariadb-install-db --user=mysql --datadir="$dir/mysql" --skip-test-db >"$dir/mariadb-install.log" 2>&1
  fi
  runuser -u mysql -- /usr/sbin/mariadbd --datadir="$dir/mysql" --skip-networking \
    --socket=/run/mysqld/mysqld.sock --pid-file="$dir/mysql/mariadb.pid" --log-error="$dir/mysql/mariadb.log" \
    </dev/null >/dev/null 2>&1 &
  wait_for 30 MariaDB mariadb-admin --socket=/run/mysqld/mysqld.sock ping
  mariadb --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

  slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -i add cluster labbook >/dev/null 2>&1 || true

  slurmctld
  wait_for 30 slurmctld scontrol ping
  slurmd -N "$NODE"
  if ! wait_for 30 "node $NODE to be idle" bash -c "sinfo -h -N -o %T | grep -qx idle"; then
    sinfo -N -l >&2 || true
    tail -20 "$dir"/slurm*.log >&2 || true
    return 1
  fi
  log "up: node $NODE $(sinfo -h -N -o '%c CPUs, %m MB, %G'), state and logs in $dir"
}

stop() {
  local dir=$1
  if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
    # jobs' processes (slurmstepd and below) outlive slurmd: cancel them first
    timeout 10 scancel --user=root 2>/dev/null || true
    wait_for 20 "jobs to end" bash -c '[ -z "$(squeue -h 2>/dev/null)" ]' || true
  fi
  for pid_file in slurmd.pid slurmctld.pid slurmdbd.pid mysql/mariadb.pid munged.pid; do
    stop_pid_file "$dir/$pid_file"
  done
  for ours in $ETC/gres.conf $ETC/slurmdbd.conf; do
    if grep -qs "^# labbook test cluster" "$ours"; then rm -f "$ours"; fi
  done
  if grep -qs "^# labbook test cluster" $ETC/slurm.conf; then
    rm -f $ETC/slurm.conf
    [ -e $ETC/slurm.conf.labbook-saved ] && mv $ETC/slurm.conf.labbook-saved $ETC/slurm.conf
  fi
  return 0
}

case "${1:-}" in
  install) install_packages ;;
  start) start "${2:?usage: cluster.sh start DIR}" ;;
  stop) stop "${2:?usage: cluster.sh stop DIR}" ;;
  *) sed -n '2,6p' "$0" >&2 && exit 2 ;;
esac
