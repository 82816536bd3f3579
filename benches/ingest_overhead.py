"""B8: the CPU of remotemediaingest against the plain `rtspsrc ! decodebin` chain on the same
RTSP stream (or, with `srt`, against `srtsrc ! decodebin` on one SRT listener's stream, where
remotemediaingest's libsrt runs in relay processes whose CPU is counted too). Each side is one
gst-launch-1.0 process reading N copies of the stream (one is too little CPU to measure on a
shared machine) into fakesinks; CPU is that process's (and its children's) utime+stime over the
window. Both sides run at the same time, over the same window, so what else the machine does
weighs on both alike; several rounds, in one run.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/ingest_overhead.py [rtsp|srt] [streams] [seconds] [rounds]
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
    """utime+stime of `pid` and of its living children (the SRT relays; one that ended within
    the window is not counted, so a run with reconnects would read low: none happen here)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / TICKS
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:  # the thread ended
            continue
        for child in children:
            try:
                total += cpu_seconds(int(child))
            except OSError:  # the child ended
                pass
    return total


def measure(sides, seconds):
    """CPU of each gst-launch-1.0 side, in % of a core, over one window they all share."""
    procs = [subprocess.Popen(["gst-launch-1.0", "-q", *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for args in sides]
    try:
        time.sleep(3)  # connected and past the start-up
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit(f"gst-launch-1.0 ended: {proc.stderr.read().decode()[-2000:]}")
        c0, t0 = [cpu_seconds(p.pid) for p in procs], time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - t0
        return [100 * (cpu_seconds(p.pid) - c) / elapsed for p, c in zip(procs, c0)]
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def serve(kind):
    """The stream both sides read: (server process, URI, the plain chain's source)."""
    port = free_port()
    if kind == "rtsp":
        server = subprocess.Popen([sys.executable, str(HERE.parent / "tests" / "rtsp_server.py"), str(port), "sine"],
                                  stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "ready"
        uri = f"rtsp://127.0.0.1:{port}/test"
        return server, uri, ["rtspsrc", f"location={uri}", "latency=200"]
    # One SRT listener serving every caller the same Opus in MPEG-TS.
    server = subprocess.Popen(["gst-launch-1.0", "-q", "audiotestsrc", "is-live=true", "!", "audio/x-raw,rate=48000",
                               "!", "opusenc", "!", "mpegtsmux", "!", "srtsink",
                               f"uri=srt://127.0.0.1:{port}?mode=listener", "wait-for-connection=false"])
    time.sleep(1)
    uri = f"srt://127.0.0.1:{port}?mode=caller"
    return server, uri, ["srtsrc", f"uri={uri}", "latency=200"]


def main(kind="rtsp", streams=20, seconds=15.0, rounds=3):
    server, uri, source = serve(kind)
    plain, ours = [], []
    for _ in range(streams):
        plain += [*source, "!", "decodebin", "!", "fakesink", "sync=false"]
        ours += ["remotemediaingest", f"uri={uri}", "!", "fakesink", "sync=false"]
    try:
        rows = []
        for r in range(rounds):
            a, b = measure([plain, ours], seconds)
            rows.append((a, b))
            print(f"round {r + 1}: {source[0]} ! decodebin {a:5.1f} %, remotemediaingest {b:5.1f} % "
                  f"of a core for {streams} streams; ratio {b / a:.3f}", flush=True)
        total_a, total_b = sum(a for a, _ in rows), sum(b for _, b in rows)
        print(f"all rounds: ratio {total_b / total_a:.3f} (remotemediaingest / {source[0]} ! decodebin)")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main(*(t(a) for t, a in zip((str, int, float, int), sys.argv[1:])))
