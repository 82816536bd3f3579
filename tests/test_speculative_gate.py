"""SpeculativeVADGate in `remotemediapipeline`, as a voice-agent builder runs it: the shipped
speech at its own rate (22.05 kHz) from an appsrc, a cough-like burst before it. Speech leaves
the element unchanged and at once; the false start is taken back with a
`remotemedia-cancel-speculation` event that covers exactly the buffers that went out for it."""

import json
import wave

import numpy as np

from conftest import LAUNCH
from remotemedia._gst import error_of, gst

MANIFEST = json.dumps({"version": "v1", "nodes": [
    {"id": "gate", "node_type": "SpeculativeVADGate", "params": {"min_silence_ms": 300}}]})


def speech() -> tuple[np.ndarray, int]:
    with wave.open(str(LAUNCH / "speech.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0), w.getframerate()


def test_the_gate_lets_speech_through_at_once_and_takes_a_false_start_back(gst_env):
    Gst = gst()
    voice, rate = speech()
    ms = rate // 1000
    silence = np.zeros(500 * ms, np.float32)
    burst = voice[1300 * ms:1450 * ms]
    audio = np.concatenate([silence, burst, silence, silence, voice[:5000 * ms]])
    piece = rate // 50  # 20 ms, 441 frames
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=audio/x-raw,format=F32LE,layout=interleaved,"
        f"rate={rate},channels=1 ! remotemediapipeline name=rm ! appsink name=out sync=false")
    rm = pipeline.get_by_name("rm")
    rm.set_property("manifest-json", MANIFEST)
    out = pipeline.get_by_name("out")
    cancels = []

    def on_event(_pad, info):
        s = info.get_event().get_structure()
        if s is not None and s.get_name() == "remotemedia-cancel-speculation":
            cancels.append((s.get_value("from"), s.get_value("to"), s.get_value("from-ms"),
                            s.get_value("to-ms"), s.get_value("node-id")))
        return Gst.PadProbeReturn.OK

    out.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
    pipeline.set_state(Gst.State.PLAYING)
    src = pipeline.get_by_name("src")
    sent = {}
    for i in range(len(audio) // piece):
        chunk = audio[i * piece:(i + 1) * piece].tobytes()
        buffer = Gst.Buffer.new_wrapped(chunk)
        buffer.pts = i * 20 * Gst.MSECOND
        buffer.duration = 20 * Gst.MSECOND
        sent[buffer.pts] = chunk
        assert src.emit("push-buffer", buffer) == Gst.FlowReturn.OK
    src.emit("end-of-stream")
    received = []
    while (sample := out.emit("pull-sample")) is not None:
        buffer = sample.get_buffer()
        received.append((buffer.pts, buffer.extract_dup(0, buffer.get_size())))
    bus = pipeline.get_bus()
    results, error = [], None
    while (msg := bus.pop_filtered(Gst.MessageType.ELEMENT | Gst.MessageType.ERROR)) is not None:
        if msg.type == Gst.MessageType.ERROR:
            error = error_of(msg)
        elif msg.get_structure().get_name() == "remotemedia":
            results.append(json.loads(msg.get_structure().get_value("json")))
    counters = json.loads(rm.get_property("metrics"))[0]["counters"]
    pipeline.set_state(Gst.State.NULL)
    assert error is None, error

    # Every buffer that left is an input buffer, unchanged.
    assert received and all(sent[pts] == data for pts, data in received)
    # The burst went out at once and was taken back, covering exactly its buffers.
    (cancel,) = cancels
    start, end, from_ms, to_ms, node = cancel
    assert node == "gate" and (from_ms, to_ms) == (start / 1e6, end / 1e6)
    covered = [pts for pts, _ in received if start <= pts < end]
    assert covered and covered[0] == start, (covered[:3], start)
    assert start <= 500 * Gst.MSECOND and end >= 620 * Gst.MSECOND, cancel
    assert covered[-1] + 20 * Gst.MSECOND == end
    # The sentence after it went through and was confirmed; the silence around did not.
    sentence = (len(silence) * 3 + len(burst)) / ms + 1000
    (confirmed,) = [r for r in results if r["type"] == "speech_confirmed"]
    assert abs(confirmed["timestamp_ms"] - sentence) <= 150, confirmed
    after_cancel = [pts / 1e6 for pts, _ in received if pts >= end]
    assert after_cancel and after_cancel[0] >= sentence - 400, after_cancel[:3]
    assert counters == {"speculations": 2, "cancelled": 1, "confirmed": 1}, counters
