"""Offline speech nodes for voice loops, with no download at run time:

- PocketSphinxASRNode: speech recognition with PocketSphinx and the English model its
  wheel ships. Audio in (one utterance, 16 kHz mono), text out.
- EspeakTTSNode: text to speech with espeak-ng (the Debian package). Text in, audio out
  (22050 Hz mono; put a FastResampleNode after it for another rate).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np

from ..node import Audio, Node, register_node


@register_node("PocketSphinxASRNode")
class PocketSphinxASRNode(Node):
    """Transcribes each audio input (an utterance) into one text output."""

    def __init__(self, sample_rate: int = 16000, **kwargs) -> None:
        super().__init__(**kwargs)
        if sample_rate not in (8000, 16000):
            raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
        self.sample_rate = sample_rate
        self.decoder = None

    async def initialize(self) -> None:
        from pocketsphinx import Decoder

        # The default configuration is the US English model inside the wheel.
        self.decoder = Decoder(samprate=self.sample_rate, loglevel="FATAL")

    async def process(self, data):
        if not isinstance(data, Audio):
            return None  # VAD events and the like pass by
        if data.sample_rate != self.sample_rate or data.channels != 1:
            raise ValueError(
                f"needs mono audio at {self.sample_rate} Hz, got {data.channels} channel(s) "
                f"at {data.sample_rate} Hz; put a FastResampleNode before it"
            )
        pcm = (np.clip(data.samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        text = hyp.hypstr.strip() if hyp is not None else ""
        return text or None


@register_node("EspeakTTSNode")
class EspeakTTSNode(Node):
    """Speaks each text input (or JSON with a "text" field) with espeak-ng."""

    def __init__(self, voice: str = "en-us", speed: int = 160, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 80 <= int(speed) <= 450:
            raise ValueError(f"speed must be within 80..450 words per minute, got {speed}")
        self.voice = voice
        self.speed = int(speed)
        self.program = None

    async def initialize(self) -> None:
        self.program = shutil.which("espeak-ng")
        if self.program is None:
            raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")

    async def process(self, data):
        text = data.get("text") if isinstance(data, dict) else data
        if not isinstance(text, str) or not text.strip():
            return None
        wav = subprocess.run(
            [self.program, "--stdout", "-v", self.voice, "-s", str(self.speed), text],
            check=True, capture_output=True,
        ).stdout
        with wave.open(io.BytesIO(wav)) as w:
            rate, channels = w.getframerate(), w.getnchannels()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return Audio(pcm.astype(np.float32) / 32768.0, rate, channels)
