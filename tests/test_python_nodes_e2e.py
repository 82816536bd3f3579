"""Python nodes end to end: the voice loop through gst-launch-1.0 and the PyGObject app, and a
user's own Python node in a gst-launch-1.0 pipeline. Speech is made with espeak-ng."""

import json
import re
import subprocess
import sys
import wave

import numpy as np
import pytest

from conftest import LAUNCH, ROOT

SENTENCE = "hello world, this is a test"
KEY_WORDS = ["hello", "world"]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory):
    """The sentence spoken by espeak-ng, with half a second of silence before and one after."""
    d = tmp_path_factory.mktemp("speech")
    raw, padded = d / "raw.wav", d / "sentence.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(["sox", str(raw), str(padded), "pad", "0.5", "1.0"], check=True)
    return padded


def read_wav(path):
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        return pcm, w.getframerate(), w.getnchannels()


def workers_alive():
    ps = subprocess.run(["pgrep", "-f", "remotemedia.worker"], capture_output=True, text=True)
    return ps.stdout.split()


def test_gst_launch_runs_the_voice_loop(gst_env, spoken, tmp_path):
    out = tmp_path / "reply.wav"
    cmd = ["gst-launch-1.0", "-m", "filesrc", f"location={spoken}", "!", "wavparse", "!", "audioconvert", "!",
           "audioresample", "!", "remotemediapipeline", f"manifest={LAUNCH / 'voice_loop.json'}", "!",
           "audioconvert", "!", "audio/x-raw,format=S16LE", "!", "wavenc", "!", "filesink", f"location={out}"]
    run = subprocess.run(cmd, env=gst_env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr + run.stdout
    transcripts = re.findall(r'node-id=\(string\)asr, kind=\(string\)text, json=\(string\)"([^"]*)"', run.stdout)
    assert len(transcripts) == 1, run.stdout
    text = transcripts[0].replace("\\ ", " ")
    for word in KEY_WORDS:
        assert word in text, text
    # The reply: espeak-ng speaking the transcript, resampled to 16 kHz mono.
    pcm, rate, channels = read_wav(out)
    assert (rate, channels) == (16000, 1)
    assert len(pcm) / rate > 0.5
    assert np.sqrt(np.mean(pcm**2)) > 0.02, "the reply is silent"
    assert not workers_alive(), "a Python worker outlived gst-launch-1.0"


def test_the_pygobject_app_prints_the_transcript(gst_env, spoken, tmp_path):
    run = subprocess.run(
        [sys.executable, str(LAUNCH / "voice_loop_app.py"), str(spoken), "--out", str(tmp_path / "r.wav"), "--json"],
        env=gst_env, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr + run.stdout
    transcripts = json.loads(run.stdout.splitlines()[-1])
    assert len(transcripts) == 1 and all(w in transcripts[0] for w in KEY_WORDS), run.stdout
    assert "asr: hello" in run.stdout


def test_a_users_python_node_runs_in_gst_launch(gst_env, tmp_path):
    (tmp_path / "gain.py").write_text(
        "from remotemedia import Audio, Node, register_node\n"
        "@register_node('Half')\n"
        "class Half(Node):\n"
        "    async def process(self, a):\n"
        "        return Audio(a.samples * 0.5, a.sample_rate, a.channels, a.pts)\n"
    )
    # python_module is found next to the manifest.
    (tmp_path / "half.json").write_text(json.dumps({"version": "v1", "nodes": [
        {"id": "half", "node_type": "Half", "executor": "python", "python_module": "gain"},
        {"id": "out", "node_type": "PassThrough"}],
        "connections": [{"from": "half", "to": "out"}]}))
    out = tmp_path / "half.wav"
    cmd = ["gst-launch-1.0", "audiotestsrc", "num-buffers=50", "wave=sine", "volume=0.8", "!",
           "audio/x-raw,format=F32LE,rate=48000,channels=1", "!",
           "remotemediapipeline", f"manifest={tmp_path / 'half.json'}", "!",
           "audioconvert", "!", "audio/x-raw,format=S16LE", "!", "wavenc", "!", "filesink", f"location={out}"]
    run = subprocess.run(cmd, env=gst_env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    pcm, rate, _ = read_wav(out)
    assert rate == 48000 and len(pcm) == 50 * 1024
    assert np.max(np.abs(pcm)) == pytest.approx(0.4, abs=0.01)


def test_a_python_node_that_fails_to_load_fails_the_pipeline_start(gst_env, tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"version": "v1", "nodes": [
        {"id": "ghost", "node_type": "Ghost", "executor": "python", "python_module": "ghost_nodes"}]}))
    cmd = ["gst-launch-1.0", "audiotestsrc", "num-buffers=5", "!", "audio/x-raw,format=F32LE", "!",
           "remotemediapipeline", f"manifest={tmp_path / 'm.json'}", "!", "fakesink"]
    run = subprocess.run(cmd, env=gst_env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "python_module 'ghost_nodes' not found: searched" in run.stderr + run.stdout
    assert str(tmp_path) in run.stderr + run.stdout, "the manifest's directory was searched"
