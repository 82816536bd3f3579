"""The intelligent-VAD WASM example (examples/wasm) as users run it: in gst-launch-1.0, from the
Python runtime API and through remotemedia-server, each time asking a real remotemedia-server's
SileroVADNode when its energy VAD is unsure; the segments it finds are the shipped speech's."""

import json
import subprocess
import sys
import wave

import numpy as np
import pytest

from conftest import LAUNCH, ROOT
from grpc_stubs import pb  # noqa: F401  (the session fixture)
from server_process import ServerProcess

EXAMPLE = ROOT / "examples" / "wasm" / "intelligent_vad.json"
WASM = ROOT / "target" / "wasm" / "intelligent_vad.wasm"


@pytest.fixture(scope="module")
def far():
    """The server the module's VoiceActivityDetector service points at."""
    server = ServerProcess()
    yield server
    server.stop()


def manifest(server) -> dict:
    """The example, with the service on the test's server and the module by absolute path."""
    assert WASM.exists(), f"{WASM} is built by scripts/setup.sh"
    m = json.loads(EXAMPLE.read_text())
    params = m["nodes"][1]["params"]
    params["wasm_path"] = str(WASM)
    params["services"]["VoiceActivityDetector"]["endpoint"] = f"grpc://{server.grpc}"
    return m


def check_segments(events, known_segments):
    starts = [e["timestamp_ms"] for e in events if e.get("is_speech_start")]
    ends = [e["timestamp_ms"] for e in events if e.get("is_speech_end")]
    assert len(starts) == len(known_segments), (starts, ends)
    for (start, end), s in zip(known_segments, starts):
        assert abs(s - start) <= 200, (known_segments, starts)
    for (start, end), e in zip(known_segments, ends):
        assert abs(e - end) <= 400, (known_segments, ends)
    sources = {e["source"] for e in events}
    assert sources == {"energy", "remote"}, sources


def test_in_gst_launch(gst_env, far, known_segments, tmp_path):
    path = tmp_path / "vad.json"
    path.write_text(json.dumps(manifest(far)))
    run = subprocess.run(
        ["gst-launch-1.0", "-m", "filesrc", f"location={LAUNCH / 'speech.wav'}", "!", "wavparse", "!",
         "audioconvert", "!", "audioresample", "!", "remotemediapipeline", f"manifest={path}", "!", "fakesink"],
        env=gst_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    # The demo's own reader of gst-launch's bus output turns the starts and ends into segments.
    segments = subprocess.run([sys.executable, str(LAUNCH / "segments.py"), "--json"],
                              input=run.stdout, capture_output=True, text=True, check=True)
    found = json.loads(segments.stdout)
    assert len(found) == len(known_segments), found
    for (start, end), (k_start, k_end) in zip(found, known_segments):
        assert abs(start - k_start) <= 200 and abs(end - k_end) <= 400, (found, known_segments)
    assert 'source\\":\\"remote' in run.stdout and 'source\\":\\"energy' in run.stdout


def test_from_python(far, known_segments):
    from remotemedia import runtime
    import asyncio

    with wave.open(str(LAUNCH / "speech.wav")) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
    piece = rate // 50
    chunks = [{"type": "audio", "samples": pcm[i:i + piece], "sample_rate": rate, "channels": 1,
               "pts": (i // piece) * 20_000_000} for i in range(0, len(pcm) - piece + 1, piece)]
    out = asyncio.run(runtime.execute_pipeline_with_input(manifest(far), chunks))
    check_segments([o["data"] for o in out if o["type"] == "json"], known_segments)


def test_through_remotemedia_server(far, pb, known_segments):  # noqa: F811
    import grpc

    from test_grpc_server import Stubs, audio_inputs, execute, speech_16k

    stubs = Stubs(pb, grpc.insecure_channel(far.grpc))
    m = manifest(far)
    r = execute(stubs, pb, json.dumps(m), audio_inputs(pb, speech_16k(), 320, node_id="resample"))
    assert r.WhichOneof("outcome") == "result", r.error
    events = [json.loads(o.data.json) for o in r.result.outputs if o.data.HasField("json")]
    check_segments(events, known_segments)
