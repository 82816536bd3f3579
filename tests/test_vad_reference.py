"""SileroVADNode's speech segments against Silero's own segmentation: the silero-vad package's
get_speech_timestamps_from_probs run on the reference probabilities (tests/reference_vad.py),
on utterances spoken by espeak-ng with pauses of several lengths."""

import ast
import asyncio
import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import List

import numpy as np
import pytest

from remotemedia import runtime

ROOT = Path(__file__).resolve().parent.parent
RATE = 16000
PARAMS = {"threshold": 0.5, "min_speech_duration_ms": 250, "min_silence_duration_ms": 300, "speech_pad_ms": 30}
# (voice, words per minute, text, silence after in seconds)
UTTERANCES = [
    ("en-us", 150, "Turn left at the next light.", 0.7),
    ("en-gb", 190, "Yes.", 0.5),
    ("en-us", 120, "Seven, eight, nine, ten.", 1.2),
    ("de", 160, "Guten Morgen, wie geht es dir heute?", 0.4),
    ("en-us", 220, "The quick brown fox jumps over the lazy dog", 1.0),
]
FRAME_MS = 512 / RATE * 1000


def reference_segmenter():
    """get_speech_timestamps_from_probs from the installed silero-vad, without importing its
    package (whose __init__ needs torch): the function is pure Python over a list."""
    import importlib.util

    path = Path(importlib.util.find_spec("silero_vad").submodule_search_locations[0]) / "utils_vad.py"
    tree = ast.parse(path.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_speech_timestamps_from_probs")
    scope = {"List": List, "Callable": object, "warnings": warnings}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), scope)
    return scope["get_speech_timestamps_from_probs"]


def speech(tmp_path) -> np.ndarray:
    """The utterances at 16 kHz mono float32, 0.5 s of silence first."""
    parts = [np.zeros(RATE // 2, np.float32)]
    for n, (voice, wpm, text, pause) in enumerate(UTTERANCES):
        wav, raw = tmp_path / f"u{n}.wav", tmp_path / f"u{n}.f32"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(wav), text], check=True)
        subprocess.run(["sox", str(wav), "-r", str(RATE), "-c", "1", "-e", "floating-point", "-b", "32",
                        "-t", "raw", str(raw)], check=True)
        parts += [np.fromfile(raw, "<f4"), np.zeros(int(pause * RATE), np.float32)]
    return np.concatenate(parts)


def reference_segments(audio: np.ndarray, tmp_path) -> list:
    raw = tmp_path / "all.f32"
    audio.astype("<f4").tofile(raw)
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "reference_vad.py"), str(raw)],
                         capture_output=True, text=True, check=True)
    probs = json.loads(out.stdout)
    stamps = reference_segmenter()(probs, sampling_rate=RATE, audio_length_samples=len(audio), **PARAMS)
    return [(s["start"] / RATE * 1000, s["end"] / RATE * 1000) for s in stamps]


def our_segments(audio: np.ndarray) -> list:
    manifest = {"version": "v1", "nodes": [{"id": "vad", "node_type": "SileroVADNode", "params": PARAMS}]}
    chunks = [runtime.numpy_to_audio_dict(audio[i:i + 1600], RATE, 1) for i in range(0, len(audio), 1600)]
    outputs = asyncio.run(runtime.execute_pipeline_with_input(manifest, chunks))
    events = [o["data"] for o in outputs if o["type"] == "json"]
    return [(e["speech_start_ms"], e["timestamp_ms"]) for e in events if e["is_speech_end"]]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("vad-reference")
    audio = speech(tmp)
    return reference_segments(audio, tmp), our_segments(audio)


def test_the_same_segments_as_silero_itself(both):
    """Every utterance is one segment in both, and each start and end lies within one 32 ms
    frame of Silero's (the two runs' probabilities differ in the last digits, so a frame near
    the threshold may fall on the other side)."""
    reference, ours = both
    assert len(reference) == len(UTTERANCES), reference
    assert len(ours) == len(reference), (ours, reference)
    for (rs, re), (os_, oe) in zip(reference, ours):
        assert abs(rs - os_) <= FRAME_MS + 1 and abs(re - oe) <= FRAME_MS + 1, (reference, ours)
