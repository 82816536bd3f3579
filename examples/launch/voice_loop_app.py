#!/usr/bin/env python3
"""A PyGObject app: runs a WAV file through the voice loop (Silero VAD -> one utterance ->
PocketSphinx -> espeak-ng), prints each transcript as it comes and writes the spoken replies
to a WAV file.

    GST_PLUGIN_PATH=target/debug .venv/bin/python examples/launch/voice_loop_app.py speech.wav \\
        [--out replies.wav] [--manifest voice_loop.json]
"""

import argparse
import json
import pathlib

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def run(wav: str, manifest: str, out: str) -> list[str]:
    Gst.init(None)
    pipeline = Gst.parse_launch(
        "filesrc name=src ! wavparse ! audioconvert ! audioresample ! remotemediapipeline name=rm "
        "! audioconvert ! audio/x-raw,format=S16LE ! wavenc ! filesink name=sink"
    )
    pipeline.get_by_name("src").set_property("location", wav)
    pipeline.get_by_name("rm").set_property("manifest", manifest)
    pipeline.get_by_name("sink").set_property("location", out)
    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.timed_pop_filtered(Gst.SECOND, Gst.MessageType.ERROR)
        raise SystemExit(msg.parse_error()[0].message if msg else "cannot start the pipeline")
    transcripts = []
    try:
        while True:
            msg = bus.timed_pop_filtered(
                120 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR
            )
            if msg is None:
                raise SystemExit("timed out waiting for the pipeline")
            if msg.type == Gst.MessageType.EOS:
                break
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                raise SystemExit(f"error: {err.message}\n{debug}")
            s = msg.get_structure()
            # Transcripts are the text results of the speech recognition node.
            if s.get_name() == "remotemedia" and s.get_string("kind") == "text":
                text = s.get_string("json")
                print(f"{s.get_value('pts') / 1e9:7.3f} s  {s.get_string('node-id')}: {text}", flush=True)
                transcripts.append(text)
    finally:
        pipeline.set_state(Gst.State.NULL)
    return transcripts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("wav")
    p.add_argument("--out", default="replies.wav", help="where the spoken replies go")
    p.add_argument("--manifest", default=str(HERE / "voice_loop.json"))
    p.add_argument("--json", action="store_true", help="print the transcripts as one JSON list at the end")
    args = p.parse_args()
    transcripts = run(args.wav, args.manifest, args.out)
    if args.json:
        print(json.dumps(transcripts))


if __name__ == "__main__":
    main()
