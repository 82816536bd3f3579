"""B19: per-stream CPU of Silero VAD from Python, ours through `remotemedia.runtime.StreamSession`
against Pipecat's `SileroVADAnalyzer`, side by side in one run.

    .venv/bin/python benches/vad_cpu.py [--seconds 65] [--rounds 2]

Both sides get the same audio: examples/launch/speech.wav at 16 kHz mono, repeated to
--seconds, fed in 20 ms pieces paced in real time, the two processes at the same time (so
they share the machine's state). Each process reports the CPU it used (all its threads) while
streaming, after its model is loaded and warmed up; per-stream CPU is that over the audio's
duration, in % of one core. Our side consumes every output the session produces (the audio
passed through and the VAD events); Pipecat's side awaits `analyze_audio` per piece, as its
transports do. A third process runs the same paced loop feeding nothing: the harness's own
cost (an asyncio timer per piece), which both sides pay and neither is; the table gives the
ratio raw and net of it.

Pipecat comes from the PyPI registry into .venv-pipecat (created on first use); ours runs in
the project's .venv. Prints a Markdown table for BENCHMARKS.md.
"""

import argparse
import asyncio
import json
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
SPEECH = ROOT / "examples" / "launch" / "speech.wav"
PIPECAT_VENV = ROOT / ".venv-pipecat"
PIPECAT = "pipecat-ai==1.14.0"
RATE = 16000
PIECE = RATE // 50  # 20 ms
WARMUP_PIECES = 50


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def make_audio(seconds: float) -> np.ndarray:
    with wave.open(str(SPEECH)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768.0
        rate = w.getframerate()
    t = np.arange(int(len(pcm) * RATE / rate)) * (rate / RATE)
    at_16k = np.interp(t, np.arange(len(pcm)), pcm).astype(np.float32)
    reps = int(np.ceil(seconds * RATE / len(at_16k)))
    return np.tile(at_16k, reps)[: int(seconds * RATE)]


async def paced(pieces, feed):
    """Calls `feed` on each piece at its real-time moment; returns (cpu s, wall s)."""
    for piece in pieces[:WARMUP_PIECES]:
        await feed(piece)
    cpu0, start = cpu_seconds(), time.monotonic()
    for i, piece in enumerate(pieces[WARMUP_PIECES:]):
        delay = start + i * 0.02 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await feed(piece)
    return cpu0, start


async def ours(audio: np.ndarray) -> dict:
    from remotemedia import runtime

    manifest = {"version": "v1", "nodes": [{"id": "vad", "node_type": "SileroVADNode"}]}
    pieces = [runtime.numpy_to_audio_dict(audio[i:i + PIECE], RATE, 1) for i in range(0, len(audio), PIECE)]
    counts = {"audio": 0, "json": 0}
    async with await runtime.StreamSession.open(manifest) as session:

        async def consume():
            async for out in session:
                counts[out["type"]] = counts.get(out["type"], 0) + 1

        consumer = asyncio.create_task(consume())
        cpu0, start = await paced(pieces, session.send)
        await session.close()
        await consumer
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - start
    if counts["audio"] != len(pieces):
        raise SystemExit(f"ours: {counts['audio']} audio outputs for {len(pieces)} pieces")
    return {"side": "remotemedia StreamSession", "cpu_s": cpu, "wall_s": wall, "outputs": counts}


async def pipecat(audio: np.ndarray) -> dict:
    from pipecat.audio.vad.silero import SileroVADAnalyzer
    from pipecat.audio.vad.vad_analyzer import VADState

    vad = SileroVADAnalyzer(sample_rate=RATE)
    vad.set_sample_rate(RATE)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    pieces = [pcm[i:i + PIECE].tobytes() for i in range(0, len(pcm), PIECE)]
    states = {"speaking": 0}

    async def feed(piece):
        if await vad.analyze_audio(piece) == VADState.SPEAKING:
            states["speaking"] += 1

    cpu0, start = await paced(pieces, feed)
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - start
    return {"side": "pipecat SileroVADAnalyzer", "cpu_s": cpu, "wall_s": wall, "outputs": states}


async def harness(audio: np.ndarray) -> dict:
    pieces = [audio[i:i + PIECE] for i in range(0, len(audio), PIECE)]

    async def feed(_piece):
        pass

    cpu0, start = await paced(pieces, feed)
    cpu, wall = cpu_seconds() - cpu0, time.monotonic() - start
    return {"side": "harness (paced loop alone)", "cpu_s": cpu, "wall_s": wall, "outputs": {}}


def side_main(side: str, audio_path: str) -> None:
    audio = np.fromfile(audio_path, "<f4")
    if side == "harness":
        result = asyncio.run(harness(audio))
    elif side == "pipecat":
        from loguru import logger  # Pipecat's log: it would print each parameter change

        logger.remove()
        result = asyncio.run(pipecat(audio))
    else:
        result = asyncio.run(ours(audio))
    result["audio_s"] = len(audio) / RATE - WARMUP_PIECES * 0.02
    print(json.dumps(result))


def pipecat_python() -> str:
    python = PIPECAT_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(PIPECAT_VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import pipecat.audio.vad.silero"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", PIPECAT],
                       check=True)
    return str(python)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=65.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--side", choices=["ours", "pipecat", "harness"], help=argparse.SUPPRESS)
    p.add_argument("--audio", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        return side_main(args.side, args.audio)

    pipecat_py = pipecat_python()
    ours_py = str(ROOT / ".venv" / "bin" / "python")
    with tempfile.TemporaryDirectory() as tmp:
        audio_path = os.path.join(tmp, "speech16k.f32")
        make_audio(args.seconds).astype("<f4").tofile(audio_path)
        rows = []
        for round_no in range(1, args.rounds + 1):
            procs = [subprocess.Popen([py, __file__, "--side", side, "--audio", audio_path],
                                      stdout=subprocess.PIPE, text=True, cwd=ROOT)
                     for py, side in ((ours_py, "ours"), (pipecat_py, "pipecat"), (ours_py, "harness"))]
            results = []
            for proc in procs:
                out, _ = proc.communicate()
                if proc.returncode != 0:
                    raise SystemExit(f"a side failed (exit {proc.returncode})")
                results.append(json.loads(out.strip().splitlines()[-1]))
            for r in results:
                r["round"] = round_no
                r["cpu_percent"] = 100 * r["cpu_s"] / r["audio_s"]
                print(json.dumps(r), file=sys.stderr)
            rows.append(results)
    print("| round | ours: StreamSession, % of a core | Pipecat SileroVADAnalyzer | harness alone "
          "| ratio raw | ratio net of the harness |")
    print("|---|---|---|---|---|---|")
    for o, pc, h in rows:
        net = (o["cpu_percent"] - h["cpu_percent"]) / (pc["cpu_percent"] - h["cpu_percent"])
        print(f"| {o['round']} | {o['cpu_percent']:.2f} | {pc['cpu_percent']:.2f} | {h['cpu_percent']:.2f} | "
              f"{o['cpu_percent'] / pc['cpu_percent']:.2f}x | {net:.2f}x |")


if __name__ == "__main__":
    main()
