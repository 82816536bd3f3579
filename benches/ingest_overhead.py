"""B8: the CPU of remotemediaingest against the plain `rtspsrc ! decodebin` chain on the same
RTSP stream. Each side is one gst-launch-1.0 process reading N copies of the stream (one is too
little CPU to measure on a shared machine) into fakesinks; CPU is that process's utime+stime
over the window, the two sides measured alternately, several rounds, in one run.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/ingest_overhead.py [streams] [seconds] [rounds]
"""

import os
import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from webrtc_peer import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def measure(args, seconds):
    proc = subprocess.Popen(["gst-launch-1.0", "-q", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(3)  # connected and past the start-up
        if proc.poll() is not None:
            raise SystemExit(f"gst-launch-1.0 ended: {proc.stderr.read().decode()[-2000:]}")
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
    finally:
        proc.kill()
        proc.wait()


def main(streams=20, seconds=15.0, rounds=3):
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE.parent / "tests" / "rtsp_server.py"), str(port), "sine"],
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    uri = f"rtsp://127.0.0.1:{port}/test"
    plain, ours = [], []
    for _ in range(streams):
        plain += ["rtspsrc", f"location={uri}", "latency=200", "!", "decodebin", "!", "fakesink", "sync=false"]
        ours += ["remotemediaingest", f"uri={uri}", "!", "fakesink", "sync=false"]
    try:
        rows = []
        for r in range(rounds):
            a = measure(plain, seconds)
            b = measure(ours, seconds)
            rows.append((a, b))
            print(f"round {r + 1}: rtspsrc ! decodebin {a:5.1f} %, remotemediaingest {b:5.1f} % "
                  f"of a core for {streams} streams; ratio {b / a:.3f}", flush=True)
        total_a, total_b = sum(a for a, _ in rows), sum(b for _, b in rows)
        print(f"all rounds: ratio {total_b / total_a:.3f} (remotemediaingest / rtspsrc ! decodebin)")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main(*(t(a) for t, a in zip((int, float, int), sys.argv[1:])))
