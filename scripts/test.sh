#!/usr/bin/env bash
# Every test: set up, then the Rust unit, Harness and pipeline tests, then the Python package's
# tests and the end-to-end tests that drive gst-launch-1.0, the PyGObject app and a meson install.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test
export GST_PLUGIN_PATH="$PWD/target/debug"
# The sink's tests (and the sink on gRPC signaling) run in a process of their own: run after the server's in one process they
# fail now and then (no media reaches the first aiortc peer; open bug, see the README's Known issues).
.venv/bin/python -m pytest -q python/tests tests --ignore=tests/test_webrtc_sink.py \
  --ignore=tests/test_grpc_signaling_url.py
.venv/bin/python -m pytest -q tests/test_webrtc_sink.py tests/test_grpc_signaling_url.py
