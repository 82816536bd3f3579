"""Reads `gst-launch-1.0 -m` output with remotemediapipeline's VAD messages on stdin and
prints one line per speech segment (or JSON with --json)."""

import json
import re
import sys

MESSAGE = re.compile(r'remotemedia, node-id=\(string\)(?P<node>[^,]+), kind=\(string\)json, json=\(string\)"(?P<json>.*)", pts=')


def unescape(text: str) -> str:
    # gst-launch escapes the string value: \" \, \\ and spaces
    return re.sub(r"\\(.)", r"\1", text)


def main() -> None:
    segments = []
    start = None
    for line in sys.stdin:
        m = MESSAGE.search(line)
        if not m:
            if "ERROR" in line:
                print(line.rstrip(), file=sys.stderr)
            continue
        event = json.loads(unescape(m.group("json")))
        if event.get("is_speech_start"):
            start = event["timestamp_ms"]
        elif event.get("is_speech_end"):
            seg = (event.get("speech_start_ms", start), event["timestamp_ms"])
            segments.append(seg)
            if "--json" not in sys.argv:
                print(f"speech {seg[0] / 1000:7.3f} s -> {seg[1] / 1000:7.3f} s  ({(seg[1] - seg[0]) / 1000:.3f} s)", flush=True)
            start = None
    if "--json" in sys.argv:
        print(json.dumps(segments))
    elif not segments:
        print("no speech found")


if __name__ == "__main__":
    main()
