"""B4: audio latency from remotemediawebrtcsink's input to a receiving peer's decoded output.

A click train (audiotestsrc wave=ticks, one tick every 250 ms) goes into the sink; an aiortc
peer on loopback decodes it. A click's send time is its position on the pipeline clock
(base time + PTS + offset in the buffer, CLOCK_MONOTONIC); its arrival is the monotonic time
at which aiortc hands out the decoded frame that holds it.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/webrtc_latency.py [seconds] [--stock-aiortc]
"""

import asyncio
import pathlib
import statistics
import sys
import time

import gi
import numpy as np

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from webrtc_peer import Peer, free_port  # noqa: E402

Gst.init(None)
RATE = 48000
THRESHOLD = 0.2
GAP_NS = 100_000_000  # silence between clicks


def lowest_latency_aiortc():
    """aiortc holds 4 audio packets (80 ms) before decoding; make it hand them out at once."""
    import aiortc.rtcrtpreceiver as receiver

    stock = receiver.JitterBuffer

    def jitter_buffer(capacity, prefetch=0, is_video=False):
        return stock(capacity, prefetch=0, is_video=is_video)

    receiver.JitterBuffer = jitter_buffer


def main(seconds):
    port = free_port()
    pipeline = Gst.parse_launch(
        f"audiotestsrc is-live=true wave=ticks tick-interval=250000000 volume=0.8 samplesperbuffer=480 "
        f"! audio/x-raw,format=S16LE,rate={RATE},channels=1 "
        f"! remotemediawebrtcsink name=s signaling-port={port} ice-loopback-only=true"
    )
    sink = pipeline.get_by_name("s")
    sent = []
    last = [0]

    def probe(pad, info):
        buf = info.get_buffer()
        ok, m = buf.map(Gst.MapFlags.READ)
        pcm = np.frombuffer(m.data, dtype=np.int16).astype(np.float32) / 32768
        buf.unmap(m)
        loud = np.flatnonzero(np.abs(pcm) > THRESHOLD)
        if loud.size:
            t = pipeline.get_base_time() + buf.pts + int(loud[0] * 1e9 / RATE)
            if t - last[0] > GAP_NS:
                sent.append(t)
            last[0] = t + int((loud[-1] - loud[0]) * 1e9 / RATE)
        return Gst.PadProbeReturn.OK

    sink.get_static_pad("audio_0").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)

    async def receive():
        peer = Peer("bench")
        assert await peer.call(port, recv=("audio",)) is None
        await peer.wait_connected()
        track = peer.tracks["audio"]
        got = []
        prev = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            frame = await track.recv()
            now = time.monotonic_ns()
            pcm = frame.to_ndarray().astype(np.float32).ravel() / 32768
            if np.abs(pcm).max() > THRESHOLD:
                if now - prev > GAP_NS:
                    got.append(now)
                prev = now
        await peer.close()
        return got

    received = asyncio.run(receive())
    pipeline.set_state(Gst.State.NULL)
    # Pair each arrival with the latest click sent before it (clicks are 250 ms apart).
    latencies = []
    for r in received:
        before = [s for s in sent if s <= r and r - s < 200_000_000]
        if before:
            latencies.append((r - before[-1]) / 1e6)
    latencies = latencies[2:]  # the first clicks meet a fresh jitter buffer
    latencies.sort()
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"clicks sent {len(sent)}, received {len(received)}, paired {len(latencies)}")
    print(f"B4 sink -> aiortc decoded: median {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms, "
          f"min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if "--stock-aiortc" in sys.argv:
        print("receiver: aiortc as shipped (audio jitter buffer prefetch 4 packets = 80 ms)")
    else:
        lowest_latency_aiortc()
        print("receiver: aiortc with audio jitter-buffer prefetch 0")
    main(float(args[0]) if args else 20)
