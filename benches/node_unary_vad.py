"""B16: a unary VAD run on 60 s of speech from Node.js and from Python, each against the same
from Rust: `executePipelineWithInput` / `runtime.execute_pipeline_with_input` /
`load_graph` + `execute_unary`.

    cargo build --release -p remotemedia-runtime --example unary_vad
    .venv/bin/python benches/node_unary_vad.py [--rounds 9]

examples/launch/vad.json (FastResampleNode to 16 kHz, SileroVADNode) on the shipped speech
(examples/launch/speech.wav, 22.05 kHz) looped to 60 s, sent as 3000 inputs of 20 ms that are
views of one buffer, with their pts. Three worker processes, started once and warmed up by a
run each: benches/node_unary_vad.js (`require('./nodejs')`), this file with --worker (the
project's .venv) and target/release/examples/unary_vad. Each run is timed by its worker from
its inputs to its outputs as that language holds them (manifest parsing, node creation, the
VAD, the conversions both ways). The rounds rotate which side goes first; the table gives
each side's median and minimum and their ratios to Rust's. Prints a Markdown table for
BENCHMARKS.md.
"""

import argparse
import asyncio
import pathlib
import statistics
import subprocess
import sys
import time
import wave

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAUNCH = ROOT / "examples" / "launch"


async def python_worker() -> None:
    import numpy as np

    from remotemedia import runtime

    manifest = (LAUNCH / "vad.json").read_text()
    with wave.open(str(LAUNCH / "speech.wav")) as w:
        rate = w.getframerate()
        speech = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
    audio = np.tile(speech, 60 * rate // len(speech) + 1)[: 60 * rate]
    step = rate // 50
    inputs = [
        {"type": "audio", "samples": audio[i:i + step], "sample_rate": rate, "channels": 1,
         "pts": (i // step) * 20_000_000}
        for i in range(0, len(audio) - step + 1, step)
    ]

    async def run() -> str:
        start = time.perf_counter_ns()
        outputs = await runtime.execute_pipeline_with_input(manifest, inputs)
        return f"{time.perf_counter_ns() - start} {len(outputs)}"

    await run()  # warm-up
    print("ready", flush=True)
    for _ in sys.stdin:
        print(await run(), flush=True)


def start(cmd: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"{cmd} did not start")
    return proc


def ask(proc: subprocess.Popen) -> tuple[float, int]:
    proc.stdin.write("run\n")
    proc.stdin.flush()
    ns, outputs = proc.stdout.readline().split()
    return int(ns) / 1e6, int(outputs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(python_worker())
        return
    rust = ROOT / "target" / "release" / "examples" / "unary_vad"
    if not rust.is_file():
        raise SystemExit("build it first: cargo build --release -p remotemedia-runtime --example unary_vad")
    sides = {
        "Rust": start([str(rust)]),
        "Node.js": start(["node", "benches/node_unary_vad.js"]),
        "Python": start([sys.executable, __file__, "--worker"]),
    }
    names = list(sides)
    ms: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, set[int]] = {name: set() for name in names}
    for r in range(args.rounds):
        for name in names[r % 3:] + names[:r % 3]:
            took, outputs = ask(sides[name])
            ms[name].append(took)
            counts[name].add(outputs)
    for proc in sides.values():
        proc.stdin.close()
        proc.wait(timeout=60)
    if len(set().union(*counts.values())) != 1:
        raise SystemExit(f"the sides gave different outputs: {counts}")

    rust_median = statistics.median(ms["Rust"])
    print(f"{args.rounds} runs each, {counts['Rust'].pop()} outputs a run on every side\n")
    rust_min = min(ms["Rust"])
    print("| | median | min | max | ratio to Rust, medians | ratio to Rust, minimums |")
    print("|---|---|---|---|---|---|")
    for name in names:
        median, least = statistics.median(ms[name]), min(ms[name])
        print(f"| {name} | {median:.1f} ms | {least:.1f} ms | {max(ms[name]):.1f} ms "
              f"| **{median / rust_median:.3f}** | {least / rust_min:.3f} |")


if __name__ == "__main__":
    main()
