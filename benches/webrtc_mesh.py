"""B11: a full mesh of N pipelines against a 2-pipeline call. Each pipeline is one
gst-launch-1.0 process: a remotemediawebrtcsink sending its own tone (peer `<n>-tx`) and a
remotemediawebrtcsrc calling every other sender (`connect-to`), decoding what it hears into a
fakesink. Signaling: remotemedia-server on loopback (not measured). Once every pipeline has
all its calls connected, each process's CPU time (utime + stime) is read over a window, and
its resident memory at the end.

    GST_PLUGIN_PATH=target/release .venv/bin/python benches/webrtc_mesh.py [seconds] [N ...]
"""

import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from server_process import ServerProcess  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def mesh(n, seconds, server):
    names = [f"p{i}" for i in range(n)]
    procs = []
    logs = []
    for i, name in enumerate(names):
        others = ",".join(f"{o}-tx" for o in names if o != name)
        log = tempfile.NamedTemporaryFile("w+", prefix=f"mesh-{name}-")
        args = ["gst-launch-1.0", "-m",
                "audiotestsrc", "is-live=true", f"freq={300 + 100 * i}", "!", "remotemediawebrtcsink",
                f"peer-id={name}-tx", f"signaling-url=ws://{server.ws}/ws", "ice-loopback-only=true",
                "remotemediawebrtcsrc", "name=rx", f"peer-id={name}-rx", f"signaling-url=ws://{server.ws}/ws",
                "ice-loopback-only=true", f"connect-to={others}"]
        for _ in range(n - 1):
            args += ["rx.", "!", "queue", "!", "audioconvert", "!", "fakesink", "sync=false"]
        procs.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT))
        logs.append(log)

    def connected(log):
        log.flush()
        return len(re.findall(r"peer-connected", pathlib.Path(log.name).read_text(errors="replace")))

    # Each process: its sink serves n-1 receivers and its src n-1 senders.
    deadline = time.monotonic() + 60
    while any(connected(log) < 2 * (n - 1) for log in logs):
        assert time.monotonic() < deadline, [connected(log) for log in logs]
        time.sleep(0.2)
    time.sleep(2)  # encoders and jitter buffers settle
    before = [cpu_seconds(p.pid) for p in procs]
    start = time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - start
    cpu = [(cpu_seconds(p.pid) - b) / wall * 100 for p, b in zip(procs, before)]
    rss = [rss_mb(p.pid) for p in procs]
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(20)
    return statistics.mean(cpu), statistics.mean(rss)


def main(seconds, sizes):
    server = ServerProcess()
    try:
        results = {n: mesh(n, seconds, server) for n in sizes}
    finally:
        server.stop()
    base_cpu, base_rss = results[sizes[0]]
    print(f"{'N':>3} {'peers/pipeline':>15} {'CPU %/pipeline':>15} {'x 2-call':>9} {'RSS MB/pipeline':>16}")
    for n, (cpu, rss) in results.items():
        print(f"{n:>3} {n - 1:>15} {cpu:>15.1f} {cpu / base_cpu:>9.2f} {rss:>16.1f}")
    first, last = sizes[0], sizes[-1]
    per_peer = (results[last][1] - results[first][1]) / (last - first)
    print(f"memory per further remote peer (one call each way): {per_peer:.2f} MB "
          f"({per_peer / 2:.2f} MB per peer connection)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:]]
    seconds = float(args[0]) if args else 15
    sizes = [int(a) for a in args[1:]] or [2, 3, 5]
    main(seconds, sizes)
