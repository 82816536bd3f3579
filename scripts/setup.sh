#!/usr/bin/env bash
# Installs what is missing on Debian 12 and builds the plugin. Idempotent: when everything is
# present it only asks dpkg, compares a stamp and lets cargo find nothing to do.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config build-essential
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  python3-venv python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
  gstreamer1.0-plugins-ugly gstreamer1.0-libav chromium
  espeak-ng sox meson ninja-build
  gstreamer1.0-plugins-bad gir1.2-gst-rtsp-server-1.0 nginx-light libnginx-mod-rtmp
  clang lld
  podman runc debootstrap
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Node.js and npm (the WHIP/WHEP test pages' npm client), from Debian when the machine has none.
if ! command -v npm >/dev/null; then
  echo "setup: installing nodejs npm"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq nodejs npm >/dev/null
fi
npm_stamp=$(sha256sum tests/web/package-lock.json | cut -d' ' -f1)
if [ "$(cat tests/web/node_modules/.setup-stamp 2>/dev/null)" != "$npm_stamp" ]; then
  echo "setup: installing the test pages' npm packages"
  npm ci --prefix tests/web --no-audit --no-fund --loglevel=error >/dev/null
  echo "$npm_stamp" > tests/web/node_modules/.setup-stamp
fi

# The project virtualenv sees Debian's PyGObject (python3-gi) through system site-packages.
if [ ! -x .venv/bin/python ]; then
  /usr/bin/python3 -m venv --system-site-packages .venv
fi
stamp=$(cat requirements.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  # Only the ONNX model files of silero-vad are used; its torch dependency is not needed.
  .venv/bin/pip install -q --disable-pip-version-check --no-deps silero-vad==6.2.3
  echo "$stamp" > .venv/.setup-stamp
fi

cargo build --quiet -p gst-plugin-remotemedia
# The WASM example (examples/wasm), built with Debian's clang for wasm32 and lld's wasm-ld.
mkdir -p target/wasm
for src in examples/wasm/*.c; do
  out="target/wasm/$(basename "${src%.c}").wasm"
  if [ ! -f "$out" ] || [ "$src" -nt "$out" ] || [ examples/wasm/bump_alloc.h -nt "$out" ]; then
    clang --target=wasm32 -O2 -msimd128 -nostdlib -Wl,--no-entry -Wl,--export-dynamic -Wl,--allow-undefined \
      -o "$out" "$src"
  fi
done
# The remotemedia Python package, editable in .venv, with its native module built by maturin
# (in a target dir of its own, so no Python module lands where GST_PLUGIN_PATH points).
if ! log=$(VIRTUAL_ENV="$PWD/.venv" .venv/bin/maturin develop --release -m python/Cargo.toml --target-dir target/python 2>&1); then
  echo "$log" >&2
  exit 1
fi
# The Node.js module (nodejs/index.node, which nodejs/index.js loads), built on the release
# dependencies the Python module's build left in target/python; copied (by a rename, so a
# running node keeps the file it mapped) only when it changed.
cargo build --quiet --release -p remotemedia-node --target-dir target/python
if ! cmp -s target/python/release/libremotemedia_node.so nodejs/index.node; then
  cp target/python/release/libremotemedia_node.so nodejs/index.node.tmp
  mv -f nodejs/index.node.tmp nodejs/index.node
fi
# The base image of container nodes (Python nodes with a "docker" block).
if [ "${SKIP_CONTAINER_TESTS:-}" != 1 ]; then
  bash scripts/container-base.sh
fi
# TypeScript and Node's types, for the type check of nodejs/index.d.ts.
node_stamp=$(sha256sum nodejs/package-lock.json | cut -d' ' -f1)
if [ "$(cat nodejs/node_modules/.setup-stamp 2>/dev/null)" != "$node_stamp" ]; then
  echo "setup: installing the Node.js module's npm packages"
  npm ci --prefix nodejs --no-audit --no-fund --loglevel=error >/dev/null
  echo "$node_stamp" > nodejs/node_modules/.setup-stamp
fi
