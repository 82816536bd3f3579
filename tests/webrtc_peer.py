"""An independent WebRTC peer for the tests: aiortc, signaling over our JSON-RPC WebSocket.

aioice leaves 127.0.0.1 out of its host candidates; the tests must stay on loopback
(docs/ARCHITECTURE.md, "Tests and the network"), so the peer gathers on 127.0.0.1 only.
"""

import asyncio
import fractions
import json
import socket
import time
import wave

import aioice.ice
import av
import numpy as np
import websockets
from aiortc import AudioStreamTrack, MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


class SineTrack(AudioStreamTrack):
    """A 440 Hz tone at half scale, 20 ms frames of 48 kHz mono s16."""

    def __init__(self, freq=440.0):
        super().__init__()
        self.freq = freq
        self.sent = 0

    async def recv(self):
        frame = await super().recv()  # paces frames in real time and sets pts
        n = frame.samples
        t = (np.arange(n) + self.sent) / frame.sample_rate
        self.sent += n
        pcm = (0.5 * 32767 * np.sin(2 * np.pi * self.freq * t)).astype(np.int16)
        for plane in frame.planes:
            plane.update(np.repeat(pcm, len(frame.layout.channels)).tobytes())
        return frame


class WavTrack(MediaStreamTrack):
    """A mono WAV file as 20 ms frames of 48 kHz s16, in real time, looped."""

    kind = "audio"
    RATE = 48000
    SAMPLES = 960

    def __init__(self, path):
        super().__init__()
        with wave.open(str(path)) as w:
            assert w.getnchannels() == 1 and w.getsampwidth() == 2, "mono s16 WAV expected"
            rate = w.getframerate()
            pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
        t = np.arange(int(len(pcm) * self.RATE / rate)) * rate / self.RATE
        self.pcm = np.interp(t, np.arange(len(pcm)), pcm).astype(np.int16)
        self.sent = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        due = self.start + self.sent / self.RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        idx = (np.arange(self.SAMPLES) + self.sent) % len(self.pcm)
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.SAMPLES)
        frame.planes[0].update(self.pcm[idx].tobytes())
        frame.sample_rate = self.RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, self.RATE)
        self.sent += self.SAMPLES
        return frame


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Signaling:
    """A JSON-RPC 2.0 client of the signaling server."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 1
        self.pending = {}
        self.notifications = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, port, retries=50):
        for _ in range(retries):
            try:
                ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
                return cls(ws)
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"no signaling server on 127.0.0.1:{port}")

    async def _read(self):
        async for text in self.ws:
            msg = json.loads(text)
            if msg.get("id") in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            else:
                await self.notifications.put(msg)

    async def call(self, method, params):
        rid = self.next_id
        self.next_id += 1
        fut = asyncio.get_running_loop().create_future()
        self.pending[rid] = fut
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        return await asyncio.wait_for(fut, 10)

    async def notification(self, method, timeout=10):
        async def wait():
            while True:
                msg = await self.notifications.get()
                if msg.get("method") == method:
                    return msg["params"]

        return await asyncio.wait_for(wait(), timeout)

    async def close(self):
        self.reader.cancel()
        await self.ws.close()


class Peer:
    """One aiortc peer calling the element: receives its tracks, and may send its own."""

    def __init__(self, peer_id):
        self.peer_id = peer_id
        self.pc = RTCPeerConnection()
        self.tracks = {}
        self.channel = self.pc.createDataChannel("remotemedia")
        self.received = []
        self.channel.on("message", self.received.append)
        self.pc.on("track", lambda track: self.tracks.__setitem__(track.kind, track))
        self.signaling = None

    async def call(self, port, target="remotemedia", recv=("audio", "video"), send_tracks=(),
                   sendrecv_tracks=(), user_data=None):
        self.signaling = await Signaling.connect(port)
        reply = await self.signaling.call("peer.announce", {
            "peer_id": self.peer_id, "capabilities": {"aiortc": True}, "user_data": user_data or {}})
        assert "result" in reply, reply
        for kind in recv:
            self.pc.addTransceiver(kind, direction="recvonly")
        for track in send_tracks:
            self.pc.addTransceiver(track, direction="sendonly")
        for track in sendrecv_tracks:
            self.pc.addTransceiver(track, direction="sendrecv")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = await self.signaling.call(
            "peer.offer", {"to": target, "sdp": self.pc.localDescription.sdp}
        )
        if "error" in reply:
            return reply["error"]
        answer = await self.signaling.notification("peer.answer")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        return None

    async def add_candidate(self, params):
        cand = candidate_from_sdp(params["candidate"].split(":", 1)[1])
        cand.sdpMid = params.get("sdp_mid")
        cand.sdpMLineIndex = params.get("sdp_m_line_index")
        await self.pc.addIceCandidate(cand)

    async def wait_connected(self, timeout=15):
        for _ in range(int(timeout * 10)):
            if self.pc.connectionState == "connected":
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{self.peer_id}: connection state {self.pc.connectionState}")

    async def video_frames(self, n, timeout=15):
        frames = []
        track = self.tracks["video"]
        while len(frames) < n:
            frames.append(await asyncio.wait_for(track.recv(), timeout))
        return frames

    async def audio_rms(self, seconds=0.5, timeout=15):
        track = self.tracks["audio"]
        chunks = []
        got = 0.0
        while got < seconds:
            try:
                frame = await asyncio.wait_for(track.recv(), timeout)
            except asyncio.TimeoutError:
                raise AssertionError(f"{self.peer_id}: no audio frame in {timeout} s; {await self.rtp_stats()}")
            chunks.append(frame.to_ndarray().astype(np.float64).ravel())
            got += frame.samples / frame.sample_rate
        pcm = np.concatenate(chunks) / 32768.0
        return float(np.sqrt(np.mean(pcm**2)))

    async def rtp_stats(self):
        """What RTP came in, per kind: for the message of a failed wait."""
        stats = await self.pc.getStats()
        return {s.kind: {"packets": s.packetsReceived, "lost": s.packetsLost}
                for s in stats.values() if s.type == "inbound-rtp"}

    async def close(self):
        await self.pc.close()
        if self.signaling:
            await self.signaling.close()


async def _serve(port, peer_id):
    peer = Peer(peer_id)
    assert await peer.call(port) is None
    await peer.wait_connected()
    print("connected", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    # A peer in its own process, for tests that make it vanish: webrtc_peer.py PORT PEER_ID
    import sys

    asyncio.run(_serve(int(sys.argv[1]), sys.argv[2]))
