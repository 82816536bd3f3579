"""B15: a StreamSession from Node.js against the same from Python, 20 ms audio frames through
PassThrough, round trip per frame (send, then receive that frame back).

    .venv/bin/python benches/node_session_rtt.py [--rounds 10] [--frames 5000]

Two worker processes, started once and warmed up (10000 frames each):
benches/node_session_rtt.js (`await session.send(frame); await session.recv()` on
`require('./nodejs')`) and this file with
--worker (`await session.send(d); await session.recv()` on `remotemedia.runtime.StreamSession`,
the project's .venv). Both send views of one 60 s buffer of 16 kHz mono f32 (320 samples a
frame), back to back (the cost per frame, not a paced stream), and check that a frame comes back
as the caller's own memory. The rounds alternate which side goes first; every round trip
of every round counts. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import asyncio
import json
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
RATE = 16000
FRAME = RATE // 50
PASS = {"version": "v1", "nodes": [{"id": "pass", "node_type": "PassThrough"}]}


async def python_worker() -> None:
    import numpy as np

    from remotemedia import runtime

    t = np.arange(RATE * 60) / RATE
    audio = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    frames = [runtime.numpy_to_audio_dict(audio[i:i + FRAME], RATE, 1) for i in range(0, len(audio), FRAME)]
    session = await runtime.StreamSession.open(PASS)
    position = 0

    async def round_trips(n: int) -> list[int]:
        nonlocal position
        took = []
        for i in range(n):
            frame = frames[position % len(frames)]
            position += 1
            start = time.perf_counter_ns()
            await session.send(frame)
            out = await session.recv()
            took.append(time.perf_counter_ns() - start)
            if i == 0 and not np.shares_memory(out["samples"], frame["samples"]):
                raise RuntimeError("the frame did not come back as the caller's memory")
        return took

    await round_trips(10000)  # warm-up
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(await round_trips(int(line))), flush=True)
    await session.close()


def start(cmd: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{cmd} did not start")
    return proc


def ask(proc: subprocess.Popen, frames: int) -> list[int]:
    proc.stdin.write(f"{frames}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def percentile(values: list[int], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(python_worker())
        return
    sides = {
        "Node.js": start(["node", "benches/node_session_rtt.js"]),
        "Python": start([sys.executable, __file__, "--worker"]),
    }
    took: dict[str, list[int]] = {name: [] for name in sides}
    rows = []
    for r in range(args.rounds):
        order = list(sides) if r % 2 == 0 else list(reversed(sides))
        this_round = {name: ask(sides[name], args.frames) for name in order}
        for name, values in this_round.items():
            took[name] += values
        rows.append(this_round)
    for proc in sides.values():
        proc.stdin.close()
        proc.wait(timeout=30)

    print("| round | Node.js p50 | Node.js p99 | Python p50 | Python p99 |")
    print("|---|---|---|---|---|")
    for i, row in enumerate(rows, 1):
        cells = [f"{percentile(row[n], 50):.1f} us | {percentile(row[n], 99):.1f} us" for n in sides]
        print(f"| {i} | " + " | ".join(cells) + " |")
    node, py = took["Node.js"], took["Python"]
    print(f"| **all {len(node)} frames** | **{percentile(node, 50):.1f} us** | **{percentile(node, 99):.1f} us** "
          f"| **{percentile(py, 50):.1f} us** | **{percentile(py, 99):.1f} us** |")
    print(f"\nNode.js / Python: p50 {percentile(node, 50) / percentile(py, 50):.2f}, "
          f"p99 {percentile(node, 99) / percentile(py, 99):.2f}")


if __name__ == "__main__":
    main()
