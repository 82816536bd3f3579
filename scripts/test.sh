#!/usr/bin/env bash
# Every test: set up, then the Rust unit, Harness and pipeline tests, the Node.js module's tests
# and type check, then the Python package's tests and the end-to-end tests that drive
# gst-launch-1.0, the PyGObject app and a meson install.
set -euo pipefail
cd "$(dirname "$0")/.."
# CI builds once from a fresh clone: incremental state would only double target/'s size there.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=0; fi
bash scripts/setup.sh
# Style and lints as the code review has them (see Cargo.toml's [workspace.lints]).
cargo fmt --all --check
cargo clippy --quiet --all-targets -- -D warnings
cargo clippy --quiet -p remotemedia-node --all-targets -- -D warnings
cargo test
export GST_PLUGIN_PATH="$PWD/target/debug"
node --test nodejs/test/
nodejs/node_modules/.bin/tsc --noEmit -p nodejs
.venv/bin/python -m pytest -q python/tests tests
