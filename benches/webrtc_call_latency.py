"""B10: audio latency from remotemediawebrtcsink's input in one process to
remotemediawebrtcsrc's decoded output in another, the src calling the sink (connect-to) over
the sink's embedded signaling, on loopback. The B4 method: a click train goes into the sink;
a click's send time is its position on the sender's pipeline clock (CLOCK_MONOTONIC, the same
clock in both processes); its arrival is the monotonic time at which the decoded buffer
holding it leaves the src (default), or, with --synced, the time a clock-synced sink renders it
(the jitter buffer's `latency` then counts, as it would at an audio device). Clicks come every
253 ms, so they fall at every position within the 20 ms Opus frames.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/webrtc_call_latency.py [seconds] [--latency MS] [--synced]
"""

import pathlib
import statistics
import subprocess
import sys
import threading
import time

import gi
import numpy as np

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from webrtc_peer import free_port  # noqa: E402

RATE = 48000
THRESHOLD = 0.2
GAP_NS = 100_000_000  # silence between clicks


def sender(port):
    """The sending process: prints `SENT <ns>` for each click as it enters the sink."""
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"audiotestsrc is-live=true wave=ticks tick-interval=253000000 volume=0.8 samplesperbuffer=480 "
        f"! audio/x-raw,format=S16LE,rate={RATE},channels=1 "
        f"! remotemediawebrtcsink name=s signaling-port={port} peer-id=cam1 ice-loopback-only=true"
    )
    last = [0]

    def probe(_pad, info):
        buf = info.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        pcm = np.frombuffer(m.data, dtype=np.int16).astype(np.float32) / 32768
        buf.unmap(m)
        loud = np.flatnonzero(np.abs(pcm) > THRESHOLD)
        if loud.size:
            t = pipeline.get_base_time() + buf.pts + int(loud[0] * 1e9 / RATE)
            if t - last[0] > GAP_NS:
                print(f"SENT {t}", flush=True)
            last[0] = t + int((loud[-1] - loud[0]) * 1e9 / RATE)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("s").get_static_pad("audio_0").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    print("READY", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    pipeline.set_state(Gst.State.NULL)


def main(seconds, latency, synced):
    Gst.init(None)
    port = free_port()
    child = subprocess.Popen([sys.executable, __file__, "--sender", str(port)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "READY"
    sent = []

    def read_sent():
        for line in child.stdout:
            if line.startswith("SENT "):
                sent.append(int(line.split()[1]))

    threading.Thread(target=read_sent, daemon=True).start()
    pipeline = Gst.parse_launch(
        f"remotemediawebrtcsrc name=rx signaling-url=ws://127.0.0.1:{port}/ws peer-id=studio connect-to=cam1 "
        f"ice-loopback-only=true latency={latency} "
        f"audioconvert name=conv ! audio/x-raw,format=S16LE,rate={RATE},channels=1 "
        f"! fakesink name=out sync={str(synced).lower()} signal-handoffs=true"
    )
    rx, conv = pipeline.get_by_name("rx"), pipeline.get_by_name("conv")
    rx.connect("pad-added", lambda _e, pad: pad.link(conv.get_static_pad("sink")))
    received = []
    last = [0]

    def rendered(_sink, buf, _pad):
        now = time.monotonic_ns()
        ok, m = buf.map(Gst.MapFlags.READ)
        pcm = np.frombuffer(m.data, dtype=np.int16).astype(np.float32) / 32768
        buf.unmap(m)
        loud = np.flatnonzero(np.abs(pcm) > THRESHOLD)
        if loud.size:
            # The click sits `loud[0]` samples into a buffer that left just now, in one piece.
            if now - last[0] > GAP_NS:
                received.append(now)
            last[0] = now

    # handoff runs when the sink renders the buffer: at once, or after its clock wait (--synced).
    pipeline.get_by_name("out").connect("handoff", rendered)
    pipeline.set_state(Gst.State.PLAYING)
    time.sleep(seconds)
    pipeline.set_state(Gst.State.NULL)
    child.stdin.close()
    child.wait(10)
    latencies = []
    for r in received:
        before = [s for s in sent if s <= r and r - s < 200_000_000]
        if before:
            latencies.append((r - before[-1]) / 1e6)
    latencies = sorted(latencies[2:])  # the first clicks meet a fresh jitter buffer
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"src latency={latency} ms, {'synced sink' if synced else 'decoded output'}: clicks sent {len(sent)}, received {len(received)}, paired {len(latencies)}")
    print(f"B10 sink -> src across processes: median {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
          f"min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--sender"]:
        sender(int(sys.argv[2]))
    else:
        args = [a for a in sys.argv[1:] if not a.startswith("--")]
        latency = 50
        if "--latency" in sys.argv:
            latency = int(sys.argv[sys.argv.index("--latency") + 1])
            args.remove(str(latency))
        main(float(args[0]) if args else 20, latency, "--synced" in sys.argv)
