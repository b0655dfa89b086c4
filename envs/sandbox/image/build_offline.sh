#!/bin/sh
# Build the sandbox image without an image hub: a Debian rootfs made with debootstrap (from the Debian
# mirror, the one registry this machine reaches), with python3 + numpy + sympy, imported by Podman.
# The result is the same thing image/Dockerfile builds on a machine with a hub.
#
#   envs/sandbox/image/build_offline.sh [IMAGE] [SUITE] [MIRROR]
#
# Needs root, debootstrap and podman. Set AGENTKIT_ROOTFS_CACHE=/path/rootfs.tar to reuse a tarball.
set -eu

IMAGE=${1:-agentkit-sandbox:latest}
SUITE=${2:-bookworm}
MIRROR=${3:-http://deb.debian.org/debian}
CACHE=${AGENTKIT_ROOTFS_CACHE:-}

if podman image exists "$IMAGE"; then
    echo "image $IMAGE already present"
    exit 0
fi

WORK=$(mktemp -d /var/tmp/agentkit-rootfs.XXXXXX)
trap 'rm -rf "$WORK"' EXIT INT TERM

ROOT="$WORK/rootfs"
mkdir -p "$ROOT"
if [ -n "$CACHE" ] && [ -s "$CACHE" ]; then
    echo "using the cached debootstrap rootfs $CACHE"
    tar -C "$ROOT" -xf "$CACHE"
else
    command -v debootstrap >/dev/null || { echo "build_offline.sh: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
    echo "debootstrap $SUITE from $MIRROR into $ROOT ..."
    debootstrap --variant=minbase --include=python3,python3-numpy,python3-sympy,procps \
        "$SUITE" "$ROOT" "$MIRROR"
    rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/var/lib/apt/lists/* "$ROOT"/usr/share/doc "$ROOT"/usr/share/man
    if [ -n "$CACHE" ]; then tar -C "$ROOT" -cf "$CACHE" .; fi
fi
chroot "$ROOT" python3 -c 'import sys, numpy, sympy; print("python", sys.version.split()[0], "numpy", numpy.__version__, "sympy", sympy.__version__)'
# Same layout as the Dockerfile: an unprivileged user, and a world-writable workspace mount point
# (Podman gives a tmpfs mounted there the mode of the image's directory).
chroot "$ROOT" sh -c 'getent group sandbox >/dev/null || groupadd -g 1000 sandbox; id sandbox >/dev/null 2>&1 || useradd -u 1000 -g 1000 -M -d /workspace -s /bin/sh sandbox; mkdir -p /workspace && chmod 0777 /workspace'
TARBALL="$WORK/image.tar"
tar -C "$ROOT" -cf "$TARBALL" .

podman import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /workspace' \
    --change 'USER 1000:1000' \
    --change 'CMD ["sleep", "infinity"]' \
    "$TARBALL" "$IMAGE"
echo "built $IMAGE"
