"""The flagship pipeline end to end, as examples/launch/flagship.sh runs it: an RTSP camera's
audio through remotemediaingest and Silero VAD to remotemediawebrtcsink, and headless
Chromium receiving the audio and the VAD events."""

import asyncio
import subprocess
import sys
import time

from chromium import Browser
from test_ingest import ROOT, rtsp_server, servers  # noqa: F401
from webrtc_peer import free_port


def test_rtsp_to_vad_to_chromium(servers, gst_env):  # noqa: F811
    rtsp_port, port = free_port(), free_port()
    rtsp_server(servers, rtsp_port)
    env = dict(gst_env, RTSP_URI=f"rtsp://127.0.0.1:{rtsp_port}/test", SIGNALING_PORT=str(port),
               EXTRA_SINK_PROPS="ice-loopback-only=true")
    launch = subprocess.Popen(["bash", str(ROOT / "examples" / "launch" / "flagship.sh")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    browser = Browser(f"http://127.0.0.1:{port}/?id=viewer")

    async def scenario():
        try:
            await browser.connect()
            await browser.wait_for("rm.state === 'connected'")
            # The camera's speech: a VAD speech start reaches the page over the data channel.
            start = await browser.wait_for(
                "rm.results.find(r => r.node_id === 'vad' && r.data.is_speech_start) || null", timeout=40)
            assert start["kind"] == "json" and start["data"]["has_speech"]
            await browser.wait_for("document.getElementById('speech').textContent === 'speaking'")
            await browser.evaluate("document.getElementById('unmute').click(); document.getElementById('video').play(); true")
            stats = await browser.wait_for("rm.stats().then(s => s.audioEnergy > 0.001 ? s : null)")
            assert stats["audioSamples"] > 0
        finally:
            await browser.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        launch.terminate()
        out, _ = launch.communicate(timeout=10)
    # gst-launch-1.0 -m shows the same VAD events on the bus.
    assert 'is_speech_start\\":true' in out, out[-3000:]


def run_app(cmd, env, want, cwd=None, timeout=40):
    """Runs an example app until its output contains `want`; returns that output."""
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if want in line:
                return "".join(lines)
        raise AssertionError(f"{cmd[0]} never printed {want!r}: {''.join(lines)[-2000:]}")
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_c_app(servers, gst_env):  # noqa: F811
    c_dir = ROOT / "examples" / "launch" / "c"
    subprocess.run(["make", "-s", "-B"], cwd=c_dir, check=True, timeout=120)
    rtsp_port = free_port()
    rtsp_server(servers, rtsp_port)
    env = dict(gst_env, ICE_LOOPBACK_ONLY="1")
    out = run_app(["./flagship", f"rtsp://127.0.0.1:{rtsp_port}/test", str(free_port())], env,
                  'is_speech_start":true', cwd=c_dir)
    assert "open http://127.0.0.1:" in out


def test_the_pygobject_app(servers, gst_env):  # noqa: F811
    rtsp_port = free_port()
    rtsp_server(servers, rtsp_port)
    env = dict(gst_env, ICE_LOOPBACK_ONLY="1")
    out = run_app([sys.executable, str(ROOT / "examples" / "launch" / "flagship_app.py"),
                   f"rtsp://127.0.0.1:{rtsp_port}/test", str(free_port())], env, "speech ends at")
    assert "speech starts at" in out
