"""Remote execution, as users reach it: RemotePipelineNode in a gst-launch-1.0 pipeline and in
a Python-run manifest, and remotemedia.remote.execute_pipeline, against a real
remotemedia-server on loopback."""

import asyncio
import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from conftest import LAUNCH
from server_process import ServerProcess
from test_e2e import check_segments
from webrtc_peer import free_port

remote = pytest.importorskip("remotemedia.remote")
from remotemedia import runtime  # noqa: E402


@pytest.fixture(scope="module")
def server():
    s = ServerProcess("--require-auth", "--auth-tokens", "sesame", ws="off", metrics="off")
    yield s
    s.stop()


def speech_chunks(ms=100):
    with wave.open(str(LAUNCH / "speech.wav")) as w:
        rate, channels = w.getframerate(), w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    step = rate * ms // 1000 * channels
    return [
        {**runtime.numpy_to_audio_dict(pcm[i:i + step], rate, channels), "pts": i // channels * 1_000_000_000 // rate}
        for i in range(0, len(pcm), step)
    ]


def segments(outputs, node_id):
    found, start = [], None
    for o in outputs:
        if o["type"] != "json" or o["node_id"] != node_id:
            continue
        event = o["data"]
        if event.get("is_speech_start"):
            start = event["timestamp_ms"]
        elif event.get("is_speech_end"):
            found.append((event.get("speech_start_ms", start), event["timestamp_ms"]))
    return found


def remote_manifest(server, mode, token="sesame"):
    return {
        "version": "v1",
        "nodes": [{
            "id": "remote", "node_type": "RemotePipelineNode",
            "params": {"endpoint": f"grpc://{server.grpc}", "manifest": str(LAUNCH / "vad.json"),
                       "mode": mode, "auth_token": token},
        }],
    }


def test_gst_launch_streams_vad_to_a_remote_server(server, gst_env, known_segments, tmp_path):
    manifest = tmp_path / "remote_vad.json"
    manifest.write_text(json.dumps(remote_manifest(server, "streaming")))
    run = subprocess.run(
        ["gst-launch-1.0", "-m", "filesrc", f"location={LAUNCH / 'speech.wav'}", "!", "wavparse", "!",
         "audioconvert", "!", "audioresample", "!", "remotemediapipeline", f"manifest={manifest}", "!", "fakesink"],
        env=gst_env, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr + run.stdout[-2000:]
    assert "remotemedia, node-id=(string)remote" in run.stdout
    found = subprocess.run([sys.executable, str(LAUNCH / "segments.py"), "--json"],
                           input=run.stdout, capture_output=True, text=True, check=True)
    check_segments(json.loads(found.stdout), known_segments)


def test_gst_launch_reports_a_refused_token_naming_the_node(server, gst_env, tmp_path):
    manifest = tmp_path / "remote_vad.json"
    manifest.write_text(json.dumps(remote_manifest(server, "streaming", token="wrong")))
    run = subprocess.run(
        ["gst-launch-1.0", "audiotestsrc", "num-buffers=20", "!", "audioconvert", "!",
         "remotemediapipeline", f"manifest={manifest}", "!", "fakesink"],
        env=gst_env, capture_output=True, text=True, timeout=60,
    )
    assert run.returncode != 0
    out = run.stdout + run.stderr
    assert "remote" in out and "Unauthenticated" in out, out[-2000:]


def test_python_manifest_with_a_remote_node(server, known_segments):
    outputs = asyncio.run(runtime.execute_pipeline_with_input(remote_manifest(server, "streaming"), speech_chunks()))
    check_segments(segments(outputs, "remote"), known_segments)


def test_remote_execute_pipeline_from_python(server, known_segments):
    vad = json.loads((LAUNCH / "vad.json").read_text())
    outputs = asyncio.run(remote.execute_pipeline(f"grpc://{server.grpc}", vad, speech_chunks(), auth_token="sesame"))
    check_segments(segments(outputs, "vad"), known_segments)


def test_remote_errors_name_their_cause(server):
    vad = json.loads((LAUNCH / "vad.json").read_text())
    with pytest.raises(remote.RemoteError, match="Unauthenticated"):
        asyncio.run(remote.execute_pipeline(f"grpc://{server.grpc}", vad, ["x"], auth_token="nope"))
    bad = {"version": "v1", "nodes": [{"id": "n", "node_type": "NoSuchNode"}]}
    with pytest.raises(remote.RemoteError, match="(?s)MANIFEST.*NoSuchNode"):
        asyncio.run(remote.execute_pipeline(f"grpc://{server.grpc}", bad, [], auth_token="sesame"))
    with pytest.raises(remote.RemoteError, match="gave up after 2 attempts"):
        asyncio.run(remote.execute_pipeline(f"grpc://127.0.0.1:{free_port()}", vad, [], max_attempts=1))


def test_a_remote_node_in_gst_launch_uses_the_plugins_one_runtime(server, gst_env, tmp_path):
    """The remote node's gRPC calls run on the plugin's tokio runtime (threads named
    remotemedia-rt); the transport no longer starts a runtime of its own (rm-grpc-remote)."""
    import time
    from pathlib import Path

    manifest = tmp_path / "remote_vad.json"
    manifest.write_text(json.dumps(remote_manifest(server, "streaming")))
    proc = subprocess.Popen(
        ["gst-launch-1.0", "filesrc", f"location={LAUNCH / 'speech.wav'}", "!", "wavparse", "!", "identity",
         "sync=true", "!", "audioconvert", "!", "audioresample", "!", "remotemediapipeline", f"manifest={manifest}",
         "!", "fakesink"], env=gst_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        names = set()
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline and proc.poll() is None:
            for comm in Path(f"/proc/{proc.pid}/task").glob("*/comm"):
                try:
                    names.add(comm.read_text().strip())
                except OSError:
                    pass
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(10)
    assert any(n.startswith("remotemedia-rt") for n in names), names
    assert not any(n.startswith("rm-grpc-remote") for n in names), names
