#!/usr/bin/env python3
"""A PyGObject app: runs a WAV file through remotemediapipeline with a VAD manifest and
prints the speech segments it reads from the bus.

    GST_PLUGIN_PATH=target/debug .venv/bin/python examples/launch/vad_app.py [file.wav] [--manifest vad.json] [--json]
"""

import argparse
import json
import pathlib
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def run(wav: str, manifest: str) -> list:
    Gst.init(None)
    pipeline = Gst.Pipeline.new("vad-app")
    elements = {}
    for factory, name in [
        ("filesrc", "src"),
        ("wavparse", "parse"),
        ("audioconvert", "convert"),
        ("audioresample", "resample"),
        ("remotemediapipeline", "rm"),
        ("fakesink", "sink"),
    ]:
        element = Gst.ElementFactory.make(factory, name)
        if element is None:
            raise SystemExit(f"element {factory} not found (is GST_PLUGIN_PATH set to the plugin's directory?)")
        pipeline.add(element)
        elements[name] = element
    elements["src"].set_property("location", wav)
    elements["rm"].set_property("manifest", manifest)
    chain = ["src", "parse", "convert", "resample", "rm", "sink"]
    for a, b in zip(chain, chain[1:]):
        elements[a].link(elements[b])

    segments = []
    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
        raise SystemExit(msg.parse_error()[0].message if msg else "cannot start the pipeline")
    try:
        while True:
            msg = bus.timed_pop_filtered(
                60 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR
            )
            if msg is None:
                raise SystemExit("timed out waiting for the pipeline")
            if msg.type == Gst.MessageType.EOS:
                break
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                raise SystemExit(f"error: {err.message}\n{debug}")
            s = msg.get_structure()
            if s is None or s.get_name() != "remotemedia" or s.get_string("kind") != "json":
                continue
            event = json.loads(s.get_string("json"))
            if event.get("is_speech_end"):
                segments.append([event["speech_start_ms"], event["timestamp_ms"]])
    finally:
        pipeline.set_state(Gst.State.NULL)
    return segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wav", nargs="?", default=str(HERE / "speech.wav"))
    parser.add_argument("--manifest", default=str(HERE / "vad.json"))
    parser.add_argument("--json", action="store_true", help="print the segments as JSON")
    args = parser.parse_args()
    segments = run(args.wav, args.manifest)
    if args.json:
        print(json.dumps(segments))
        return
    for start, end in segments:
        print(f"speech {start / 1000:7.3f} s -> {end / 1000:7.3f} s")
    if not segments:
        print("no speech found")


if __name__ == "__main__":
    sys.exit(main())
