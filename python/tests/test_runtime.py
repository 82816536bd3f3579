"""The remotemedia Python package: the runtime API as a Python user calls it."""

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import threading
import wave

import numpy as np
import pytest

import remotemedia
from remotemedia import runtime

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "examples" / "launch"
PASS = {"version": "v1", "nodes": [{"id": "pass", "node_type": "PassThrough"}]}
RESAMPLE = {
    "version": "v1",
    "nodes": [{"id": "r", "node_type": "FastResampleNode", "params": {"target_rate": 16000, "channels": 1}}],
}


def run(coro):
    return asyncio.run(coro)


def speech() -> tuple[np.ndarray, int]:
    with wave.open(str(LAUNCH / "speech.wav")) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return (pcm.astype(np.float32) / 32768.0), w.getframerate()


def test_version_and_availability():
    assert runtime.get_runtime_version() == remotemedia.__version__ == "0.1.0"
    assert runtime.is_available()


def test_every_input_item_comes_out_in_order():
    items = ["hello", {"answer": 42}, [1, 2, 3], b"\x00\x01", {"type": "text", "text": "bye"}]
    out = run(runtime.execute_pipeline_with_input(json.dumps(PASS), items))
    assert [o["type"] for o in out] == ["text", "json", "json", "binary", "text"]
    assert out[0]["text"] == "hello" and out[1]["data"] == {"answer": 42}
    assert out[2]["data"] == [1, 2, 3] and out[3]["data"] == b"\x00\x01" and out[4]["text"] == "bye"
    assert all(o["node_id"] == "pass" for o in out)


def test_json_outputs_keep_every_json_type():
    value = {"a": [1, 2.5, None, True, False, "x", {"b": -3}], "big": 2**63, "neg": -(2**63), "f": 1.0}
    (out,) = run(runtime.execute_pipeline_with_input(PASS, [{"type": "json", "data": value}]))
    assert out["data"] == value
    assert isinstance(out["data"]["f"], float) and isinstance(out["data"]["big"], int)


def test_a_single_output_reads_as_remotemedias_unary_result():
    result = run(runtime.execute_pipeline_with_input(PASS, ["hello"]))
    assert result.get("type") == "text" and result["text"] == "hello"  # RemoteMedia's example
    assert result[0] == {"type": "text", "node_id": "pass", "pts": None, "text": "hello"}
    assert result.get("missing", 7) == 7
    with pytest.raises(KeyError, match="'samples'.*text"):
        result["samples"]
    several = run(runtime.execute_pipeline_with_input(PASS, ["a", "b"]))
    assert len(several) == 2 and several.get("text") == "b"  # the final output
    assert run(runtime.execute_pipeline(PASS)).get("type") is None


def test_audio_round_trips_without_a_copy():
    x = np.linspace(-1, 1, 960, dtype=np.float32)
    audio = runtime.numpy_to_audio_dict(x, 48000, 2)
    out = run(runtime.execute_pipeline_with_input(PASS, [audio]))
    samples = out[0]["samples"]
    assert np.shares_memory(samples, x), "passthrough audio is the caller's memory"
    back = runtime.audio_dict_to_numpy(audio_dict=out[0])  # RemoteMedia's keyword
    assert back.shape == (480, 2) and np.shares_memory(back, x)
    assert out[0]["sample_rate"] == 48000 and out[0]["channels"] == 2


def test_resampling_and_metrics():
    tone = np.sin(2 * np.pi * 440 * np.arange(48000) / 48000).astype(np.float32)
    chunks = [runtime.numpy_to_audio_dict(c, 48000, 1) for c in np.split(tone, 100)]
    result = run(runtime.execute_pipeline_with_input(RESAMPLE, chunks, enable_metrics=True))
    audio = np.concatenate([o["samples"] for o in result["outputs"]])
    assert audio.size == 16000 and result["outputs"][0]["sample_rate"] == 16000
    assert result["metrics"][0]["node_id"] == "r" and result["metrics"][0]["processed"] == 100


def test_vad_on_the_shipped_sample_finds_the_sentences():
    samples, rate = speech()
    manifest = (LAUNCH / "vad.json").read_text()
    chunks = [
        {"type": "audio", "samples": c, "sample_rate": rate, "channels": 1, "pts": i * 10_000_000}
        for i, c in enumerate(np.array_split(samples, len(samples) // (rate // 100)))
    ]
    out = run(runtime.execute_pipeline_with_input(manifest, chunks))
    events = [o["data"] for o in out if o["type"] == "json"]
    starts = [e["timestamp_ms"] for e in events if e["is_speech_start"]]
    ends = [e["timestamp_ms"] for e in events if e["is_speech_end"]]
    known = json.loads((LAUNCH / "speech.segments.json").read_text())["segments_ms"]
    assert len(starts) == len(ends) == len(known)
    for start, end, (k_start, k_end) in zip(starts, ends, known):
        assert abs(start - k_start) <= 150 and abs(end - k_end) <= 250


def test_streaming_session():
    async def main():
        async with runtime.StreamSession(RESAMPLE) as session:
            for _ in range(10):
                await session.send(runtime.numpy_to_audio_dict(np.zeros(4800, np.float32), 48000, 1))
            first = await session.recv(timeout=5)
            assert first is not None and first["type"] == "audio"
            total = first["samples"].size
            await session.close()
            async for output in session:
                total += output["samples"].size
        return total

    assert run(main()) == 16000


def test_a_failure_arrives_after_the_outputs_before_it_and_the_stream_goes_on():
    vad = {"version": "v1", "nodes": [{"id": "vad", "node_type": "SileroVADNode"}]}
    good = runtime.numpy_to_audio_dict(np.zeros(1600, np.float32), 16000, 1)
    bad = runtime.numpy_to_audio_dict(np.full(1600, np.nan, np.float32), 16000, 1)

    async def main():
        seen = []
        async with runtime.StreamSession(vad) as session:
            for item in (good, bad, good):
                await session.send(item)
            while seen.count("audio") < 2:
                try:
                    out = await session.recv(timeout=10)
                except remotemedia.PipelineError as e:
                    seen.append(e)
                    continue
                assert out is not None, f"outputs stopped after {seen}"
                seen.append(out["type"])
        return seen

    seen = run(main())
    (at,) = [i for i, x in enumerate(seen) if isinstance(x, Exception)]
    assert seen[:at].count("audio") == 1 and seen[at + 1:].count("audio") == 1, seen
    assert "not a finite number" in str(seen[at])


class CountingExecutor:
    """Counts the calls an event loop hands to its default executor (asyncio.to_thread)."""

    def __init__(self, loop):
        self.calls = 0
        self._run = loop.run_in_executor

        def counted(executor, fn, *args):
            self.calls += 1
            return self._run(executor, fn, *args)

        loop.run_in_executor = counted


def test_sending_uses_no_thread_while_the_pipeline_has_room():
    """Cheap native nodes take inputs straight from the event loop; a Python node (whose cost
    is learnt) gets them from a thread, so a slow call cannot hold the loop."""
    async def sends_through_threads(manifest, items):
        loop = asyncio.get_running_loop()
        async with runtime.StreamSession(manifest) as session:
            counter = CountingExecutor(loop)
            for item in items:
                await session.send(item)
            calls = counter.calls
            await session.close()
            outputs = [o async for o in session]
        return calls, outputs

    items = [f"item {i}" for i in range(100)]
    calls, outputs = run(sends_through_threads(PASS, items))
    assert calls == 0
    assert [o["text"] for o in outputs] == items

    fixture = ROOT / "runtime-bridge" / "tests" / "fixtures" / "test_nodes.py"
    faulty = {"version": "v1", "nodes": [{"id": "py", "node_type": "Faulty", "executor": "python",
                                          "python_module": str(fixture)}]}

    async def longest_stall_during_a_slow_call():
        async with runtime.StreamSession(faulty) as session:
            for i in range(20):  # one at a time: the node learns it is cheap and runs inline
                await session.send(f"quick {i}")
                assert (await session.recv(timeout=10))["text"].startswith(f"ok:quick {i}:")
            loop, gaps = asyncio.get_running_loop(), []

            async def ticker():
                last = loop.time()
                while True:
                    await asyncio.sleep(0.01)
                    gaps.append(loop.time() - last)
                    last = loop.time()

            ticks = asyncio.create_task(ticker())
            await asyncio.sleep(0.05)
            await session.send("sleep:0.5")
            await session.recv(timeout=10)
            ticks.cancel()
            return max(gaps)

    assert run(longest_stall_during_a_slow_call()) < 0.25


def test_waiting_for_an_output_does_not_poll():
    """A recv that waits 1 s for an output that comes late uses no executor thread, and it
    ends as soon as the output is queued; a waiting `async for` ends when the session is
    closed. Before, recv asked a thread every 50 ms (20 calls here)."""
    async def main():
        async with runtime.StreamSession(PASS) as session:
            loop = asyncio.get_running_loop()
            counter = CountingExecutor(loop)
            assert await session.recv(timeout=1.0) is None
            idle_calls = counter.calls
            # Sent from another thread 0.3 s from now, while recv waits without a timeout.
            loop.call_later(0.3, lambda: threading.Thread(target=session._native.send, args=(("text", "late"),)).start())
            started = loop.time()
            out = await session.recv()
            waited = loop.time() - started
            closing = []
            loop.call_later(0.2, lambda: closing.append(asyncio.ensure_future(session.close())))
            rest = [o async for o in session]
            await closing[0]
            return idle_calls, out, waited, rest

    idle_calls, out, waited, rest = run(main())
    assert idle_calls == 0
    assert out["type"] == "text" and out["text"] == "late"
    assert 0.25 < waited < 5
    assert rest == []


def test_bad_manifests_and_inputs_raise_clear_errors():
    with pytest.raises(remotemedia.ManifestError) as err:
        run(runtime.execute_pipeline_with_input({"version": "v1", "nodes": [{"id": "v", "node_type": "SileroVad"}]}, []))
    assert 'unknown node_type "SileroVad" (did you mean' in str(err.value) and '"SileroVADNode"' in str(err.value)
    with pytest.raises(remotemedia.PipelineError) as err:
        vad = {"version": "v1", "nodes": [{"id": "vad", "node_type": "SileroVADNode"}]}
        bad = np.zeros(1600, np.float32)
        bad[3] = np.nan
        run(runtime.execute_pipeline_with_input(vad, [runtime.numpy_to_audio_dict(bad, 16000, 1)]))
    assert 'node "vad"' in str(err.value) and "not a finite number" in str(err.value)
    assert err.value.code == "PIPELINE_ERROR"
    with pytest.raises(ValueError, match="cannot be 2 channel"):
        run(runtime.execute_pipeline_with_input(PASS, [runtime.numpy_to_audio_dict(np.zeros(3, np.float32), 8000, 2)]))
    with pytest.raises(TypeError, match="cannot send object"):
        run(runtime.execute_pipeline_with_input(PASS, [object()]))


def test_execute_pipeline_without_input_drains_to_nothing():
    assert run(runtime.execute_pipeline(PASS)) == []
    assert run(runtime.execute_pipeline(PASS, enable_metrics=True))["outputs"] == []


def test_tensors_keep_shape_and_dtype():
    t = np.arange(12, dtype=np.int32).reshape(3, 4)
    out = run(runtime.execute_pipeline_with_input(PASS, [t]))[0]
    assert out["type"] == "tensor" and out["shape"] == [3, 4] and out["dtype"] == "int32"
    assert (np.frombuffer(out["data"], dtype=out["dtype"]).reshape(out["shape"]) == t).all()


def test_opening_a_session_with_slow_python_workers_leaves_the_event_loop_free(tmp_path):
    """StreamSession.open starts the workers off the loop (and without the GIL): a ticker task
    keeps running while a Python node that takes 2 s to load starts. Before, the session was
    made on the loop's thread holding the GIL, and the ticker stood still."""
    (tmp_path / "slow_start.py").write_text(
        "import time\n"
        "time.sleep(2)\n"
        "from remotemedia import Node, register_node\n"
        "@register_node('SlowStart')\n"
        "class SlowStart(Node):\n"
        "    async def process(self, a):\n"
        "        return a\n")
    manifest = {"version": "v1", "nodes": [{"id": "slow", "node_type": "SlowStart", "executor": "python",
                                            "python_module": str(tmp_path / "slow_start.py")}]}

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(asyncio.get_running_loop().time())
                await asyncio.sleep(0.05)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = len(ticks)
        session = await runtime.StreamSession.open(manifest)
        during = len(ticks) - before
        await session.close()
        task.cancel()
        return during

    assert run(main()) >= 10


def test_rust_log_sets_the_native_modules_log_level():
    """RUST_LOG (as RemoteMedia documents it) turns the runtime's log on, on stderr; without it
    only warnings would show."""
    code = ("import asyncio, remotemedia.runtime as r; "
            f"asyncio.run(r.execute_pipeline_with_input({json.dumps(PASS)!r}, ['x']))")

    def stderr_with(**env):
        full = {k: v for k, v in os.environ.items() if k != "RUST_LOG"} | env
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stderr

    assert "session started" in stderr_with(RUST_LOG="remotemedia_runtime=debug")
    assert "session started" not in stderr_with()


def test_a_python_node_after_the_speculative_gate_drops_what_a_cancel_covers(tmp_path):
    """The gate lets a cough-like burst through at once, then takes it back: the Python node
    after it receives the audio and a `Control("cancel_speculation", from_ms, to_ms)` that
    covers exactly that audio, and keeps only the real sentence that follows."""
    (tmp_path / "keeper.py").write_text(
        "from remotemedia import Audio, Control, Json, Node, register_node\n"
        "@register_node('Keeper')\n"
        "class Keeper(Node):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.kept, self.cancels = [], []\n"
        "    async def process(self, data):\n"
        "        if isinstance(data, Audio):\n"
        "            start = data.pts / 1e6\n"
        "            self.kept.append((start, start + data.frames() * 1000 / data.sample_rate))\n"
        "        elif isinstance(data, Control) and data.kind == 'cancel_speculation':\n"
        "            self.cancels.append((data.from_ms, data.to_ms))\n"
        "            self.kept = [k for k in self.kept if not (k[0] >= data.from_ms and k[1] <= data.to_ms)]\n"
        "    async def flush(self):\n"
        "        return Json({'kept': self.kept, 'cancels': self.cancels})\n")
    manifest = {"version": "v1", "nodes": [
        {"id": "gate", "node_type": "SpeculativeVADGate", "params": {"min_silence_ms": 300}},
        {"id": "keep", "node_type": "Keeper", "executor": "python", "python_module": str(tmp_path / "keeper.py")}],
        "connections": [{"from": "gate", "to": "keep"}]}
    samples, rate = speech()
    resampled = run(runtime.execute_pipeline_with_input(
        RESAMPLE, [runtime.numpy_to_audio_dict(samples, rate, 1)]))
    voice = np.concatenate([o["samples"] for o in resampled])
    burst = voice[1300 * 16:1450 * 16]
    silence = np.zeros(16 * 500, np.float32)
    audio = np.concatenate([silence, burst, silence, silence, voice[:5000 * 16]])
    audio = audio[:len(audio) // 320 * 320]
    chunks = [{"type": "audio", "samples": c, "sample_rate": 16000, "channels": 1, "pts": i * 20_000_000}
              for i, c in enumerate(np.split(audio, len(audio) // 320))]
    out = run(runtime.execute_pipeline_with_input(manifest, chunks, enable_metrics=True))
    (summary,) = [o["data"] for o in out["outputs"] if o["type"] == "json" and "kept" in o["data"]]
    (cancel,) = summary["cancels"]
    # From the lookback (150 ms) before the burst at 500 ms to past its end.
    assert 300 <= cancel[0] <= 500 and cancel[1] >= 650, cancel
    kept = summary["kept"]
    assert kept and all(start >= cancel[1] for start, _ in kept), kept[:3]
    sentence_at = (len(silence) * 3 + len(burst)) / 16 + 1000
    assert abs(kept[0][0] - sentence_at) <= 200, (kept[0], sentence_at)
    gate = next(m for m in out["metrics"] if m["node_id"] == "gate")
    assert gate["counters"] == {"speculations": 2, "cancelled": 1, "confirmed": 1}, gate
