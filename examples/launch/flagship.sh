#!/usr/bin/env bash
# The flagship pipeline: a live RTSP source's audio through Silero VAD to every browser that
# opens http://127.0.0.1:${SIGNALING_PORT:-8080}/ (audio on the track, VAD events on the data
# channel and on the bus, printed by -m). Any URI remotemediaingest reads works: rtmp://,
# srt://, udp://, a file path.
#
#   RTSP_URI=rtsp://127.0.0.1:8554/test examples/launch/flagship.sh
set -euo pipefail
cd "$(dirname "$0")"
exec gst-launch-1.0 -m \
  remotemediaingest uri="${RTSP_URI:-rtsp://127.0.0.1:8554/test}" name=in \
  in.audio_0 ! audioconvert ! audioresample \
  ! remotemediapipeline manifest=vad.json \
  ! remotemediawebrtcsink signaling-port="${SIGNALING_PORT:-8080}" ${EXTRA_SINK_PROPS:-}
