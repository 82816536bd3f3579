"""The flagship pipeline from a PyGObject app: a live source's audio through Silero VAD to every
browser that opens http://127.0.0.1:<port>/, printing speech starts and ends from the bus.

    GST_PLUGIN_PATH=target/debug .venv/bin/python examples/launch/flagship_app.py rtsp://127.0.0.1:8554/test [port]
"""

import json
import os
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

HERE = Path(__file__).resolve().parent


def main(uri, port=8080):
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'remotemediaingest name=in uri="{uri}" in.audio_0 ! audioconvert ! audioresample '
        f'! remotemediapipeline manifest="{HERE / "vad.json"}" ! remotemediawebrtcsink name=out signaling-port={port}'
    )
    if os.environ.get("ICE_LOOPBACK_ONLY"):
        pipeline.get_by_name("out").set_property("ice-loopback-only", True)
    loop = GLib.MainLoop()
    status = 0

    def on_message(_bus, msg):
        nonlocal status
        if msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            if s.get_name() == "remotemedia":
                event = json.loads(s.get_value("json"))
                if event.get("is_speech_start"):
                    print(f"speech starts at {event['timestamp_ms'] / 1000:.2f} s", flush=True)
                elif event.get("is_speech_end"):
                    print(f"speech ends at {event['timestamp_ms'] / 1000:.2f} s", flush=True)
            elif s.get_name() == "reconnect":
                print(f"reconnecting (attempt {s.get_value('attempt')}): {s.get_value('reason')}", flush=True)
            elif s.get_name() == "peer-connected":
                print(f"peer connected: {s.get_value('peer-id')}", flush=True)
        elif msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            print(f"error: {err.message}", file=sys.stderr)
            status = 1
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        msg = bus.pop_filtered(Gst.MessageType.ERROR)
        print(f"error: {msg.parse_error()[0].message if msg else 'the pipeline did not start'}", file=sys.stderr)
        return 1
    print(f"open http://127.0.0.1:{pipeline.get_by_name('out').get_property('signaling-port')}/", flush=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], *(int(a) for a in sys.argv[2:3])))
