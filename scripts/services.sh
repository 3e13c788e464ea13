#!/usr/bin/env bash
# Start what the Graflow test suite needs: redis on 127.0.0.1:6379, a Docker
# daemon, and the local test image (scripts/build-test-image.sh).
#
# Idempotent: anything already installed / answering is left alone, so it is
# safe to run many times. No systemd: CI machines may not run it.
#
# Env vars (all optional):
#   GRAFLOW_REDIS_PORT     redis port on 127.0.0.1 (default: 6379)
#   GRAFLOW_DOCKERD_FLAGS  extra flags for dockerd (default: none; plain dockerd
#                          with overlay2 works on the CI machine kind)
#   GRAFLOW_DOCKERD_FALLBACK_FLAGS  flags for one retry if dockerd dies at start
#                          (default: --storage-driver=vfs --iptables=false)
#   plus those of build-test-image.sh (GRAFLOW_PYTHON, ...)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REDIS_PORT="${GRAFLOW_REDIS_PORT:-6379}"
REDIS_LOG=/tmp/graflow-redis.log
DOCKERD_LOG=/tmp/dockerd.log
DOCKERD_TIMEOUT=60

log() { echo "[services] $*" >&2; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

# --- 1. Packages: one apt-get call, only for what is missing -----------------
missing=()
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || missing+=(redis-server)
command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v dot >/dev/null 2>&1 || missing+=(graphviz)  # `graflow show --format png` (tests/core/test_viz.py)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    # Keep package scripts from starting redis/docker with their stock configs
    # (we start them ourselves below), unless the machine already has a policy.
    made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
        made_policy=1
    fi
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
    if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
fi

# --- 2. Redis ----------------------------------------------------------------
redis_up() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]]; }

if ! redis_up; then
    log "starting redis-server on 127.0.0.1:$REDIS_PORT (log: $REDIS_LOG)"
    # No persistence (--save '' --appendonly no); --dir /tmp so nothing is ever
    # written into the current directory (the repo).
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --daemonize yes \
        --save '' --appendonly no --dir /tmp \
        --logfile "$REDIS_LOG" --pidfile "/tmp/graflow-redis-$REDIS_PORT.pid"
    for _ in $(seq 100); do redis_up && break; sleep 0.2; done
    if ! redis_up; then
        tail -n 20 "$REDIS_LOG" >&2 || true
        die "redis did not answer PING on 127.0.0.1:$REDIS_PORT within 20s (log above)"
    fi
fi
echo "redis: up on 127.0.0.1:$REDIS_PORT"

# --- 3. Docker daemon ----------------------------------------------------------
docker_up() { docker info >/dev/null 2>&1; }

# $1: dockerd flags as one string (split on whitespace).
start_dockerd() {
    local -a flags
    read -ra flags <<<"$1"
    log "starting dockerd ${flags[*]:-(default flags)} (log: $DOCKERD_LOG)"
    # setsid + nohup: the daemon must outlive this script and its process group.
    setsid nohup dockerd "${flags[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
    DOCKERD_PID=$!
}

# Wait until `docker info` works; returns 1 early if our dockerd process died.
wait_docker() {
    local deadline=$((SECONDS + DOCKERD_TIMEOUT))
    while ((SECONDS < deadline)); do
        docker_up && return 0
        if [[ -n "${DOCKERD_PID:-}" ]] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            return 1
        fi
        sleep 1
    done
    return 1
}

if ! docker_up; then
    DOCKERD_PID=
    if pgrep -x dockerd >/dev/null; then
        log "a dockerd is already running but not ready yet; waiting for it"
    else
        start_dockerd "${GRAFLOW_DOCKERD_FLAGS:-}"
    fi
    if ! wait_docker; then
        # Default flags (overlay2 + iptables) work on our CI machines; on hosts
        # where overlay-on-overlay or iptables is unavailable, vfs without
        # iptables still runs containers (slower, no outbound NAT).
        if [[ -n "$DOCKERD_PID" ]] && ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
            tail -n 15 "$DOCKERD_LOG" >&2 || true
            log "dockerd exited at start (log above); retrying with fallback flags"
            start_dockerd "${GRAFLOW_DOCKERD_FALLBACK_FLAGS:---storage-driver=vfs --iptables=false}"
            wait_docker || true
        fi
    fi
    if ! docker_up; then
        tail -n 30 "$DOCKERD_LOG" >&2 || true
        die "docker daemon not ready within ${DOCKERD_TIMEOUT}s (tail of $DOCKERD_LOG above)"
    fi
fi
echo "docker: up ($(docker info --format 'server {{.ServerVersion}}, storage {{.Driver}}' 2>/dev/null))"

# --- 4. Test image -------------------------------------------------------------
IMAGE=$("$SCRIPT_DIR/build-test-image.sh" | tail -n 1)
[[ -n "$IMAGE" ]] || die "build-test-image.sh printed no image name"
# Prove a container really runs (cgroups, storage driver, runc all work).
out=$(docker run --rm "$IMAGE" python3 -c 'print(1)' 2>&1) || die "docker run $IMAGE failed: $out"
[[ "$out" == 1 ]] || die "docker run $IMAGE printed unexpected output: $out"
echo "test image: up ($IMAGE runs python3)"
