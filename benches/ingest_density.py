"""B9: how many concurrent RTSP audio streams this machine carries through resample + Silero VAD
in real time. For each N, one pipeline holds N copies of
`remotemediaingest ! audioconvert ! audioresample ! remotemediapipeline manifest=vad.json ! fakesink`
reading one shared live RTSP stream; a stream keeps up when the running time its sink has
reached stays within a bound of the clock's, for the whole window. CPU is this process's.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/ingest_density.py [N ...]
"""

import os
import pathlib
import subprocess
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from webrtc_peer import free_port  # noqa: E402

VAD = HERE.parent / "examples" / "launch" / "vad.json"
WINDOW = 20.0  # seconds measured after the start-up
MAX_LAG = 1.0  # seconds a stream may trail the clock (its latency is 0.2 s)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds():
    fields = open("/proc/self/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(uri, n):
    desc = " ".join(
        f"remotemediaingest uri={uri} ! audioconvert ! audioresample "
        f"! remotemediapipeline manifest={VAD} post-messages=false ! fakesink name=s{i} sync=false"
        for i in range(n))
    pipeline = Gst.parse_launch(desc)
    sinks = [pipeline.get_by_name(f"s{i}") for i in range(n)]
    pipeline.set_state(Gst.State.PLAYING)
    time.sleep(5 + n / 20)  # every stream connected
    clock, base = pipeline.get_clock(), pipeline.get_base_time()
    worst = [0.0] * n
    c0, t0 = cpu_seconds(), time.monotonic()
    while time.monotonic() - t0 < WINDOW:
        time.sleep(1)
        now = (clock.get_time() - base) / 1e9
        for i, sink in enumerate(sinks):
            ok, pos = sink.query_position(Gst.Format.TIME)
            lag = now - pos / 1e9 if ok else float("inf")
            worst[i] = max(worst[i], lag)
    cpu = 100 * (cpu_seconds() - c0) / (time.monotonic() - t0)
    errors = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    behind = sum(1 for w in worst if w > MAX_LAG)
    print(f"{n:4d} streams: {n - behind} kept up (worst lag {max(worst):.2f} s), {behind} fell behind; "
          f"CPU {cpu:.0f} % of a core" + (f"; error: {errors.parse_error()[0].message}" if errors else ""),
          flush=True)
    return behind == 0 and errors is None


def main(counts):
    Gst.init(None)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE.parent / "tests" / "rtsp_server.py"), str(port), "sine"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    try:
        for n in counts:
            if not run(f"rtsp://127.0.0.1:{port}/test", n):
                break
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [25, 50, 100, 150])
