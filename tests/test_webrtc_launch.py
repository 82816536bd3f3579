"""The WebRTC elements from gst-launch-1.0, as the README shows them, with an aiortc peer."""

import asyncio
import subprocess
import tempfile
import time

from test_webrtc_server import SPEECH, results, wait_for
from webrtc_peer import Peer, WavTrack, free_port


def launch(args, env):
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(["gst-launch-1.0", "-m", *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    return proc, out


def stop(proc, out):
    proc.terminate()
    proc.wait(10)
    out.seek(0)
    return out.read()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_gst_launch_sink_plays_to_a_peer(gst_env):
    port = free_port()
    proc, out = launch(["audiotestsrc", "is-live=true", "wave=sine", "!", "remotemediawebrtcsink",
                        f"signaling-port={port}", "ice-loopback-only=true"], gst_env)

    async def scenario():
        peer = Peer("launch-peer")
        try:
            assert await peer.call(port, recv=("audio",)) is None
            await peer.wait_connected()
            assert await peer.audio_rms(seconds=1.0) > 0.1
        finally:
            await peer.close()

    try:
        run(scenario())
    finally:
        log = stop(proc, out)
    assert "peer-connected" in log and "launch-peer" in log, log[-2000:]


def test_gst_launch_server_runs_vad_for_a_peer(gst_env, tmp_path):
    port = free_port()
    proc, out = launch(["remotemediawebrtcserver", "manifest=examples/launch/vad.json",
                        f"signaling-port={port}", "ice-loopback-only=true"], gst_env)

    async def scenario():
        peer = Peer("launch-talker")
        try:
            assert await peer.call(port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)]) is None
            await peer.wait_connected()
            await wait_for(lambda: any(r["data"].get("is_speech_start") for r in results(peer)),
                           "a VAD speech start on the data channel")
        finally:
            await peer.close()

    try:
        run(scenario())
        time.sleep(0.5)
    finally:
        log = stop(proc, out)
    # `-m` shows every result with the peer it belongs to.
    lines = [line for line in log.splitlines() if "remotemedia" in line and "launch-talker" in line]
    assert lines, log[-2000:]
    assert any('\\"is_speech_start\\":true' in line for line in lines), lines[-3:]
