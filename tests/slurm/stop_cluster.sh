#!/usr/bin/env bash
# Stop the test cluster that tests/slurm/start_cluster.sh started: exactly the daemons named
# by the pid files in its state folder (never by process name), after cancelling the jobs
# still queued on that cluster. Safe to run twice, and when nothing was started.
#
# Environment: VIDSTAGE_SLURM_DIR, the same state folder as start_cluster.sh
# (default /tmp/vidstage-slurm).
set -uo pipefail

STATE=${VIDSTAGE_SLURM_DIR:-/tmp/vidstage-slurm}
RUN=$STATE/run
CONF=$STATE/etc/slurm.conf
DEFAULT_CONF=/etc/slurm/slurm.conf

say() { echo "[stop_cluster] $*"; }

# The pid in the pid file, when it names a live process called $1 (else nothing).
our_pid() {
    local name=$1 pidfile=$RUN/$1.pid pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}

stop_daemon() {
    local name=$1 pid
    if ! pid=$(our_pid "$name"); then
        say "$name: not running from $RUN/$name.pid; nothing to stop"
        rm -f "$RUN/$name.pid"
        return 0
    fi
    say "$name: stopping pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name: pid $pid still alive after 10 s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$RUN/$name.pid"
}

if [ ! -d "$STATE" ]; then
    say "no state folder $STATE: nothing was started"
    exit 0
fi

# Jobs still on this cluster (it is ours: every job on it was submitted by our tests).
if our_pid slurmctld >/dev/null && [ -f "$CONF" ]; then
    jobs=$(SLURM_CONF=$CONF squeue -h -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs still queued or running: $jobs"
        # shellcheck disable=SC2086
        SLURM_CONF=$CONF scancel $jobs 2>/dev/null
        for _ in $(seq 100); do
            [ -z "$(SLURM_CONF=$CONF squeue -h -t PD,R,CG -o %i 2>/dev/null)" ] && break
            sleep 0.1
        done
    fi
fi

stop_daemon slurmd
stop_daemon slurmctld
stop_daemon munged

if [ -L "$DEFAULT_CONF" ] && [ "$(readlink "$DEFAULT_CONF")" = "$CONF" ]; then
    say "removing the symlink $DEFAULT_CONF -> $CONF"
    rm -f "$DEFAULT_CONF"
fi
say "stopped (state and logs kept in $STATE)"
exit 0
