#!/usr/bin/env bash
# A single-node Slurm cluster on this machine: `start`, `stop`, `status`.
#
# start   installs slurmctld/slurmd/slurm-client/munge with apt-get when missing (root only),
#         starts munged, writes /etc/slurm/slurm.conf for this node (only if absent or written by
#         this script), starts slurmctld and slurmd and waits until the node is idle. Idempotent:
#         whatever already runs is left alone.
# stop    cancels every job, shuts down slurmctld/slurmd (scontrol shutdown), then ends whatever of
#         slurmctld, slurmd and slurmstepd is left (found by name, not by pid file), and the munged
#         this script started.
# status  prints what runs; exit 0 when the node accepts jobs, 3 otherwise.
#
# Environment: SLURM_LOCAL_PARTITION (default debug), SLURM_LOCAL_NO_INSTALL=1 (never run apt-get),
# SLURM_LOCAL_WAIT (seconds to wait for the node, default 60).
set -euo pipefail

PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
WAIT="${SLURM_LOCAL_WAIT:-60}"
CONF=/etc/slurm/slurm.conf
MARK="# written by kws_hpc jobs/slurm_local.sh"
MUNGE_PID=/run/munge/munged.pid
STARTED_MUNGE=/run/kws_slurm_local.munged  # present when `start` started munged, so `stop` stops it
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
PACKAGES=(slurmctld slurmd slurm-client munge)

say() { echo "slurm_local: $*"; }
die() { echo "slurm_local: error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE: the process named in PIDFILE exists
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (starting munged, slurmctld and slurmd needs it)"
}

install_packages() {
    if command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v munged >/dev/null; then
        return
    fi
    [[ "${SLURM_LOCAL_NO_INSTALL:-0}" == 1 ]] && die "Slurm is not installed and SLURM_LOCAL_NO_INSTALL=1"
    command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get; install ${PACKAGES[*]}"
    say "installing ${PACKAGES[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get -o DPkg::Lock::Timeout=600 -y -q)  # waits for another apt-get instead of failing
    if ! "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}" >/tmp/slurm_local_apt.log 2>&1; then
        "${apt[@]}" update >>/tmp/slurm_local_apt.log 2>&1 || true  # a fresh image has no package lists
        "${apt[@]}" install --no-install-recommends "${PACKAGES[@]}" >>/tmp/slurm_local_apt.log 2>&1 \
            || die "apt-get install ${PACKAGES[*]} failed (see /tmp/slurm_local_apt.log)"
    fi
    say "installed: $(sbatch --version 2>/dev/null || echo slurm)"
}

start_munge() {
    if [[ ! -s /etc/munge/munge.key ]]; then
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
        fi
        say "created /etc/munge/munge.key"
    fi
    chown munge:munge /etc/munge /etc/munge/munge.key
    chmod 700 /etc/munge
    chmod 400 /etc/munge/munge.key
    mkdir -p /run/munge /var/lib/munge /var/log/munge
    chown munge:munge /run/munge /var/lib/munge /var/log/munge
    chmod 755 /run/munge
    if alive "$MUNGE_PID" && munge -n </dev/null | unmunge >/dev/null 2>&1; then
        say "munged already running (pid $(cat "$MUNGE_PID"))"
        return
    fi
    runuser -u munge -- /usr/sbin/munged --force
    touch "$STARTED_MUNGE"
    for _ in $(seq 50); do
        munge -n </dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    munge -n </dev/null | unmunge >/dev/null 2>&1 || die "munged did not start (see /var/log/munge/munged.log)"
    say "started munged (pid $(cat "$MUNGE_PID"))"
}

write_conf() {
    local host node
    host=$(hostname -s)
    node=$(slurmd -C | head -n 1)
    [[ "$node" == NodeName=* ]] || die "slurmd -C printed no node line: $node"
    if [[ -f "$CONF" ]] && ! grep -qF "$MARK" "$CONF"; then
        say "keeping $CONF (not written by this script)"
        return
    fi
    mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
    local new
    new=$(cat <<EOF
$MARK
ClusterName=kwslocal
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued (pre-empted or timed-out) job is eligible again after 5 s instead of 120 s
AuthInfo=cred_expire=5
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# schedule every 2 s (one small node): a requeued job restarts within seconds of becoming eligible
SchedulerParameters=bf_interval=2,sched_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=300
${node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
    if [[ -f "$CONF" ]] && [[ "$(cat "$CONF")" == "$new" ]]; then
        say "$CONF is up to date"
    else
        printf '%s\n' "$new" >"$CONF.tmp" && mv "$CONF.tmp" "$CONF"
        say "wrote $CONF (node: ${node%% *}, partition: $PARTITION)"
        CONF_CHANGED=1
    fi
}

running() {  # running NAME: pids of live (not zombie) processes whose command name starts with NAME
    ps -eo pid=,stat=,comm= | awk -v n="$1" '$2 !~ /^Z/ && index($3, n) == 1 {print $1}'
}

stop_daemons() {
    # jobs first: a job step (slurmstepd) outlives a SIGTERM to slurmd and would keep a CPU and its files
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    [[ -n "$jobs" ]] && scancel --full $jobs 2>/dev/null || true
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 100); do
        [[ -z "$(running slurmctld)$(running slurmd)" ]] && break
        sleep 0.1
    done
    # whatever ignored the shutdown request, found by what it is, not only by a pid file
    local pids
    pids="$(running slurmctld) $(running slurmd) $(running slurmstepd)"
    if [[ -n "${pids// /}" ]]; then
        kill $pids 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z "$(running slurmctld)$(running slurmd)$(running slurmstepd)" ]] && break
            sleep 0.1
        done
        pids="$(running slurmctld) $(running slurmd) $(running slurmstepd)"
        [[ -n "${pids// /}" ]] && kill -9 $pids 2>/dev/null || true
    fi
    rm -f "$CTLD_PID" "$SLURMD_PID"
}

start_daemons() {
    if [[ "${CONF_CHANGED:-0}" == 1 ]] && [[ -n "$(running slurmctld)$(running slurmd)" ]]; then
        stop_daemons  # some settings (AuthInfo) are read only at start
        say "stopped slurmctld and slurmd to load the new $CONF"
    fi
    if [[ -n "$(running slurmctld)" ]]; then
        say "slurmctld already running (pid $(running slurmctld))"
    else
        slurmctld
        say "started slurmctld"
    fi
    if [[ -n "$(running slurmd)" ]]; then
        say "slurmd already running (pid $(running slurmd))"
    else
        slurmd
        say "started slurmd"
    fi
}

node_state() {
    sinfo -h -N -o '%T' 2>/dev/null | head -n 1 | tr -d '*~#' || true
}

wait_idle() {
    local state="" node
    node=$(slurmd -C | head -n 1 | sed 's/^NodeName=\([^ ]*\).*/\1/')
    for i in $(seq $((WAIT * 2))); do
        state=$(node_state)
        case "$state" in
            idle|mixed|allocated|completing) say "node $node is $state; sbatch works (partition $PARTITION)"; return ;;
            down|drained|draining|drain*|fail*)
                scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node $node not ready after ${WAIT}s (state: ${state:-unknown}); see /var/log/slurm/slurmctld.log and slurmd.log"
}

cmd_start() {
    need_root
    install_packages
    start_munge
    write_conf
    start_daemons
    wait_idle
}

cmd_stop() {
    need_root
    if [[ -n "$(running slurmctld)$(running slurmd)$(running slurmstepd)" ]]; then
        stop_daemons
        say "stopped slurmctld, slurmd and their job steps"
    else
        say "slurmctld and slurmd are not running"
    fi
    if [[ -f "$STARTED_MUNGE" ]] && [[ -n "$(running munged)" ]]; then
        kill $(running munged) 2>/dev/null || true
        rm -f "$STARTED_MUNGE"
        say "stopped munged"
    elif [[ -n "$(running munged)" ]]; then
        say "munged left running (it was not started by this script)"
    else
        say "munged is not running"
    fi
}

cmd_status() {
    local ok=0
    for d in munged slurmctld slurmd; do
        if [[ -n "$(running $d)" ]]; then
            say "$d: running (pid $(running $d | tr '\n' ' '))"
        else
            say "$d: not running"; ok=3
        fi
    done
    if command -v sinfo >/dev/null && [[ $ok == 0 ]]; then
        sinfo 2>/dev/null || true
        case "$(node_state)" in idle|mixed|allocated|completing) ;; *) ok=3 ;; esac
    fi
    return $ok
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
