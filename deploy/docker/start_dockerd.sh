#!/usr/bin/env bash
# Start a private Docker daemon (Debian's docker.io) for hosts without a running one; prints DOCKER_HOST.
#
#   eval "$(deploy/docker/start_dockerd.sh)"     # exports DOCKER_HOST for this shell
#
# Environment: DOCKERD_ROOT (default /var/lib/pqc-docker), DOCKERD_SOCK (default
# /run/pqc-docker.sock). Needs root. Idempotent: does nothing if the socket already answers.
set -euo pipefail
ROOT="${DOCKERD_ROOT:-/var/lib/pqc-docker}"
SOCK="${DOCKERD_SOCK:-/run/pqc-docker.sock}"
export DOCKER_HOST="unix://${SOCK}"
if docker version >/dev/null 2>&1; then
    echo "export DOCKER_HOST=${DOCKER_HOST}"
    exit 0
fi
command -v dockerd >/dev/null || { echo "dockerd missing: apt-get install -y docker.io" >&2; exit 1; }
mkdir -p "$ROOT"
nohup nice -n 10 dockerd --data-root "$ROOT" -H "$DOCKER_HOST" --pidfile "${ROOT}.pid" \
    >"${ROOT}.log" 2>&1 &
for _ in $(seq 1 60); do
    if docker version >/dev/null 2>&1; then
        echo "export DOCKER_HOST=${DOCKER_HOST}"
        exit 0
    fi
    sleep 1
done
echo "dockerd did not answer on ${SOCK} within 60 s; see ${ROOT}.log" >&2
exit 1
