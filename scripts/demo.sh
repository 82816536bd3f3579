#!/usr/bin/env bash
# The demo: set up, then run the shipped speech sample through Silero VAD in GStreamer and
# print each speech segment. Pass another WAV file to use it instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GST_PLUGIN_PATH="$PWD/target/debug${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
wav=${1:-examples/launch/speech.wav}
echo "gst-launch-1.0 -m filesrc location=$wav ! wavparse ! audioconvert ! audioresample ! remotemediapipeline manifest=examples/launch/vad.json ! fakesink"
gst-launch-1.0 -m filesrc location="$wav" ! wavparse ! audioconvert ! audioresample \
  ! remotemediapipeline manifest=examples/launch/vad.json ! fakesink \
  | .venv/bin/python examples/launch/segments.py
