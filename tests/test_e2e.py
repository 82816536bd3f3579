"""End to end, as a user runs it: gst-launch-1.0, gst-inspect-1.0, the PyGObject app, the demo
formatter and a meson install."""

import json
import os
import re
import subprocess
import sys

from conftest import LAUNCH, ROOT
from webrtc_peer import free_port

# Where a detected segment may lie around the true speech: Silero's frames are 32 ms, the
# manifest pads 30 ms and waits 300 ms of silence before an end.
START_TOLERANCE_MS = 150
END_TOLERANCE_MS = 250


def gst_launch_vad(env, manifest="vad.json"):
    cmd = [
        "gst-launch-1.0", "-m",
        "filesrc", f"location={LAUNCH / 'speech.wav'}", "!", "wavparse", "!", "audioconvert", "!",
        "audioresample", "!", "remotemediapipeline", f"manifest={LAUNCH / manifest}", "!", "fakesink",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def check_segments(found, known):
    assert len(found) == len(known), f"found {found}, expected {known}"
    for (start, end), (k_start, k_end) in zip(found, known):
        assert abs(start - k_start) <= START_TOLERANCE_MS, (found, known)
        assert abs(end - k_end) <= END_TOLERANCE_MS, (found, known)


def test_gst_launch_finds_the_known_speech_segments(gst_env, known_segments):
    run = gst_launch_vad(gst_env)
    assert run.returncode == 0, run.stderr + run.stdout
    messages = [line for line in run.stdout.splitlines() if "remotemedia, node-id=(string)vad" in line]
    assert messages, run.stdout
    for line in messages:
        assert "kind=(string)json" in line and "json=(string)" in line and "pts=(guint64)" in line
    segments = subprocess.run(
        [sys.executable, str(LAUNCH / "segments.py"), "--json"],
        input=run.stdout, capture_output=True, text=True, check=True,
    )
    check_segments(json.loads(segments.stdout), known_segments)


def test_pts_and_timestamp_ms_agree(gst_env):
    run = gst_launch_vad(gst_env)
    starts = re.findall(r'is_speech_start\\":true.*?timestamp_ms\\":(\d+(?:\.\d+)?).*?pts=\(guint64\)(\d+)', run.stdout)
    assert len(starts) == 2, run.stdout[-2000:]
    for ms, pts in starts:
        assert abs(float(ms) - int(pts) / 1e6) <= 1.0


def test_pygobject_app_reads_vad_events_from_the_bus(gst_env, known_segments):
    run = subprocess.run(
        [sys.executable, str(LAUNCH / "vad_app.py"), "--json"],
        env=gst_env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr
    check_segments(json.loads(run.stdout), known_segments)


def test_invalid_manifest_reports_every_error_and_exits(gst_env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({
        "version": "v1",
        "nodes": [
            {"id": "resample", "node_type": "FastResampleNode", "params": {"target_rate": 16000, "qualty": "High"}},
            {"id": "vad", "node_type": "SileroVadNode"},
        ],
        "connections": [{"from": "resample", "to": "vad"}],
    }))
    run = gst_launch_vad(gst_env, manifest=str(bad))
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert 'param \\"qualty\\" unknown param (did you mean \\"quality\\"' in out or \
        'param "qualty" unknown param (did you mean "quality"' in out, out
    assert "SileroVADNode" in out, out


def test_gst_inspect_documents_plugin_and_properties(gst_env):
    plugin = subprocess.run(["gst-inspect-1.0", "remotemedia"], env=gst_env, capture_output=True, text=True)
    assert plugin.returncode == 0, plugin.stderr
    for needle in ["Version", "0.1.0", "License", "MIT/X11", "Source module", "remotemediapipeline"]:
        assert needle in plugin.stdout
    element = subprocess.run(["gst-inspect-1.0", "remotemediapipeline"], env=gst_env, capture_output=True, text=True)
    for prop in ["manifest ", "manifest-json", "post-messages", "metrics"]:
        assert prop in element.stdout, prop
    assert "SOMETIMES" in element.stdout.upper() and "text" in element.stdout


def test_meson_install_needs_no_plugin_path(gst_env, tmp_path):
    build = tmp_path / "build"
    plugindir = tmp_path / "plugins"
    subprocess.run(
        ["meson", "setup", str(build), "-Dcargo_profile=debug", f"-Dcargo_target_dir={ROOT / 'target'}",
         f"-Dplugindir={plugindir}"],
        cwd=ROOT, check=True, capture_output=True,
    )
    subprocess.run(["meson", "install", "-C", str(build)], check=True, capture_output=True)
    assert (plugindir / "libgstremotemedia.so").is_file()
    env = dict(gst_env)
    del env["GST_PLUGIN_PATH"]
    # The install directory stands in for the system plugin directory (beside the real one,
    # whose elements the SRT check below needs).
    system = subprocess.run(["pkg-config", "--variable=pluginsdir", "gstreamer-1.0"], check=True,
                            capture_output=True, text=True).stdout.strip()
    env["GST_PLUGIN_SYSTEM_PATH_1_0"] = f"{plugindir}:{system}"
    env["GST_REGISTRY_1_0"] = str(tmp_path / "registry.bin")
    run = subprocess.run(["gst-inspect-1.0", "remotemediapipeline"], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "RemoteMedia pipeline" in run.stdout
    # SRT ingest finds its relay beside the installed plugin (not in PATH, not beside
    # gst-launch-1.0): the relay's own connection error reaches the bus.
    relay = plugindir / "remotemedia-srt-relay"
    assert os.access(relay, os.X_OK), "the SRT relay is installed beside the plugin"
    run = subprocess.run(["gst-launch-1.0", "remotemediaingest", f"uri=srt://127.0.0.1:{free_port()}?mode=caller",
                          "max-attempts=1", "!", "fakesink"], env=env, capture_output=True, text=True, timeout=60)
    assert "RECONNECT_FAILED" in run.stderr and "Connection timeout" in run.stderr, run.stderr[-2000:]
