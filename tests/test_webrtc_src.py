"""remotemediawebrtcsrc: what aiortc peers send arrives decoded on sometimes pads."""

import asyncio
import threading

import numpy as np
from aiortc import VideoStreamTrack

from test_webrtc_sink import Gst, run
from webrtc_peer import Peer, SineTrack, free_port


class SrcPipeline:
    def __init__(self, decode=True):
        self.port = free_port()
        self.pipeline = Gst.Pipeline()
        self.src = Gst.ElementFactory.make("remotemediawebrtcsrc")
        self.src.set_property("signaling-port", self.port)
        self.src.set_property("ice-loopback-only", True)
        self.src.set_property("decode", decode)
        self.pipeline.add(self.src)
        self.lock = threading.Lock()
        self.pads = {}  # pad name -> {"caps", "stream_id", "buffers", "pcm"}
        self.src.connect("pad-added", self._on_pad)
        self.src.connect("pad-removed", lambda _, pad: self.removed.append(pad.get_name()))
        self.removed = []
        assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE

    def rtp_senders(self):
        """Remote senders whose RTCP sender reports reached the element's rtpbin, by session:
        {session: cname}. Streams with one CNAME are lip-synced by rtpbin."""
        rtpbins = [e for e in self.src.iterate_recurse()
                   if e.get_factory() and e.get_factory().get_name() == "rtpbin"]
        out = {}
        for rtpbin in rtpbins:
            for session_id in range(4):
                session = rtpbin.emit("get-internal-session", session_id)
                if session is None:
                    continue
                for source in session.get_property("sources"):
                    stats = source.get_property("stats")
                    sdes = source.get_property("sdes")
                    if (not stats.get_value("internal") and stats.get_value("have-sr")
                            and sdes and sdes.get_value("cname")):
                        out[session_id] = sdes.get_value("cname")
        return out

    def _on_pad(self, _src, pad):
        info = {"caps": None, "stream_id": None, "buffers": 0, "pcm": []}
        self.pads[pad.get_name()] = info
        sink = Gst.ElementFactory.make("appsink")
        sink.set_property("emit-signals", True)
        sink.set_property("sync", False)

        def on_sample(appsink):
            sample = appsink.emit("pull-sample")
            buf = sample.get_buffer()
            with self.lock:
                info["caps"] = sample.get_caps().to_string()
                info["buffers"] += 1
                if info["caps"].startswith("audio/x-raw"):
                    ok, m = buf.map(Gst.MapFlags.READ)
                    if ok:
                        info["pcm"].append(bytes(m.data))
                        buf.unmap(m)
            return Gst.FlowReturn.OK

        sink.connect("new-sample", on_sample)

        def on_event(_pad, probe):
            event = probe.get_event()
            if event.type == Gst.EventType.STREAM_START:
                info["stream_id"] = event.parse_stream_start()
            return Gst.PadProbeReturn.OK

        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, on_event)
        self.pipeline.add(sink)
        sink.sync_state_with_parent()
        pad.link(sink.get_static_pad("sink"))

    async def wait(self, pred, timeout=20):
        for _ in range(int(timeout * 20)):
            with self.lock:
                if pred(self.pads):
                    return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out; pads: { {k: (v['caps'], v['buffers']) for k, v in self.pads.items()} }")

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


def rms_of(info):
    # audioconvert keeps the decoder's format: S16LE from opusdec.
    pcm = np.frombuffer(b"".join(info["pcm"][-50:]), dtype=np.int16).astype(np.float64) / 32768
    return float(np.sqrt(np.mean(pcm**2)))


def test_aiortc_audio_and_video_arrive_decoded():
    s = SrcPipeline()

    async def scenario():
        peer = Peer("sender")
        assert await peer.call(s.port, recv=(), send_tracks=(SineTrack(), VideoStreamTrack())) is None
        await peer.wait_connected()
        await s.wait(lambda pads: len(pads) == 2 and all(p["buffers"] > 20 for p in pads.values()))
        audio = s.pads["audio_0"]
        video = s.pads["video_0"]
        assert audio["caps"].startswith("audio/x-raw"), audio["caps"]
        assert video["caps"].startswith("video/x-raw") and "width=(int)640" in video["caps"], video["caps"]
        assert audio["stream_id"] == "peer:sender:audio:0"
        assert video["stream_id"] == "peer:sender:video:0"
        assert rms_of(audio) > 0.1, rms_of(audio)
        assert list(s.src.emit("get-peers")) == ["sender"]

        # The peer leaves: its pads go away, the element stays up for the next one.
        await peer.close()
        for _ in range(200):
            if sorted(s.removed) == ["audio_0", "video_0"]:
                break
            await asyncio.sleep(0.05)
        assert sorted(s.removed) == ["audio_0", "video_0"]
        again = Peer("again")
        assert await again.call(s.port, recv=(), send_tracks=(SineTrack(),)) is None
        await s.wait(lambda pads: pads.get("audio_1", {}).get("buffers", 0) > 10)
        assert s.pads["audio_1"]["stream_id"] == "peer:again:audio:0"
        await again.close()

    try:
        run(scenario())
    finally:
        s.stop()


def test_decode_false_gives_the_encoded_stream():
    s = SrcPipeline(decode=False)

    async def scenario():
        peer = Peer("enc")
        assert await peer.call(s.port, recv=(), send_tracks=(SineTrack(),)) is None
        await s.wait(lambda pads: pads.get("audio_0", {}).get("buffers", 0) > 10)
        assert s.pads["audio_0"]["caps"].startswith("audio/x-opus"), s.pads["audio_0"]["caps"]
        await peer.close()

    try:
        run(scenario())
    finally:
        s.stop()
