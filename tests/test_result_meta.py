"""Results as buffer meta: the JSON results of `remotemediapipeline` read back from the audio
buffers they ride on after `tee ! queue ! audioconvert`, by a PyGObject app and by a C program
(tests/c/result_meta.c), and none with `result-meta=false`."""

import json
import shutil
import subprocess

import pytest

from conftest import ROOT
from remotemedia._gst import gst

META = "RemoteMediaResultMeta"
LEVEL = json.dumps({"version": "v1", "nodes": [{"id": "level", "node_type": "AudioLevelNode"}]})
# 1 s of a 440 Hz sine at half scale in 20 ms buffers: a level every 100 ms, RMS -9.03 dBFS.
SOURCE = ("audiotestsrc num-buffers=50 samplesperbuffer=960 freq=440 volume=0.5 ! "
          "audio/x-raw,format=F32LE,rate=48000,channels=1")


def results_on_buffers(result_meta: bool) -> tuple[list[tuple[int, object]], int]:
    """Plays the source through the pipeline, a tee, a queue and audioconvert into an appsink;
    returns (buffer pts, first result structure) for every buffer that carries a result, and how
    many results the buffers carry in all."""
    Gst = gst()
    pipeline = Gst.parse_launch(
        f"{SOURCE} ! remotemediapipeline name=rm ! tee name=t ! queue ! audioconvert ! "
        "audio/x-raw,format=S16LE ! appsink name=out sync=false  t. ! queue ! fakesink sync=false")
    rm = pipeline.get_by_name("rm")
    rm.set_property("manifest-json", LEVEL)
    rm.set_property("result-meta", result_meta)
    out = pipeline.get_by_name("out")
    pipeline.set_state(Gst.State.PLAYING)
    api = Gst.meta_get_info(META).api
    found, count = [], 0
    while (sample := out.emit("pull-sample")) is not None:
        buffer = sample.get_buffer()
        count += buffer.get_n_meta(api)
        meta = buffer.get_custom_meta(META)
        if meta is not None:
            found.append((buffer.pts, meta.get_structure()))
    msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    assert msg is None, msg.parse_error()
    return found, count


def test_pygobject_reads_the_results_on_the_audio_after_tee_queue_audioconvert(gst_env):
    found, count = results_on_buffers(result_meta=True)
    assert count == len(found) == 10, found
    for i, (pts, result) in enumerate(found):
        assert result.get_value("node-id") == "level"
        assert result.get_value("kind") == "json"
        level = json.loads(result.get_value("json"))
        assert level["type"] == "audio_level" and abs(level["rms_db"] + 9.03) < 0.05, level
        assert level["timestamp_ms"] == i * 100.0
        # On the buffer that completed its window: the one 80 ms into it.
        assert pts == (i * 100 + 80) * 1_000_000


def test_result_meta_false_puts_no_meta(gst_env):
    found, count = results_on_buffers(result_meta=False)
    assert found == [] and count == 0


def test_a_c_program_reads_the_results(gst_env, tmp_path):
    cc = shutil.which("cc")
    if cc is None:
        pytest.fail("no C compiler: run scripts/setup.sh")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "gstreamer-1.0"], check=True,
                           capture_output=True, text=True).stdout.split()
    program = tmp_path / "result_meta"
    subprocess.run([cc, "-Wall", "-Wextra", "-Werror", "-o", str(program),
                    str(ROOT / "tests" / "c" / "result_meta.c"), *flags], check=True, timeout=120)
    run = subprocess.run([str(program), LEVEL], env=gst_env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    lines = [line.split(" ", 3) for line in run.stdout.splitlines()]
    assert len(lines) == 10, run.stdout
    for i, (pts, node_id, kind, payload) in enumerate(lines):
        assert (node_id, kind) == ("level", "json")
        level = json.loads(payload)
        assert level["type"] == "audio_level" and abs(level["rms_db"] + 9.03) < 0.05, level
        assert level["timestamp_ms"] == i * 100.0
        assert int(pts) == (i * 100 + 80) * 1_000_000
