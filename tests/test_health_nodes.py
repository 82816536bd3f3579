"""The stream-health nodes in a GStreamer pipeline, as a camera or broadcast user runs them:
`remotemediapipeline` with one node, fed by `audiotestsrc` with a known fault, results read
from the bus."""

import json

from remotemedia._gst import error_of, gst


def run(source: str, node: dict, seconds: float = 2.0) -> tuple[list[dict], tuple | None]:
    """Plays `source ! remotemediapipeline ! fakesink` for `seconds` of audio (as fast as it
    goes); returns the node's JSON results and the pipeline's error, if any."""
    Gst = gst()
    manifest = json.dumps({"version": "v1", "nodes": [{"id": "health", **node}]})
    buffers = int(seconds * 50)
    pipeline = Gst.parse_launch(
        f"{source.format(buffers=buffers)} ! remotemediapipeline name=rm ! fakesink")
    pipeline.get_by_name("rm").set_property("manifest-json", manifest)
    pipeline.set_state(Gst.State.PLAYING)
    results, error = [], None
    bus = pipeline.get_bus()
    while True:
        msg = bus.timed_pop_filtered(30 * Gst.SECOND, Gst.MessageType.ELEMENT | Gst.MessageType.EOS
                                     | Gst.MessageType.ERROR)
        assert msg is not None, "the pipeline neither ended nor failed within 30 s"
        if msg.type == Gst.MessageType.ERROR:
            error = error_of(msg)
            break
        if msg.type == Gst.MessageType.EOS:
            break
        s = msg.get_structure()
        if s.get_name() == "remotemedia" and s.get_value("kind") == "json":
            results.append(json.loads(s.get_value("json")))
    pipeline.set_state(Gst.State.NULL)
    return results, error


# 20 ms buffers of 48 kHz audio, a 440 Hz sine unless said otherwise.
SINE = ("audiotestsrc num-buffers={{buffers}} samplesperbuffer=960 freq=440 volume={volume} ! "
        "audio/x-raw,format=F32LE,rate=48000,channels={channels}")


def of(results, kind):
    return [r for r in results if r["type"] == kind]


def test_audio_level_reads_a_half_scale_sine(gst_env):
    results, error = run(SINE.format(volume=0.5, channels=2), {"node_type": "AudioLevelNode"})
    assert error is None, error
    levels = of(results, "audio_level")
    assert len(levels) == 20, results
    # audiotestsrc's volume is the peak: RMS -9.03 dBFS, peak -6.02.
    assert all(abs(level["rms_db"] + 9.03) < 0.05 for level in levels), levels[0]
    assert [level["timestamp_ms"] for level in levels[:3]] == [0.0, 100.0, 200.0]


def test_silence_detector_reports_a_silent_feed(gst_env):
    source = ("audiotestsrc num-buffers={buffers} samplesperbuffer=960 wave=silence ! "
              "audio/x-raw,format=F32LE,rate=48000,channels=1")
    results, error = run(source, {"node_type": "SilenceDetectorNode", "params": {"sustained_silence_ms": 300}})
    assert error is None, error
    (start,) = of(results, "silence_start")
    assert start["timestamp_ms"] == 0.0


def test_clipping_detector_reports_a_square_wave_at_full_scale(gst_env):
    source = ("audiotestsrc num-buffers={buffers} samplesperbuffer=960 wave=square volume=1.0 ! "
              "audio/x-raw,format=F32LE,rate=48000,channels=1")
    results, error = run(source, {"node_type": "ClippingDetectorNode"}, seconds=1.0)
    assert error is None, error
    clipping = of(results, "clipping")
    assert len(clipping) == 10 and all(c["clipped_ratio"] > 0.9 for c in clipping), results
    clean, _ = run(SINE.format(volume=0.5, channels=1), {"node_type": "ClippingDetectorNode"}, seconds=1.0)
    assert clean == []


def test_channel_balance_finds_a_dead_right_channel(gst_env):
    source = ("audiotestsrc num-buffers={buffers} samplesperbuffer=960 volume=0.5 ! "
              "audio/x-raw,format=F32LE,rate=48000,channels=1 ! audiopanorama panorama=-1.0 method=simple ! "
              "audio/x-raw,format=F32LE,channels=2")
    results, error = run(source, {"node_type": "ChannelBalanceNode"})
    assert error is None, error
    dead = of(results, "dead_channel")
    assert len(dead) == 4 and all(d["channel"] == 1 for d in dead), results


def test_channel_balance_refuses_mono_with_the_reason(gst_env):
    results, error = run(SINE.format(volume=0.5, channels=1), {"node_type": "ChannelBalanceNode"})
    assert error is not None, results
    code, message = error
    assert "2 or more channels" in message, error
    assert code in ("CONFIG_ERROR", "PIPELINE_ERROR")

