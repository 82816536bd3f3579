#!/usr/bin/env bash
# The base image of container nodes (a Python node with a "docker" block): Debian 12's
# Python 3.11 with pip and numpy, made by debootstrap from Debian's archive (there is no image
# registry to pull from) and imported as localhost/remotemedia-base:py3.11 with the label
# remotemedia.base=1. The engine's image store is the cache: the image carries this script's
# digest (remotemedia.base.key), and it is rebuilt only when the script changes. Node images
# (a base plus pip packages) are built on demand by the runtime, and removed here when their
# base is replaced.
#
# Another Python version is added the same way: an image with that python3, pip and numpy,
# tagged localhost/remotemedia-base:py<version>, labelled remotemedia.base=1.
set -euo pipefail
cd "$(dirname "$0")/.."
engine="${REMOTEMEDIA_CONTAINER_ENGINE:-podman}"
ref=localhost/remotemedia-base:py3.11

# podman on these machines: the sandbox forbids raising rlimits (podman's default ulimits), and
# crun cannot set limits on the hybrid cgroup hierarchy, runc can.
if [ "$(basename "$engine")" = podman ]; then
  conf=/etc/containers/containers.conf.d/50-remotemedia.conf
  want=$'# Written by remotemedia scripts/container-base.sh.\n[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"'
  if [ "$(cat "$conf" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$(dirname "$conf")"
    printf '%s\n' "$want" > "$conf"
  fi
fi

key=$(sha256sum scripts/container-base.sh | cut -c1-16)
have=$("$engine" image inspect --format '{{ index .Config.Labels "remotemedia.base.key" }}' "$ref" 2>/dev/null || true)
if [ "$have" = "$key" ]; then
  exit 0
fi
echo "setup: building the container nodes' base image $ref (debootstrap)"
work=$(mktemp -d /var/tmp/remotemedia-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
if ! debootstrap --variant=minbase --include=python3,python3-pip,python3-numpy,ca-certificates \
    bookworm "$work/root" http://deb.debian.org/debian > "$work/log" 2>&1; then
  tail -20 "$work/log" >&2
  exit 1
fi
rm -rf "$work/root"/var/cache/apt/archives/*.deb "$work/root"/var/lib/apt/lists/* \
  "$work/root"/usr/share/doc/* "$work/root"/usr/share/man/* "$work/root"/usr/share/locale/*
old=$("$engine" image inspect --format '{{.Id}}' "$ref" 2>/dev/null || true)
if ! tar -C "$work/root" -c . | "$engine" import \
    --change 'LABEL remotemedia.base=1' --change "LABEL remotemedia.base.key=$key" \
    --change 'CMD ["python3"]' - "$ref" > "$work/import.log" 2>&1; then
  cat "$work/import.log" >&2
  exit 1
fi
if [ -n "$old" ]; then
  "$engine" images -q --filter label=remotemedia.spec | xargs -r "$engine" rmi -f > /dev/null 2>&1 || true
  "$engine" rmi -f "$old" > /dev/null 2>&1 || true
fi
