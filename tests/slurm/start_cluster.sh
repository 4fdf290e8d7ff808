#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this host for tests/test_slurm.py (and for trying
# profiles/slurm by hand): munged, slurmctld and slurmd, started directly (no systemd), with
# their pid files, config, spool and logs in one state folder.
#
#   tests/slurm/start_cluster.sh          # start (or confirm it is already up)
#   tests/slurm/stop_cluster.sh           # stop exactly the daemons started here
#
# Environment:
#   VIDSTAGE_SLURM_DIR        state folder (default /tmp/vidstage-slurm)
#   VIDSTAGE_SLURM_PARTITION  partition name (default cpu, the one profiles/slurm asks for)
#   VIDSTAGE_SLURM_CPUS       CPUs the node advertises (default: max(real CPUs, 4), so that
#                             a small machine still runs a few jobs side by side)
#
# Exit status: 0 = cluster up and the node idle; 3 = cannot run here (not root, no apt,
# a foreign /etc/slurm/slurm.conf): the tests skip with the printed reason; anything else
# = a real failure (the daemon logs are printed).
#
# Why it looks like this (measured on Debian 12 with slurm-wlm 22.05, see
# /work/shared/NOTES-stack.md "A real SLURM on this machine"):
# - root as SlurmUser, proctrack/linuxproc and task/none: no cgroup set-up needed.
# - The SLURM executor plugin's job step runs `srun` with SLURM_CONF removed, so the config
#   must be found at the default path: /etc/slurm/slurm.conf is a symlink to ours.
# - No accounting daemon (slurmdbd): the plugin must poll with squeue, which only sees
#   finished jobs for MinJobAge seconds, so MinJobAge is high (3600).
# - munged refuses a socket folder that is not world-executable: key folder 700, socket
#   folder 755.
# - SlurmdParameters=config_overrides lets the node advertise more CPUs than it has.
set -euo pipefail

STATE=${VIDSTAGE_SLURM_DIR:-/tmp/vidstage-slurm}
PARTITION=${VIDSTAGE_SLURM_PARTITION:-cpu}
DEFAULT_CONF=/etc/slurm/slurm.conf
CONF=$STATE/etc/slurm.conf
KEY=$STATE/munge-key/munge.key
SOCKET=$STATE/munge-run/munge.socket.2
RUN=$STATE/run
LOGS=$STATE/log

say() { echo "[start_cluster] $*"; }
cannot() { echo "[start_cluster] CANNOT: $*" >&2; exit 3; }
fail() {
    echo "[start_cluster] FAILED: $*" >&2
    for f in "$LOGS"/*.log; do
        [ -f "$f" ] && { echo "--- $f (last lines)" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}

# A daemon counts as ours and running when its pid file (in our state folder) names a live
# process with the expected name.
alive() {
    local name=$1 pidfile=$RUN/$1.pid pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

# ------------------------------------------------------------------ prerequisites
# Debian puts munged, slurmctld and slurmd in /usr/sbin, which a non-login shell's PATH
# often lacks (found missing even after apt-get installed them).
export PATH="$PATH:/usr/sbin:/sbin"
[ "$(id -u)" -eq 0 ] || cannot "must run as root (SLURM daemons with root as SlurmUser; apt-get)"

missing=()
for tool in munged slurmctld slurmd sbatch squeue sinfo scontrol scancel srun; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 \
        || cannot "SLURM is not installed (${missing[*]} missing) and there is no apt-get"
    packages="slurmctld slurmd slurm-client munge"
    say "installing $packages (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    mkdir -p "$STATE"
    if ! apt-get install -y -q --no-install-recommends $packages >"$STATE/apt.log" 2>&1; then
        say "apt-get install failed; running apt-get update once and retrying"
        apt-get update -q >>"$STATE/apt.log" 2>&1 \
            || cannot "apt-get update failed (no package index reachable); see $STATE/apt.log"
        apt-get install -y -q --no-install-recommends $packages >>"$STATE/apt.log" 2>&1 \
            || cannot "apt-get install $packages failed; see $STATE/apt.log"
    fi
    for tool in "${missing[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || cannot "$tool still missing after installing $packages"
    done
fi

# The default config path must be ours (a symlink into the state folder) or free.
if [ -e "$DEFAULT_CONF" ] || [ -L "$DEFAULT_CONF" ]; then
    if [ "$(readlink "$DEFAULT_CONF" || true)" != "$CONF" ]; then
        cannot "$DEFAULT_CONF exists and is not this script's symlink to $CONF;" \
            "refusing to replace another SLURM's configuration"
    fi
fi

# ------------------------------------------------------------------ already running?
if alive munged && alive slurmctld && alive slurmd && sinfo -h >/dev/null 2>&1; then
    say "already running (state in $STATE): munged $(cat "$RUN/munged.pid")," \
        "slurmctld $(cat "$RUN/slurmctld.pid"), slurmd $(cat "$RUN/slurmd.pid")"
    sinfo
    exit 0
fi

# ------------------------------------------------------------------ state folder and config
say "state folder $STATE"
mkdir -p "$STATE/etc" "$STATE/munge-key" "$STATE/munge-run" "$STATE/munge-lib" \
    "$STATE/spool/ctld" "$STATE/spool/d" "$RUN" "$LOGS"
chmod 755 "$STATE" "$STATE/munge-run" "$RUN"
chmod 700 "$STATE/munge-key" "$STATE/munge-lib"
if [ ! -s "$KEY" ]; then
    say "creating a munge key $KEY"
    dd if=/dev/urandom of="$KEY" bs=1024 count=1 status=none
fi
chmod 400 "$KEY"

NODE=$(hostname -s)
hardware=$(slurmd -C 2>/dev/null | head -n 1) || true
REAL_CPUS=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hardware")
REAL_MEM=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hardware")
[ -n "$REAL_CPUS" ] || REAL_CPUS=$(nproc)
[ -n "$REAL_MEM" ] || REAL_MEM=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
CPUS=${VIDSTAGE_SLURM_CPUS:-$((REAL_CPUS > 4 ? REAL_CPUS : 4))}
MEM=$((REAL_MEM * 90 / 100))   # a little less than slurmd sees, or the node drains
say "node $NODE: slurmd -C reports CPUs=$REAL_CPUS RealMemory=$REAL_MEM; advertising CPUs=$CPUS RealMemory=$MEM"

cat >"$CONF.tmp" <<EOF
# Written by tests/slurm/start_cluster.sh: a one-node test cluster, no accounting.
ClusterName=vidstage
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldPort=${VIDSTAGE_SLURMCTLD_PORT:-6817}
SlurmdPort=${VIDSTAGE_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
ReturnToService=2
# squeue (no slurmdbd) sees a finished job only for MinJobAge seconds; the plugin needs
# MinJobAge >= 3 x slurm-init-seconds-before-status-checks or it goes back to sacct.
MinJobAge=3600
KillWait=5
SlurmdTimeout=60
InactiveLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.tmp" "$CONF"
say "wrote $CONF"

mkdir -p "$(dirname "$DEFAULT_CONF")"
if [ ! -L "$DEFAULT_CONF" ]; then
    ln -s "$CONF" "$DEFAULT_CONF"
    say "linked $DEFAULT_CONF -> $CONF (the plugin's job step drops SLURM_CONF)"
fi

# ------------------------------------------------------------------ daemons
if alive munged; then
    say "munged already running (pid $(cat "$RUN/munged.pid"))"
else
    say "starting munged (socket $SOCKET)"
    munged --key-file="$KEY" --socket="$SOCKET" --pid-file="$RUN/munged.pid" \
        --log-file="$LOGS/munged.log" --seed-file="$STATE/munge-lib/munged.seed" \
        || fail "munged did not start"
fi
for _ in $(seq 50); do [ -S "$SOCKET" ] && alive munged && break; sleep 0.1; done
alive munged || fail "munged is not running"

if alive slurmctld; then
    say "slurmctld already running (pid $(cat "$RUN/slurmctld.pid"))"
else
    say "starting slurmctld (jobs of an earlier run of this test cluster are cleared)"
    rm -f "$RUN/slurmctld.pid"
    slurmctld -f "$CONF" -c || fail "slurmctld did not start"
fi
for _ in $(seq 100); do alive slurmctld && scontrol ping >/dev/null 2>&1 && break; sleep 0.1; done
alive slurmctld || fail "slurmctld is not running"

if alive slurmd; then
    say "slurmd already running (pid $(cat "$RUN/slurmd.pid"))"
else
    say "starting slurmd"
    rm -f "$RUN/slurmd.pid"
    slurmd -f "$CONF" || fail "slurmd did not start"
fi
for _ in $(seq 100); do alive slurmd && break; sleep 0.1; done
alive slurmd || fail "slurmd is not running"

# ------------------------------------------------------------------ wait for an idle node
say "waiting for node $NODE to be idle"
state=""
for i in $(seq 300); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle) break ;;
        down*|drain*|fail*)
            # A node left down/drained by an earlier run of this test cluster.
            [ $((i % 20)) -eq 1 ] && scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.1
done
[ "$state" = "idle" ] || fail "node $NODE is '$state', not idle, after 30 s"
say "cluster up: munged $(cat "$RUN/munged.pid"), slurmctld $(cat "$RUN/slurmctld.pid")," \
    "slurmd $(cat "$RUN/slurmd.pid")"
sinfo
