"""B12: video glass-to-glass from a WHIP publisher to a WHEP player, on loopback.

    publisher (process 1)  appsrc, frame numbers burnt in ! remotemediawebrtcsink whip-url=.../whip
    relay     (process 2)  remotemediawebrtcsrc (WHIP in, decode=false) ! remotemediawebrtcsink (WHEP out)
    player    (this one)   aiortc WHEP client, reads the number back from each decoded frame

A frame's send time is the monotonic time its buffer enters the publisher's sink; its arrival
the monotonic time aiortc hands out the decoded frame (one machine, one clock). The relay
forwards the encoded VP8 without decoding it (one encode in the whole chain).

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/whip_whep_glass.py [seconds]
"""

import asyncio
import pathlib
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from webrtc_peer import free_port  # noqa: E402

W, H, FPS = 320, 240, 30
BITS = 16
CELL = W // BITS  # one bit per 20-pixel-wide column band, white = 1


def burn(n):
    """An I420 frame whose top band encodes `n` in 16 black/white cells."""
    y = np.full((H, W), 64, dtype=np.uint8)
    for bit in range(BITS):
        if n >> bit & 1:
            y[: H // 3, bit * CELL:(bit + 1) * CELL] = 235
        else:
            y[: H // 3, bit * CELL:(bit + 1) * CELL] = 16
    uv = np.full((H // 2, W // 2), 128, dtype=np.uint8)
    return y.tobytes() + uv.tobytes() + uv.tobytes()


def read_number(gray):
    band = gray[H // 12: H // 4]
    return sum(1 << bit for bit in range(BITS) if band[:, bit * CELL + 4:(bit + 1) * CELL - 4].mean() > 128)


def publisher(whip_url):
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstApp", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    pipeline = Gst.parse_launch(
        f"appsrc name=src is-live=true do-timestamp=true format=time "
        f"caps=video/x-raw,format=I420,width={W},height={H},framerate={FPS}/1 ! s.video_0 "
        f"remotemediawebrtcsink name=s whip-url={whip_url} ice-loopback-only=true video-codec=vp8"
    )
    src = pipeline.get_by_name("src")
    pipeline.set_state(Gst.State.PLAYING)
    print("READY", flush=True)
    n = 0
    start = time.monotonic()
    while True:
        due = start + n / FPS
        time.sleep(max(0.0, due - time.monotonic()))
        buf = Gst.Buffer.new_wrapped(burn(n))
        print(f"SENT {n} {time.monotonic_ns()}", flush=True)
        if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
            break
        n += 1


async def play(url, seconds):
    from whip_client import player

    p = player(url)
    assert await p.negotiate() == 201, p.body
    await p.wait_connected()
    got = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        frame = await asyncio.wait_for(p.tracks["video"].recv(), 10)
        now = time.monotonic_ns()
        got.append((read_number(frame.to_ndarray(format="gray")), now))
    await p.pc.close()
    return got


def main(seconds):
    whip_port, whep_port = free_port(), free_port()
    relay_log = open("/tmp/b12-relay.log", "w")
    relay = subprocess.Popen([
        "gst-launch-1.0", "-m", "remotemediawebrtcsrc", "name=rx", f"signaling-port={whip_port}", "decode=false",
        "latency=20", "ice-loopback-only=true", "remotemediawebrtcsink", "name=tx", f"signaling-port={whep_port}",
        "ice-loopback-only=true", "video-codec=vp8", "rx.video_0", "!", "queue", "!", "tx.video_0",
    ], stdout=relay_log, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    pub = subprocess.Popen([sys.executable, __file__, "--publish", f"http://127.0.0.1:{whip_port}/whip"],
                           stdout=subprocess.PIPE, text=True)
    assert pub.stdout.readline().strip() == "READY"
    sent = {}

    def read_sent():
        for line in pub.stdout:
            if line.startswith("SENT "):
                _, n, t = line.split()
                sent[int(n)] = int(t)

    threading.Thread(target=read_sent, daemon=True).start()
    time.sleep(2.0)  # the relay has the publisher's stream
    try:
        got = asyncio.run(play(f"http://127.0.0.1:{whep_port}/whep", seconds))
    finally:
        pub.kill()
        relay.terminate()
        relay.wait(10)
    latencies = sorted((t - sent[n]) / 1e6 for n, t in got if n in sent and 0 < t - sent[n] < 2e9)
    latencies = latencies[int(len(latencies) * 0.0):]
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"frames played {len(got)}, matched {len(latencies)}")
    print(f"B12 WHIP publish -> relay -> WHEP play, glass to glass: median {statistics.median(latencies):.1f} ms, "
          f"p95 {p95:.1f} ms, min {latencies[0]:.1f} ms, max {latencies[-1]:.1f} ms")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--publish"]:
        publisher(sys.argv[2])
    else:
        import aioice.ice

        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
        main(float(sys.argv[1]) if len(sys.argv) > 1 else 20)
