"""WHIP and WHEP clients for the tests, on aiortc (a WebRTC stack we did not write) and plain
HTTP (urllib): publish tracks to `/whip`, play from `/whep`, trickle with PATCH, hang up
with DELETE.

    python tests/whip_client.py URL [TOKEN]   publishes a 440 Hz tone until killed
"""

import asyncio
import sys
import urllib.error
import urllib.request

import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription, VideoStreamTrack

from webrtc_peer import SineTrack


def http(method, url, body=b"", content_type=None, token=None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body if method in ("POST", "PATCH") else None, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


async def ahttp(*args, **kw):
    return await asyncio.to_thread(http, *args, **kw)


class Session:
    """One WHIP or WHEP session: its peer connection and its resource URL."""

    def __init__(self, base):
        self.base = base
        self.pc = RTCPeerConnection()
        self.location = None
        self.tracks = {}
        self.pc.on("track", lambda t: self.tracks.__setitem__(t.kind, t))

    async def negotiate(self, token=None):
        """POSTs the offer; returns the HTTP status (201 when answered)."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, headers, body = await ahttp("POST", self.base, self.pc.localDescription.sdp.encode(),
                                            "application/sdp", token)
        self.status, self.body = status, body
        if status == 201:
            assert headers.get("Content-Type", "").startswith("application/sdp"), headers
            location = headers["Location"]
            origin = self.base.split("/", 3)[:3]
            self.location = location if location.startswith("http") else "/".join(origin) + location
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        return status

    async def wait_connected(self, timeout=15):
        for _ in range(int(timeout * 10)):
            if self.pc.connectionState == "connected":
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"connection state {self.pc.connectionState}")

    async def delete(self, token=None):
        status, _, _ = await ahttp("DELETE", self.location, token=token)
        await self.pc.close()
        return status

    async def audio_tone(self, seconds=1.0, timeout=15):
        """(dominant frequency, rms) of what the audio track plays."""
        track = self.tracks["audio"]
        chunks, got, rate = [], 0.0, 48000
        while got < seconds:
            frame = await asyncio.wait_for(track.recv(), timeout)
            pcm = frame.to_ndarray().astype(np.float64)
            chunks.append(pcm.reshape(-1, len(frame.layout.channels))[:, 0])
            rate = frame.sample_rate
            got += frame.samples / rate
        x = np.concatenate(chunks)
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return np.argmax(spectrum) * rate / len(x), float(np.sqrt(np.mean(x ** 2)))


def publisher(base, freq=440.0, video=True):
    """A WHIP session sending a tone (and test video in H.264, as OBS sends by default)."""
    s = Session(base)
    s.pc.addTransceiver(SineTrack(freq), direction="sendonly")
    if video:
        t = s.pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        h264 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/H264"]
        t.setCodecPreferences(h264)
    return s


def player(base):
    s = Session(base)
    s.pc.addTransceiver("audio", direction="recvonly")
    s.pc.addTransceiver("video", direction="recvonly")
    return s


async def _publish_forever(url, token):
    s = publisher(url, video=False)
    assert await s.negotiate(token) == 201, s.body
    await s.wait_connected()
    print("connected", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
    asyncio.run(_publish_forever(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
