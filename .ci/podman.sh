#!/bin/sh
# Serve the Docker Engine API from Podman on a unix socket, for the sandbox `docker` backend and its
# tests. Installs nothing (CI installs podman + runc + debootstrap first). Prints the line to eval:
#   eval "$(.ci/podman.sh)"     # -> export DOCKER_HOST=unix:///run/agentkit-podman.sock
# Env: AGENTKIT_PODMAN_SOCK (socket path), AGENTKIT_SANDBOX_IMAGE (image to build if missing).
set -eu

SOCK=${AGENTKIT_PODMAN_SOCK:-/run/agentkit-podman.sock}
IMAGE=${AGENTKIT_SANDBOX_IMAGE:-agentkit-sandbox:latest}
HERE=$(cd "$(dirname "$0")/.." && pwd)
LOG=${AGENTKIT_PODMAN_LOG:-/tmp/agentkit-podman.log}

for tool in podman runc; do
    command -v "$tool" >/dev/null || { echo "podman.sh: $tool is not installed (apt-get install podman runc)" >&2; exit 1; }
done

answers() {
    python3 - "$SOCK" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(2)
try:
    s.connect(sys.argv[1])
    s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
    sys.exit(0 if b"OK" in s.recv(4096) else 1)
except OSError:
    sys.exit(1)
PY
}

if ! answers; then
    rm -f "$SOCK"
    # runc: crun fails on hybrid cgroup v1 hosts; cgroupfs: no systemd inside CI containers.
    nohup podman --runtime runc --cgroup-manager cgroupfs system service --time=0 "unix://$SOCK" \
        >"$LOG" 2>&1 &
    i=0
    until answers; do
        i=$((i + 1))
        if [ "$i" -gt 100 ]; then
            echo "podman.sh: the podman service did not answer on $SOCK; log:" >&2
            cat "$LOG" >&2
            exit 1
        fi
        sleep 0.2
    done
fi

if ! podman image exists "$IMAGE"; then
    "$HERE/envs/sandbox/image/build_offline.sh" "$IMAGE" >&2
fi

echo "export DOCKER_HOST=unix://$SOCK"
