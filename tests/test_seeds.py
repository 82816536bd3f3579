"""RemoteMedia's own example manifests (examples/seeds/) wherever a manifest goes.

echo.json is written as RemoteMedia's examples write it (`type` for `node_type`, no `version`)
and runs everywhere: its Echo node passes the input on, so a WebRTC peer gets its own media
back. empty.json (`"nodes": []`) makes a WebRTC server a signaling and data-channel server
with no run per peer; remotemediapipeline, the Python runtime and remotemedia-server, which
would have nothing to run, refuse it.
"""

import asyncio
import fractions
import json
import subprocess

import av
import gi
import grpc
import numpy as np
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from aiortc import VideoStreamTrack  # noqa: E402
from conftest import ROOT  # noqa: E402
from grpc_stubs import pb  # noqa: E402,F401  (the session fixture)
from remotemedia import ManifestError, runtime  # noqa: E402
from remotemedia.webrtc import WebRtcServer  # noqa: E402
from server_process import ServerProcess  # noqa: E402
from test_webrtc_python_api import _announced  # noqa: E402
from test_webrtc_server import ServerPipeline, wait_for  # noqa: E402
from webrtc_peer import Peer, SineTrack  # noqa: E402

Gst.init(None)
SEEDS = ROOT / "examples" / "seeds"
ECHO = SEEDS / "echo.json"
EMPTY = SEEDS / "empty.json"
NO_NODES = "the manifest has no nodes"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_the_seeds_are_remotemedias_own_text():
    assert json.loads(ECHO.read_text()) == {"nodes": [{"id": "echo", "type": "Echo"}], "connections": []}
    assert json.loads(EMPTY.read_text()) == {"nodes": [], "connections": []}


# ---------------------------------------------------------------- the Python runtime


def test_python_runtime_echo_passes_audio_back():
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(960) / 48000)).astype(np.float32)
    stereo = np.repeat(tone, 2)
    out = asyncio.run(runtime.execute_pipeline_with_input(
        ECHO.read_text(), [runtime.numpy_to_audio_dict(stereo, 48000, 2), "and text"]))
    assert [o["type"] for o in out] == ["audio", "text"]
    audio = out[0]
    assert (audio["node_id"], audio["sample_rate"], audio["channels"]) == ("echo", 48000, 2)
    assert np.array_equal(runtime.audio_dict_to_numpy(audio), stereo.reshape(-1, 2))
    assert out[1]["text"] == "and text"


def test_python_runtime_refuses_the_empty_manifest():
    with pytest.raises(ManifestError) as err:
        asyncio.run(runtime.execute_pipeline_with_input(EMPTY.read_text(), []))
    assert NO_NODES in str(err.value), err.value


# ---------------------------------------------------------------- remotemediapipeline


def gst_launch(env, manifest):
    return subprocess.run(
        ["gst-launch-1.0", "audiotestsrc", "num-buffers=20", "!", "remotemediapipeline",
         f"manifest={manifest}", "!", "fakesink"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_gst_launch_runs_the_echo_seed(gst_env):
    r = gst_launch(gst_env, "examples/seeds/echo.json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_gst_launch_refuses_the_empty_seed_with_a_config_error(gst_env):
    r = gst_launch(gst_env, "examples/seeds/empty.json")
    assert r.returncode != 0, r.stdout + r.stderr
    text = r.stdout + r.stderr
    assert "CONFIG_ERROR" in text, text
    assert "the manifest has no nodes: remotemediapipeline has nothing to run" in text, text


# ---------------------------------------------------------------- remotemedia-server over gRPC


@pytest.fixture(scope="module")
def grpc_server():
    server = ServerProcess()
    yield server
    server.stop()


def execute(pb, server, manifest, inputs):  # noqa: F811
    with grpc.insecure_channel(server.grpc) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        stub = pb.execution_grpc.PipelineExecutionServiceStub(channel)
        return stub.ExecutePipeline(pb.execution.ExecuteRequest(manifest_json=manifest, inputs=inputs,
                                                                client_version="test"), timeout=60)


def test_grpc_execute_pipeline_runs_the_echo_seed(pb, grpc_server):  # noqa: F811
    samples = np.linspace(-1, 1, 640, dtype="<f4")
    buffers = [
        pb.types.DataBuffer(audio=pb.types.AudioBuffer(samples=samples.tobytes(), sample_rate=16000, channels=1)),
        pb.types.DataBuffer(text="hello"),
    ]
    r = execute(pb, grpc_server, ECHO.read_text(), [pb.execution.NamedInput(data=b) for b in buffers])
    assert r.WhichOneof("outcome") == "result", r.error
    got = [o.data for o in r.result.outputs]
    assert [o.node_id for o in r.result.outputs] == ["echo", "echo"]
    assert got[0].audio.samples == samples.tobytes() and got[0].audio.sample_rate == 16000
    assert got[1].text == "hello"


def test_grpc_execute_pipeline_refuses_the_empty_seed(pb, grpc_server):  # noqa: F811
    r = execute(pb, grpc_server, EMPTY.read_text(), [])
    assert r.WhichOneof("outcome") == "error", r
    assert r.error.kind == pb.types.ErrorResponse.Kind.MANIFEST and NO_NODES in r.error.message, r.error
    # The server goes on.
    assert execute(pb, grpc_server, ECHO.read_text(), []).WhichOneof("outcome") == "result"


# ---------------------------------------------------------------- remotemediawebrtcserver


def peak_hz(frames):
    """The strongest frequency of received audio frames (their first channel)."""
    rate = frames[0].sample_rate
    channels = len(frames[0].layout.channels)
    pcm = np.concatenate([f.to_ndarray().reshape(-1, channels)[:, 0] for f in frames]).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    return np.argmax(spectrum) * rate / len(pcm), float(np.sqrt(np.mean((pcm / 32768) ** 2)))


async def received_audio(peer, seconds=1.0):
    """The last `seconds` of audio that came back to `peer` after 1 s of settling."""
    track = peer.tracks["audio"]
    frames, got = [], 0.0
    while got < 1.0 + seconds:
        frame = await asyncio.wait_for(track.recv(), 15)
        frames.append(frame)
        got += frame.samples / frame.sample_rate
    keep, got = [], 0.0
    for frame in reversed(frames):
        if got >= seconds:
            break
        keep.insert(0, frame)
        got += frame.samples / frame.sample_rate
    return keep


def test_webrtc_server_echo_seed_gives_each_peer_its_own_audio_back():
    s = ServerPipeline(manifest=ECHO)
    try:
        assert s.play() != Gst.StateChangeReturn.FAILURE

        async def scenario():
            low, high = Peer("low"), Peer("high")
            try:
                assert await low.call(s.port, recv=(), sendrecv_tracks=[SineTrack(440)]) is None
                assert await high.call(s.port, recv=(), sendrecv_tracks=[SineTrack(660)]) is None
                for peer, hz in ((low, 440), (high, 660)):
                    await peer.wait_connected()
                    await wait_for(lambda p=peer: "audio" in p.tracks, "the peer's audio track back")
                    peak, rms = peak_hz(await received_audio(peer))
                    assert abs(peak - hz) < 5 and rms > 0.1, (peer.peer_id, peak, rms)
                # One run of the manifest each.
                assert s.server.get_by_name("peer0") and s.server.get_by_name("peer1")
            finally:
                await low.close()
                await high.close()

        run(scenario())
        assert not s.errors, s.errors
    finally:
        s.stop()


class ColourTrack(VideoStreamTrack):
    """320x240 frames of one colour."""

    RGB = (200, 30, 90)

    async def recv(self):
        pts, time_base = await self.next_timestamp()
        image = np.empty((240, 320, 3), np.uint8)
        image[:] = self.RGB
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


def test_webrtc_server_echo_seed_gives_a_video_peer_its_video_back():
    """A peer whose first track is video: the video goes through the manifest and back (in the
    server's video codec, which the peer must support: aiortc has VP8, not the default VP9)."""
    s = ServerPipeline(manifest=ECHO)
    s.server.set_property("video-codec", "vp8")
    try:
        assert s.play() != Gst.StateChangeReturn.FAILURE

        async def scenario():
            peer = Peer("camera")
            try:
                assert await peer.call(s.port, recv=(), sendrecv_tracks=[ColourTrack()]) is None
                await peer.wait_connected()
                await wait_for(lambda: "video" in peer.tracks, "the peer's video track back")
                frames = await peer.video_frames(30)
                last = frames[-1]
                assert (last.width, last.height) == (320, 240)
                mean = last.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
                assert np.allclose(mean, ColourTrack.RGB, atol=12), mean
            finally:
                await peer.close()

        run(scenario())
        assert not s.errors, s.errors
    finally:
        s.stop()


def media_section(sdp, kind):
    """The lines of the first m=`kind` section of `sdp`."""
    sections = sdp.split("\r\nm=")
    return next(s for s in sections if s.startswith(f"{kind} ") or s.startswith(f"m={kind} "))


async def no_media(peer, seconds=1.0):
    """Nothing arrives on any track the peer may have been given."""
    for kind, track in peer.tracks.items():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(track.recv(), seconds)


def test_webrtc_server_empty_seed_serves_signaling_and_data_only():
    s = ServerPipeline(manifest=EMPTY)
    try:
        assert s.play() != Gst.StateChangeReturn.FAILURE

        async def scenario():
            a, b = Peer("a"), Peer("b")
            try:
                # `a` sends audio too: it is received and dropped, nothing comes back.
                assert await a.call(s.port, recv=(), sendrecv_tracks=[SineTrack(440)]) is None
                assert await b.call(s.port, recv=("audio", "video")) is None
                # The server only receives the audio `a` offers to send both ways.
                assert "a=recvonly" in media_section(a.pc.remoteDescription.sdp, "audio")
                for peer in (a, b):
                    await peer.wait_connected()
                    await wait_for(lambda p=peer: p.channel.readyState == "open", "data channel open")
                await s.message("peer-connected", **{"peer-id": "b"})
                # Peer to server: `data` messages, text and binary.
                a.channel.send("from a")
                b.channel.send(b"\x00from b")
                await s.message("data", **{"peer-id": "a", "message": "from a"})
                got = await s.message("data", **{"peer-id": "b", "binary": True})
                assert got["bytes"] == b"\x00from b", got
                # Server to peers: one, then all.
                assert s.server.emit("send-to-peer", "a", "to a")
                assert s.server.emit("broadcast", "to all") == 2
                await wait_for(lambda: "to a" in a.received and "to all" in a.received
                               and "to all" in b.received, "messages to the peers")
                assert "to a" not in b.received
                # No run, no media back, no result.
                await asyncio.sleep(1.0)
                assert list(s.server.iterate_elements()) == []
                assert a.tracks == {}
                await no_media(b)
                s.poll()
                assert not any(name == "remotemedia" for name, _ in s.bus.messages)
                assert not any(json.loads(m).get("type") == "result" for m in a.received + b.received
                               if isinstance(m, str) and m.startswith("{"))
            finally:
                await a.close()
                await b.close()

        run(scenario())
        assert not s.errors, s.errors
    finally:
        s.stop()


def test_remotemediapipeline_alone_still_refuses_what_the_server_takes():
    pipeline = Gst.Pipeline.new()
    element = Gst.ElementFactory.make("remotemediapipeline", None)
    element.set_property("manifest-json", EMPTY.read_text())
    pipeline.add(element)
    try:
        assert pipeline.set_state(Gst.State.READY) == Gst.StateChangeReturn.FAILURE
        msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        err, _ = msg.parse_error()
        assert err.message.startswith("CONFIG_ERROR") and "remotemediapipeline has nothing to run" in err.message
    finally:
        pipeline.set_state(Gst.State.NULL)


# ---------------------------------------------------------------- the Python WebRtcServer


def test_python_webrtc_server_with_the_empty_seed_connects_peers_with_data_only():
    """As the seeds' `WebRtcServer.connect` example: announced on a signaling server, the
    manifest `{"nodes": [], "connections": []}`."""
    from webrtc_peer import free_port

    ws_port = free_port()
    signaling = ServerProcess(ws=f"127.0.0.1:{ws_port}")

    async def scenario():
        server = await WebRtcServer.connect({
            "signaling_url": f"ws://127.0.0.1:{ws_port}/ws", "peer_id": "py-server",
            "manifest": json.loads(EMPTY.read_text()), "ice_loopback_only": True})
        seen = {"connected": [], "data": [], "outputs": [], "errors": []}
        server.on_peer_connected(seen["connected"].append)
        server.on_data(seen["data"].append)
        server.on_pipeline_output(seen["outputs"].append)
        server.on_error(seen["errors"].append)
        await server.start()
        peer = Peer("py-peer")
        try:
            await wait_for(lambda: _announced(ws_port, "py-server"), "the server announced")
            assert await peer.call(ws_port, target="py-server", sendrecv_tracks=[SineTrack(330)]) is None
            await wait_for(lambda: seen["connected"], "on_peer_connected")
            assert [p.peer_id for p in await server.get_peers()] == ["py-peer"]
            await wait_for(lambda: peer.channel.readyState == "open", "data channel open")
            peer.channel.send("hello server")
            await wait_for(lambda: any(e.text == "hello server" for e in seen["data"]), "on_data")
            await server.send_to_peer("py-peer", "hello peer")
            assert await server.broadcast(b"\x01") == 1
            await wait_for(lambda: "hello peer" in peer.received and b"\x01" in peer.received, "data to the peer")
            await no_media(peer)
            assert seen["outputs"] == []
            assert not seen["errors"], seen["errors"]
        finally:
            await peer.close()
            await server.shutdown()

    try:
        run(scenario())
    finally:
        signaling.stop()
