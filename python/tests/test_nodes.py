"""The node SDK as a Python user writes nodes: registration, return shapes, zero-copy inputs,
errors at load and at run time, streaming sessions with Python nodes, and cleanup (no worker
and no shared memory outlives its pipeline, even when the host is killed)."""

import asyncio
import glob
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

import remotemedia
from remotemedia import Audio, Json, Node, register_node, runtime

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "runtime-bridge" / "tests" / "fixtures" / "test_nodes.py"


def python_node(node_type, **fields):
    node = {"id": "py", "node_type": node_type, "executor": "python", "python_module": str(FIXTURE)}
    node.update(fields)
    return {"version": "v1", "nodes": [node]}


def run(coro):
    return asyncio.run(coro)


def test_register_node_takes_only_node_subclasses():
    @register_node("Doubler")
    class Doubler(Node):
        async def process(self, data):
            return data * 2

    assert remotemedia.registered_nodes()["Doubler"] is Doubler
    assert Doubler.node_type == "Doubler"
    with pytest.raises(TypeError, match="must decorate a subclass of remotemedia.Node"):
        register_node("Nope")(object)
    with pytest.raises(TypeError, match="Lazy must define process"):
        register_node("Lazy")(type("Lazy", (Node,), {}))


def test_the_readme_example_runs_from_a_module_next_to_the_caller(tmp_path, monkeypatch):
    (tmp_path / "shout.py").write_text(textwrap.dedent("""
        from remotemedia import Node, register_node

        @register_node("Shout")
        class Shout(Node):
            async def process(self, data):
                return data.upper()
    """))
    monkeypatch.chdir(tmp_path)
    manifest = {"version": "v1", "nodes": [
        {"id": "s", "node_type": "Shout", "executor": "python", "python_module": "shout"}]}
    outputs = run(runtime.execute_pipeline_with_input(manifest, ["hello", "world"]))
    assert [o["text"] for o in outputs] == ["HELLO", "WORLD"]
    assert all(o["node_id"] == "s" for o in outputs)


def test_json_values_keep_their_shape_through_a_python_node():
    items = [{"a": 1}, {"type": "json", "data": [1, 2]}, {"type": "json", "data": "s"}, "text"]
    outputs = run(runtime.execute_pipeline_with_input(python_node("Echo"), items))
    assert [(o["type"], o.get("data", o.get("text"))) for o in outputs] == [
        ("json", {"a": 1}), ("json", [1, 2]), ("json", "s"), ("text", "text")]


def test_audio_and_tensors_reach_the_node_as_views_of_shared_memory(tmp_path):
    (tmp_path / "probe.py").write_text(textwrap.dedent("""
        import numpy as np
        from remotemedia import Audio, Json, Node, register_node

        @register_node("Probe")
        class Probe(Node):
            async def process(self, data):
                arr = data.samples if isinstance(data, Audio) else data
                base = arr
                while getattr(base, "base", None) is not None:
                    base = base.base
                base = base.obj if isinstance(base, memoryview) else base
                return Json({"owner": type(base).__name__, "writeable": bool(arr.flags.writeable),
                             "dtype": str(arr.dtype), "shape": list(arr.shape),
                             "aligned": arr.ctypes.data % 4 == 0, "sum": float(arr.sum())})
    """))
    manifest = {"version": "v1", "nodes": [{"id": "p", "node_type": "Probe", "executor": "python",
                                            "python_module": str(tmp_path / "probe.py")}]}
    samples = np.linspace(-1, 1, 960, dtype=np.float32)
    tensor = np.arange(12, dtype=np.int32).reshape(3, 4)
    outs = run(runtime.execute_pipeline_with_input(
        manifest, [runtime.numpy_to_audio_dict(samples, 48000, 1), tensor]))
    audio, tens = outs[0]["data"], outs[1]["data"]
    assert audio["owner"] == "SharedBytes" and not audio["writeable"] and audio["aligned"]
    assert audio["dtype"] == "float32" and audio["shape"] == [960]
    assert audio["sum"] == pytest.approx(float(samples.sum()), abs=1e-4)
    assert tens == {"owner": "SharedBytes", "writeable": False, "dtype": "int32", "shape": [3, 4],
                    "aligned": True, "sum": 66.0}


def test_audio_returned_by_a_node_comes_back_with_its_samples():
    samples = np.array([0.1, -0.2, 0.3, 0.4], dtype=np.float32)
    manifest = python_node("Gain", params={"gain": 0.5})
    outs = run(runtime.execute_pipeline_with_input(manifest, [runtime.numpy_to_audio_dict(samples, 16000, 2)]))
    back = runtime.audio_dict_to_numpy(outs[0])
    assert back.shape == (2, 2) and outs[0]["sample_rate"] == 16000
    np.testing.assert_allclose(back.reshape(-1), samples * 0.5)


def test_a_streaming_session_runs_a_python_node():
    async def go():
        async with runtime.StreamSession(python_node("Splitter")) as session:
            await session.send("a b")
            first = [await session.recv(timeout=10), await session.recv(timeout=10)]
            await session.send("c")
            rest = await session.close()
        return [o["text"] for o in first + rest]

    assert run(go()) == ["a", "b", "c"]


def test_a_bad_param_fails_the_start_naming_the_node_and_the_closest_param():
    with pytest.raises(remotemedia.PipelineError) as e:
        run(runtime.execute_pipeline_with_input(python_node("Gain", params={"gian": 2}), []))
    assert 'node "py"' in str(e.value)
    assert "unknown param 'gian' (did you mean 'gain'?)" in str(e.value)


def test_a_wrong_return_type_is_an_error_naming_node_and_type():
    with pytest.raises(remotemedia.PipelineError, match=r"node 'py'.* returned set"):
        run(runtime.execute_pipeline_with_input(python_node("Faulty"), ["wrongtype"]))


def test_a_raise_carries_the_python_traceback():
    with pytest.raises(remotemedia.PipelineError) as e:
        run(runtime.execute_pipeline_with_input(python_node("Faulty"), ["raise"]))
    assert "ValueError: bad input on purpose" in str(e.value)
    assert "Traceback (most recent call last)" in str(e.value)


def shm_files(prefix):
    """Shared-memory and iceoryx2 files of this prefix. iceoryx2 keeps one 16-byte global
    management file per prefix for as long as the machine runs; it is not a segment of ours."""
    found = glob.glob(f"/dev/shm/{prefix}*") + glob.glob(f"/tmp/iceoryx2/**/{prefix}*", recursive=True)
    return sorted(f for f in found if not f.endswith(".global_mgmt"))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; only its parent can reap it.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ", 1)[1][0] != "Z"


def wait_gone(pid, seconds=10.0):
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


HOST = textwrap.dedent("""
    import asyncio, sys, time
    from remotemedia import runtime
    manifest = {"version": "v1", "nodes": [{"id": "py", "node_type": "Faulty", "executor": "python",
                                            "python_module": sys.argv[1]}]}
    async def main():
        async with runtime.StreamSession(manifest) as s:
            await s.send("x")
            out = await s.recv(timeout=20)
            print(out["text"].rsplit(":", 1)[1], flush=True)
            if sys.argv[2] == "hang":
                time.sleep(3600)
    asyncio.run(main())
""")


@pytest.mark.parametrize("end", ["normal", "sigkill"])
def test_no_worker_and_no_shared_memory_outlive_the_host(end):
    prefix = f"rmt{uuid.uuid4().hex[:8]}_"
    env = dict(os.environ, REMOTEMEDIA_SHM_PREFIX=prefix)
    host = subprocess.Popen([sys.executable, "-c", HOST, str(FIXTURE), "hang" if end == "sigkill" else "end"],
                            env=env, stdout=subprocess.PIPE, text=True)
    worker_pid = int(host.stdout.readline())
    assert alive(worker_pid)
    assert shm_files(prefix), "the session uses shared memory under its prefix"
    if end == "sigkill":
        host.send_signal(signal.SIGKILL)
    host.wait(timeout=30)
    assert wait_gone(worker_pid), f"worker {worker_pid} outlived its host"
    deadline = time.monotonic() + 10
    while shm_files(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shm_files(prefix) == []
