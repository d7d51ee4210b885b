#!/usr/bin/env bash
# A single-node SLURM on this machine (Debian's slurm-wlm and munge): controller and node daemon on
# localhost, proctrack/linuxproc, no accounting. State lives in $HARNESS_SLURM_DIR (default /tmp/harness-slurm);
# clients find the cluster through SLURM_CONF=$HARNESS_SLURM_DIR/slurm.conf.
#   tests/slurm/cluster.sh install   apt-get install slurm-wlm munge (root; CI)
#   tests/slurm/cluster.sh start     write slurm.conf, start munged, slurmctld, slurmd; wait until the node is idle
#   tests/slurm/cluster.sh stop      stop what start started
# Two test sessions at once share one cluster: start counts its users (a second start reuses the running
# cluster instead of restarting it, which would purge the first session's jobs), stop stops it at the last.
#   tests/slurm/cluster.sh env       print the SLURM_CONF line to export
set -euo pipefail
DIR=${HARNESS_SLURM_DIR:-/tmp/harness-slurm}
CONF=$DIR/slurm.conf

install() {
    if command -v slurmctld >/dev/null && command -v munged >/dev/null; then return 0; fi
    [ "$(id -u)" = 0 ] || { echo "cluster.sh install: needs root" >&2; return 1; }
    command -v apt-get >/dev/null || { echo "cluster.sh install: no apt-get" >&2; return 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
}

running() {
    [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null && \
        [ -s "$DIR/slurmd.pid" ] && kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null && \
        SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q UP
}

start() {
    mkdir -p "$DIR"/state "$DIR"/spool "$DIR"/log
    exec 9>"$DIR/lock"
    flock 9
    if running; then
        echo $(( $(cat "$DIR/users" 2>/dev/null || echo 1) + 1 )) > "$DIR/users"
        echo "slurm up (shared with another session): $CONF"
        return 0
    fi
    echo 1 > "$DIR/users"
    local host cpus mem
    host=$(hostname -s)
    cpus=$(nproc)
    mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 9 / 10 ))
    cat > "$CONF" <<CONF
ClusterName=harness
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits cred_expire seconds before it starts again (default 120): 10 keeps the requeue test short
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# a requeued job becomes eligible after its hold (cred_expire) and is started by the next backfill pass
SchedulerParameters=bf_interval=5
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    if ! pgrep -x munged >/dev/null; then
        [ -s /etc/munge/munge.key ] || mungekey --create --keyfile=/etc/munge/munge.key
        chown munge:munge /etc/munge/munge.key 2>/dev/null || true
        chmod 0400 /etc/munge/munge.key
        mkdir -p /run/munge && chown munge:munge /run/munge 2>/dev/null || true
        if id munge >/dev/null 2>&1; then
            su -s /bin/sh munge -c "munged" 9>&- || munged --force 9>&-
        else
            munged --force 9>&-
        fi
        touch "$DIR"/munged.ours
    fi
    export SLURM_CONF=$CONF
    slurmctld -c -f "$CONF" 9>&-  # the daemons must not inherit the lock
    slurmd -f "$CONF" 9>&-
    for _ in $(seq 60); do
        if [ "$(sinfo -h -o %t 2>/dev/null)" = "idle" ]; then echo "slurm up: $CONF"; return 0; fi
        sleep 0.5
    done
    echo "cluster.sh start: the node did not become idle; see $DIR/log" >&2
    sinfo >&2 || true
    return 1
}

stop() {
    export SLURM_CONF=$CONF
    mkdir -p "$DIR"
    exec 9>"$DIR/lock"
    flock 9
    local users
    users=$(( $(cat "$DIR/users" 2>/dev/null || echo 1) - 1 ))
    if [ "$users" -gt 0 ]; then
        echo "$users" > "$DIR/users"
        echo "slurm left up for $users other session(s)"
        return 0
    fi
    rm -f "$DIR/users"
    scancel --user="$(id -un)" 2>/dev/null || true
    for daemon in slurmd slurmctld; do
        if [ -s "$DIR/$daemon.pid" ]; then
            kill "$(cat "$DIR/$daemon.pid")" 2>/dev/null || true
        fi
    done
    for _ in $(seq 20); do
        { [ -s "$DIR/slurmd.pid" ] && kill -0 "$(cat "$DIR/slurmd.pid")" 2>/dev/null; } || \
        { [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; } || break
        sleep 0.5
    done
    if [ -e "$DIR"/munged.ours ] && [ -s /run/munge/munged.pid ]; then
        kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
        rm -f "$DIR"/munged.ours
    fi
    echo "slurm stopped"
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac
