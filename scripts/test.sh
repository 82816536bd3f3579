#!/usr/bin/env bash
# Every test: set up, then the Rust unit, Harness and pipeline tests, then the end-to-end
# tests that drive gst-launch-1.0, the PyGObject app and a meson install.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo test --workspace
export GST_PLUGIN_PATH="$PWD/target/debug"
.venv/bin/python -m pytest -q tests
