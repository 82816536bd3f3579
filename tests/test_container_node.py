"""Container nodes end to end: a Python node with a "docker" block, run by gst-launch-1.0 and by the
Python API in a container (podman, from scripts/setup.sh) whose image has a package the host's
virtualenv lacks; what a host killed by SIGKILL leaves (nothing) and the janitor that removes what
one left anyway; and bad specs refused at load with the reason. SKIP_CONTAINER_TESTS=1 skips
them, and pytest reports them skipped."""

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import time
import wave

import numpy as np
import pytest

from conftest import LAUNCH

pytestmark = pytest.mark.skipif(os.environ.get("SKIP_CONTAINER_TESTS") == "1",
                                reason="SKIP_CONTAINER_TESTS=1")

ENGINE = os.environ.get("REMOTEMEDIA_CONTAINER_ENGINE", "podman")
BASE = "localhost/remotemedia-base:py3.11"

NODES = """
import os
import humanize
from remotemedia import Audio, Node, register_node

@register_node("HalfGain")
class HalfGain(Node):
    async def process(self, a):
        return Audio(a.samples * 0.5, a.sample_rate, a.channels, a.pts)

@register_node("Summary")
class Summary(Node):
    async def process(self, a):
        return {"samples": humanize.intcomma(len(a.samples)), "peak": float(abs(a.samples).max()),
                "container": os.environ.get("REMOTEMEDIA_CONTAINER")}
"""


def containers(prefix="remotemedia-"):
    out = subprocess.run([ENGINE, "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True,
                         check=True).stdout
    return [n for n in out.split() if n.startswith(prefix)]


def wait_until(condition, what, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def read_wav(path):
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32), w.getframerate()


@pytest.fixture
def nodes_dir(tmp_path):
    assert importlib.util.find_spec("humanize") is None, "the host venv must not have humanize for this test"
    (tmp_path / "container_nodes.py").write_text(NODES)
    return tmp_path


def write_manifest(directory, node_type, docker, name="m.json"):
    path = directory / name
    path.write_text(json.dumps({"version": "v1", "nodes": [
        {"id": "ml", "node_type": node_type, "python_module": "container_nodes", "docker": docker}]}))
    return path


def test_gst_launch_runs_a_container_node_on_the_shipped_speech(gst_env, nodes_dir):
    manifest = write_manifest(nodes_dir, "HalfGain", {
        "python_version": "3.11", "python_packages": ["humanize"],
        "resource_limits": {"memory_mb": 512, "cpu_cores": 1}})
    out = nodes_dir / "half.wav"
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={LAUNCH / 'speech.wav'}", "!", "wavparse", "!",
           "audioconvert", "!", "audio/x-raw,format=F32LE", "!", "remotemediapipeline", f"manifest={manifest}", "!",
           "audioconvert", "!", "audio/x-raw,format=S16LE", "!", "wavenc", "!", "filesink", f"location={out}"]
    run = subprocess.Popen(cmd, env=gst_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    original, rate = read_wav(LAUNCH / "speech.wav")
    halved, out_rate = read_wav(out)
    assert out_rate == rate and len(halved) == len(original)
    assert np.max(np.abs(original)) > 5000, "the sample has speech"
    assert np.max(np.abs(halved - original * 0.5)) <= 1.0
    assert containers(f"remotemedia-{run.pid}-") == [], "the container went with the pipeline"


def test_the_python_api_runs_a_container_node_on_the_shipped_speech(nodes_dir):
    from remotemedia import runtime

    manifest = json.loads(write_manifest(nodes_dir, "Summary", {"python_packages": ["humanize"]}).read_text())
    manifest["nodes"][0]["python_module"] = str(nodes_dir / "container_nodes.py")
    pcm, rate = read_wav(LAUNCH / "speech.wav")
    speech = runtime.numpy_to_audio_dict(pcm / 32768, rate, 1)
    out = asyncio.run(runtime.execute_pipeline_with_input(manifest, [speech]))
    assert [o["type"] for o in out] == ["json"]
    assert out[0]["data"]["samples"] == f"{len(pcm):,}"
    assert out[0]["data"]["peak"] == pytest.approx(np.max(np.abs(pcm)) / 32768)
    assert out[0]["data"]["container"].startswith(f"remotemedia-{os.getpid()}-")
    assert containers(f"remotemedia-{os.getpid()}-") == []


def test_a_killed_host_leaves_no_container_and_the_janitor_removes_leftovers(gst_env, nodes_dir):
    # What a host that died while its engine was down would leave: a container of a dead process.
    leftover = "remotemedia-999999999-1-0000000000000000-0"
    subprocess.run([ENGINE, "rm", "-f", leftover], capture_output=True)
    subprocess.run([ENGINE, "run", "-d", "--name", leftover, "--label", "remotemedia.host=999999999-1", BASE,
                    "sleep", "600"], check=True, capture_output=True)
    manifest = write_manifest(nodes_dir, "HalfGain", {"python_packages": ["humanize"]})
    cmd = ["gst-launch-1.0", "-q", "audiotestsrc", "is-live=true", "!", "audio/x-raw,format=F32LE,rate=16000", "!",
           "remotemediapipeline", f"manifest={manifest}", "!", "fakesink"]
    host = subprocess.Popen(cmd, env=gst_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: containers(f"remotemedia-{host.pid}-"), "the host's container", 120)
        assert leftover not in containers(), "the janitor removed the dead host's container"
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
    # The container's main process waited for the host's lock; the kernel released it.
    wait_until(lambda: not containers(f"remotemedia-{host.pid}-"), "the container to go with its host", 30)


@pytest.mark.parametrize("docker, env, expected", [
    ({"python_version": "3.9"}, {},
     'docker.python_version "3.9" has no base image (available: 3.11); to add one'),
    ({"python_packages": ["no-such-package-remotemedia==0.0.1"]}, {},
     "No matching distribution found for no-such-package-remotemedia==0.0.1"),
    ({}, {"REMOTEMEDIA_CONTAINER_ENGINE": "/nonexistent/podman"},
     "REMOTEMEDIA_CONTAINER_ENGINE=/nonexistent/podman is not an executable program"),
    ({"resource_limits": {"memory_mb": 1}}, {},
     "docker.resource_limits.memory_mb must be an integer within 6..1048576, got 1"),
], ids=["python-version", "pip-package", "no-engine", "limit"])
def test_a_bad_container_spec_fails_at_load_with_the_reason(gst_env, nodes_dir, docker, env, expected):
    manifest = write_manifest(nodes_dir, "HalfGain", docker)
    cmd = ["gst-launch-1.0", "audiotestsrc", "num-buffers=5", "!", "audio/x-raw,format=F32LE", "!",
           "remotemediapipeline", f"manifest={manifest}", "!", "fakesink"]
    run = subprocess.run(cmd, env={**gst_env, **env}, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert expected in run.stderr + run.stdout
    assert 'node "ml"' in run.stderr + run.stdout or "ml" in run.stderr + run.stdout
