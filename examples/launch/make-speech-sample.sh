#!/usr/bin/env bash
# Makes speech.wav (the demo and test sample) with espeak-ng and sox, and speech.segments.json
# with the exact speech times. Layout: 1.0 s silence, sentence 1, 1.5 s silence, sentence 2,
# 1.0 s silence; 22050 Hz mono S16LE, espeak-ng's own rate, so pipelines resample it.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
say() { # text out.wav: speak, then trim espeak's own leading/trailing silence
  espeak-ng -v en-us -s 150 -w "$tmp/raw.wav" "$1"
  sox "$tmp/raw.wav" "$2" silence 1 0.01 0.5% reverse silence 1 0.01 0.5% reverse
}
say "Hello, this is the remote media voice activity demo." "$tmp/s1.wav"
say "Speech segments are found by the Silero model, on the input timeline." "$tmp/s2.wav"
sox -n -r 22050 -c 1 -b 16 "$tmp/sil1.wav" trim 0 1.0
sox -n -r 22050 -c 1 -b 16 "$tmp/sil15.wav" trim 0 1.5
sox "$tmp/sil1.wav" "$tmp/s1.wav" "$tmp/sil15.wav" "$tmp/s2.wav" "$tmp/sil1.wav" -r 22050 -c 1 -b 16 speech.wav
d1=$(soxi -D "$tmp/s1.wav"); d2=$(soxi -D "$tmp/s2.wav"); total=$(soxi -D speech.wav)
python3 - "$d1" "$d2" "$total" > speech.segments.json <<'PY'
import json, sys
d1, d2, total = map(float, sys.argv[1:])
s1 = 1.0; s2 = s1 + d1 + 1.5
print(json.dumps({"duration_ms": round(total * 1000),
                  "segments_ms": [[round(s1 * 1000), round((s1 + d1) * 1000)],
                                  [round(s2 * 1000), round((s2 + d2) * 1000)]]}, indent=2))
PY
cat speech.segments.json
