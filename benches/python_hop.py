"""B3: the hop cost of a Python node, and what an idle worker costs.

    .venv/bin/python benches/python_hop.py [--count 5000] [--idle-seconds 10]
    .venv/bin/python benches/python_hop.py --video [--count 300]     (B3b)

Runs side by side, in one run: our round trip (cargo bench python_hop: a 20 ms 48 kHz mono
f32 frame through a Python echo node, called directly and in a graph session), the floor (the same echo over the iceoryx2
PyPI package's own Python bindings) and multiprocessing.Pipe with pickle
(benches/hop_baselines.py). Then it measures one idle worker's CPU over --idle-seconds and its
resident memory. With --video (B3b) the frame is one 1920x1080 RGB image and the idle worker
is not measured. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "runtime-bridge" / "tests" / "fixtures" / "test_nodes.py"
TICK = os.sysconf("SC_CLK_TCK")


def json_lines(cmd):
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def cpu_seconds(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def idle_worker(seconds):
    from remotemedia import runtime

    manifest = {"version": "v1", "nodes": [{"id": "idle", "node_type": "Faulty", "executor": "python",
                                            "python_module": str(FIXTURE)}]}
    async with runtime.StreamSession(manifest) as session:
        await session.send("x")
        pid = int((await session.recv(timeout=20))["text"].rsplit(":", 1)[1])
        before = cpu_seconds(pid)
        time.sleep(seconds)
        return (cpu_seconds(pid) - before) / seconds, rss_mib(pid)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--count", type=int)
    p.add_argument("--idle-seconds", type=float, default=10.0)
    p.add_argument("--video", action="store_true", help="B3b: a 1920x1080 RGB frame")
    args = p.parse_args()
    count = str(args.count or (300 if args.video else 5000))
    video = ["--video"] if args.video else []
    hop, in_graph = json_lines(["cargo", "bench", "-q", "-p", "remotemedia-runtime", "--bench", "python_hop",
                                "--", "--count", count, *video])
    base = {r["transport"]: r for r in json_lines([sys.executable, "benches/hop_baselines.py",
                                                    "--count", count, *video])}
    floor = next(r for name, r in base.items() if name.startswith("iceoryx2"))
    pipe = next(r for name, r in base.items() if "pipe" in name)
    print("| transport | p50 us | p99 us | mean us |\n|---|---|---|---|")
    for r in (hop, in_graph, floor, pipe):
        print(f"| {r['transport']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | {r['mean_us']:.1f} |")
    target = 3 if args.video else 10
    for ours in (hop, in_graph):
        print(f"\n{ours['transport']}: p50 / iceoryx2 floor {ours['p50_us'] / floor['p50_us']:.2f} (target <= 1.5), "
              f"pipe+pickle / p50 {pipe['p50_us'] / ours['p50_us']:.1f}x (target >= {target})")
    if args.video:
        return
    cpu, rss = asyncio.run(idle_worker(args.idle_seconds))
    print(f"idle worker over {args.idle_seconds:.0f} s: {cpu * 100:.3f} % of a core (target < 1 %), RSS {rss:.1f} MiB")


if __name__ == "__main__":
    main()
