"""The aiortc side of B5: announces as `aiortc-sender` on a JSON-RPC signaling server and
answers every offer with a connection of its own, fed from one 720p30 video source and one
audio source through MediaRelay (aiortc encodes per connection).

    python benches/aiortc_sender.py SIGNALING_PORT
"""

import asyncio
import pathlib
import sys

import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.contrib.media import MediaRelay
from av import VideoFrame

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tests"))
from webrtc_peer import SineTrack, Signaling  # noqa: E402


class MovingPicture(VideoStreamTrack):
    """1280x720 at 30 fps with a moving bar, so the encoder has real work."""

    def __init__(self):
        super().__init__()
        self.n = 0
        # Smooth colour ramps: as compressible as videotestsrc's moving SMPTE bars.
        x = np.linspace(0, 255, 1280, dtype=np.float32)
        y = np.linspace(0, 255, 720, dtype=np.float32)[:, None]
        self.base = np.stack([np.broadcast_to(x, (720, 1280)), np.broadcast_to(y, (720, 1280)),
                              (x + y) / 2], axis=-1).astype(np.uint8)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        img = np.roll(self.base, self.n * 8, axis=1)
        self.n += 1
        # Converted once here: the per-peer encoders then only read the frame. (They would
        # each convert a shared RGB frame on their own threads, which crashes PyAV.)
        frame = VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


async def main(port):
    signaling = await Signaling.connect(port)
    reply = await signaling.call("peer.announce", {"peer_id": "aiortc-sender"})
    assert "result" in reply, reply
    print("ready", flush=True)
    relay = MediaRelay()
    video, audio = MovingPicture(), SineTrack()
    pcs = []
    while True:
        msg = await signaling.notifications.get()
        if msg.get("method") != "peer.offer":
            continue
        params = msg["params"]
        pc = RTCPeerConnection()
        pcs.append(pc)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=params["sdp"], type="offer"))
        for t in pc.getTransceivers():
            t.direction = "sendonly"
            pc.addTrack(relay.subscribe(audio if t.kind == "audio" else video))
        await pc.setLocalDescription(await pc.createAnswer())
        await signaling.call("peer.answer", {"to": params["from"], "sdp": pc.localDescription.sdp})


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
