"""B5: what each extra receiving peer costs the sender (720p VP8 + Opus, loopback).

Two senders, measured one after the other in the same run:
- remotemediawebrtcsink in gst-launch-1.0: encodes once, sends the same RTP to every peer;
- an aiortc sender (benches/aiortc_sender.py) answering each peer with its own connection
  fed from one shared source track (MediaRelay): aiortc encodes once per peer.
The receivers are aiortc peers in this process whose decoders are switched off, so that the
machine's two cores are left to the senders. CPU is the sender process's utime+stime from
/proc over the measuring window, in % of one core.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/webrtc_fanout.py [seconds]
"""

import asyncio
import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import aiortc.rtcrtpreceiver as receiver  # noqa: E402

from webrtc_peer import Peer, free_port  # noqa: E402


class NullDecoder:
    def decode(self, encoded_frame):
        return []


receiver.get_decoder = lambda codec: NullDecoder()
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def measure(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


async def packets(peers):
    """RTP packets received so far by each peer (all its tracks)."""
    out = []
    for p in peers:
        stats = await p.pc.getStats()
        out.append(sum(s.packetsReceived for s in stats.values() if s.type == "inbound-rtp"))
    return out


async def fan_out(port, target, counts, seconds, pid):
    results = {}
    peers = []
    await asyncio.sleep(2)
    results[0] = await measure(pid, seconds)
    for n in counts:
        while len(peers) < n:
            peer = Peer(f"r{len(peers)}")
            err = await peer.call(port, target=target)
            assert err is None, err
            await peer.wait_connected(30)
            peers.append(peer)
        await asyncio.sleep(3)  # past the first key frames and the bitrate ramp
        before = await packets(peers)
        results[n] = await measure(pid, seconds)
        rates = [(b - a) / seconds for a, b in zip(before, await packets(peers))]
        print(f"  {n:2d} peers: {results[n]:6.1f} % of a core; RTP packets/s per peer "
              f"min {min(rates):.0f} max {max(rates):.0f}", flush=True)
    for p in peers:
        await p.close()
    return results


def report(name, r, counts):
    last = counts[-1]
    if last > 1:
        per_peer = (r[last] - r[1]) / (last - 1)
        ratio = f"; {last} peers / 1 peer = {r[last] / r[1]:.2f}x"
    else:
        per_peer = r[1] - r[0]
        ratio = ""
    print(f"{name}: idle {r[0]:.1f} %, " + ", ".join(f"{n} peers {r[n]:.1f} %" for n in counts)
          + f"{ratio}; each further peer {per_peer:.2f} % of a core")
    return per_peer


def main(seconds):
    env = dict(os.environ)
    port = free_port()
    sink = subprocess.Popen(
        ["gst-launch-1.0", "-q",
         "remotemediawebrtcsink", "name=s", f"signaling-port={port}", "ice-loopback-only=true", "max-peers=20",
         "video-codec=vp8",  # the receivers are aiortc peers: VP8 or H.264, no VP9
         "videotestsrc", "is-live=true", "pattern=smpte", "horizontal-speed=8", "!",
         "video/x-raw,width=1280,height=720,framerate=30/1", "!", "s.video_0",
         "audiotestsrc", "is-live=true", "!", "s.audio_0"],
        env=env,
    )
    try:
        print("remotemediawebrtcsink (720p30 VP8 2 Mbit/s + Opus):", flush=True)
        ours = asyncio.run(fan_out(port, "remotemedia", [1, 5, 10], seconds, sink.pid))
    finally:
        sink.kill()
        sink.wait()

    # The aiortc sender needs a signaling server: an idle remotemediawebrtcsrc provides one.
    port = free_port()
    hub = subprocess.Popen(["gst-launch-1.0", "-q", "remotemediawebrtcsrc", f"signaling-port={port}"], env=env)
    time.sleep(1)
    sender = subprocess.Popen(
        [sys.executable, str(HERE / "aiortc_sender.py"), str(port)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sender.stdout.readline().strip() == "ready"
        print("aiortc sender (720p30 VP8 + Opus, one encoder per peer):", flush=True)
        # Three peers: each costs an encoder, so more would saturate this 2-core machine.
        theirs = asyncio.run(fan_out(port, "aiortc-sender", [1, 2, 3], seconds, sender.pid))
    finally:
        sender.kill()
        hub.kill()
        sender.wait()
        hub.wait()

    a = report("remotemediawebrtcsink", ours, [1, 5, 10])
    b = report("aiortc sender", theirs, [1, 2, 3])
    # Below half a percent of a core, a peer's cost is lost in this machine's noise: the ratio
    # is then given against that floor, as a lower bound.
    floor = 0.5
    bound = "at least " if a < floor else ""
    print(f"CPU per further peer, aiortc / remotemediawebrtcsink: {bound}{b / max(a, floor):.1f}x")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 10)
