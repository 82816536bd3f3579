#!/usr/bin/env bash
# Proof of a stable suite (issue 15): the full pytest suite RUNS times in a row, after the setup
# and build of scripts/test.sh. With LOADED=1 the first run has both cores busy with two `yes`
# processes. Each run's result goes to one line of $OUT (default target/pytest-loop.txt), its log
# next to it; the script stops at the first failing run and exits with its status.
# Usage: RUNS=10 LOADED=1 bash scripts/pytest-loop.sh
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
out=${OUT:-target/pytest-loop.txt}
export GST_PLUGIN_PATH="$PWD/target/debug"
mkdir -p "$(dirname "$out")"
run_once() { # $1: label
    local start rc log="${out%.txt}-$1.log"
    start=$(date +%s)
    .venv/bin/python -m pytest -q python/tests tests >"$log" 2>&1
    rc=$?
    echo "$1 rc=$rc $(($(date +%s) - start))s $(tail -1 "$log")" >>"$out"
    return $rc
}
if [ "${LOADED:-0}" = 1 ]; then
    yes >/dev/null & y1=$!
    yes >/dev/null & y2=$!
    run_once loaded; rc=$?
    kill $y1 $y2
    [ $rc = 0 ] || exit $rc
fi
for i in $(seq 1 "$runs"); do
    run_once "idle-$i" || exit $?
done
