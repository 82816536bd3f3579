"""remotemediawebrtcsink against aiortc peers on loopback: media, data channels, bus messages,
several peers on one encode, max-peers, a peer leaving, and bad input from a peer."""

import asyncio
import json
import time

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

from bus import BusLog  # noqa: E402
from webrtc_peer import Peer, Signaling, free_port  # noqa: E402

Gst.init(None)


class SinkPipeline:
    def __init__(self, max_peers=10, video_codec="vp8"):
        self.port = free_port()
        self.pipeline = Gst.parse_launch(
            f"remotemediawebrtcsink name=s signaling-port={self.port} ice-loopback-only=true "
            f"max-peers={max_peers} video-codec={video_codec} "
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.5 ! s.audio_0 "
            "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! s.video_0"
        )
        self.sink = self.pipeline.get_by_name("s")
        self.bus = BusLog(self.pipeline)
        assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE

    async def message(self, name, timeout=10, **fields):
        return await self.bus.message(name, timeout, **fields)

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


@pytest.fixture
def sink():
    pipelines = []

    def make(**kw):
        p = SinkPipeline(**kw)
        pipelines.append(p)
        return p

    yield make
    for p in pipelines:
        p.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_aiortc_peer_gets_audio_video_and_data(sink):
    s = sink()

    async def scenario():
        peer = Peer("aiortc-1")
        assert await peer.call(s.port, user_data={"room": "lobby"}) is None
        await peer.wait_connected()
        frames = await peer.video_frames(15)
        assert (frames[-1].height, frames[-1].width) == (240, 320)
        rms = await peer.audio_rms(0.5)
        assert rms > 0.1, f"audio is near silence: rms {rms}"
        connected = await s.message("peer-connected", **{"peer-id": "aiortc-1"})
        assert '"aiortc":true' in connected["capabilities"]
        assert json.loads(connected["metadata"]) == {"room": "lobby"}
        assert list(s.sink.emit("get-peers")) == ["aiortc-1"]

        # Data channel both ways: action signals out, bus messages in.
        while peer.channel.readyState != "open":
            await asyncio.sleep(0.05)
        assert s.sink.emit("send-to-peer", "aiortc-1", '{"hello": 1}')
        assert s.sink.emit("broadcast", "to all") == 1
        # Binary both ways, as binary.
        assert s.sink.emit("send-to-peer-bytes", "aiortc-1", GLib.Bytes.new(b"\x00\x01bin"))
        assert s.sink.emit("broadcast-bytes", GLib.Bytes.new(b"\xffall")) == 1
        before = time.time() * 1000
        peer.channel.send("from the peer")
        text = await s.message("data", **{"peer-id": "aiortc-1", "message": "from the peer"})
        assert text["binary"] is False and before - 1000 <= text["timestamp"] <= time.time() * 1000 + 1000
        peer.channel.send(b"\x00raw")
        raw = await s.message("data", **{"peer-id": "aiortc-1", "binary": True})
        assert raw["bytes"] == b"\x00raw"
        for _ in range(100):
            if len(peer.received) >= 4:
                break
            await asyncio.sleep(0.05)
        assert peer.received == ['{"hello": 1}', "to all", b"\x00\x01bin", b"\xffall"]
        assert not s.sink.emit("send-to-peer", "nobody", "x")
        await s.message("error", code="PEER_NOT_FOUND", **{"peer-id": "nobody"})

        # The application hangs up on the peer, which hears why.
        assert s.sink.emit("disconnect-peer", "aiortc-1", "maintenance window")
        why = await peer.signaling.notification("peer.state_change")
        assert why["state"] == "disconnected: maintenance window", why
        bye = await peer.signaling.notification("peer.disconnect")
        assert bye["from"] == "remotemedia"
        await s.message("peer-disconnected", **{"peer-id": "aiortc-1"})
        assert list(s.sink.emit("get-peers")) == []
        await peer.close()

    run(scenario())


def test_three_peers_share_one_encode_and_the_fourth_is_refused(sink):
    s = sink(max_peers=3)

    async def scenario():
        peers = [Peer(f"p{i}") for i in range(3)]
        for p in peers:
            assert await p.call(s.port) is None
        for p in peers:
            await p.wait_connected()
            await p.video_frames(5)
            assert await p.audio_rms(0.3) > 0.1

        late = Peer("late")
        err = await late.call(s.port)
        assert err["code"] == -32004 and err["data"]["code"] == "MAX_PEERS_REACHED", err
        await s.message("error", code="MAX_PEERS_REACHED", **{"peer-id": "late"})
        await late.close()

        # One encoder per stream, whatever the number of peers.
        encoders = [e.get_factory().get_name() for e in s.sink.iterate_recurse() if e.get_factory()]
        assert encoders.count("vp8enc") == 1 and encoders.count("opusenc") == 1, encoders

        # p0 leaves mid-stream without saying goodbye on signaling; the others keep receiving
        # (packets counted after it left: frames queued in the peers may be older).
        await peers[0].close()
        await s.message("peer-disconnected", timeout=20, **{"peer-id": "p0"})
        before = [await p.rtp_stats() for p in peers[1:]]
        await asyncio.sleep(1.0)
        for p, was in zip(peers[1:], before):
            now = await p.rtp_stats()
            assert all(now[k]["packets"] > was[k]["packets"] for k in ("audio", "video")), (p.peer_id, was, now)
            assert await p.audio_rms(0.3) > 0.1
        assert sorted(s.sink.emit("get-peers")) == ["p1", "p2"]

        # Its seat is free again.
        again = Peer("again")
        assert await again.call(s.port) is None
        await again.wait_connected()
        for p in peers[1:] + [again]:
            await p.close()

    run(scenario())


def test_a_bad_offer_fails_that_peer_alone(sink):
    s = sink()

    async def scenario():
        good = Peer("good")
        assert await good.call(s.port) is None
        await good.wait_connected()

        bad = await Signaling.connect(s.port)
        await bad.call("peer.announce", {"peer_id": "bad"})
        reply = await bad.call("peer.offer", {"to": "remotemedia", "sdp": "v=0\r\nthis is not sdp\r\n"})
        assert reply["result"]["delivered"] is True
        state = await bad.notification("peer.state_change")
        assert state["state"].startswith("failed"), state
        await s.message("error", code="PEER_ERROR", **{"peer-id": "bad"})
        # A candidate without a call, and one that does not parse.
        reply = await bad.call("peer.ice_candidate", {"to": "remotemedia", "candidate": "candidate:x"})
        assert reply["error"]["data"]["code"] == "PEER_NOT_FOUND", reply
        await bad.close()

        frames = await good.video_frames(10)
        assert frames
        assert list(s.sink.emit("get-peers")) == ["good"]
        await good.close()

    run(scenario())


def test_a_peer_that_vanishes_is_detected_by_ice(sink):
    """The peer process freezes (SIGSTOP): its signaling socket stays open, its media stops."""
    import os
    import pathlib
    import signal
    import subprocess
    import sys

    s = sink()
    child = subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).with_name("webrtc_peer.py")), str(s.port), "frozen"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "connected"

        async def scenario():
            await s.message("peer-connected", **{"peer-id": "frozen"})
            os.kill(child.pid, signal.SIGSTOP)
            started = time.monotonic()
            gone = await s.message("peer-disconnected", timeout=30, **{"peer-id": "frozen"})
            assert "ICE" in gone["reason"], gone
            assert time.monotonic() - started < 20
            assert list(s.sink.emit("get-peers")) == []

        run(scenario())
    finally:
        child.kill()
        child.wait()


def test_external_signaling_url(sink):
    """The sink announces on another element's signaling server and is reached through it."""
    host = Gst.ElementFactory.make("remotemediawebrtcsrc")
    host.set_property("signaling-port", 0)
    host.set_property("peer-id", "host")
    assert host.set_state(Gst.State.READY) == Gst.StateChangeReturn.SUCCESS
    port = host.get_property("signaling-port")
    assert port > 0
    pipeline = Gst.parse_launch(
        f"remotemediawebrtcsink name=s signaling-url=ws://127.0.0.1:{port}/ws peer-id=far ice-loopback-only=true "
        "video-codec=vp8 "  # aiortc decodes VP8 and H.264, not VP9
        "videotestsrc is-live=true ! video/x-raw,width=160,height=120 ! s.video_0"
    )
    try:
        assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE

        async def scenario():
            peer = Peer("viewer")
            assert await peer.call(port, target="far", recv=("video",)) is None
            await peer.wait_connected()
            frames = await peer.video_frames(5)
            assert frames[-1].width == 160
            await peer.close()

        run(scenario())
    finally:
        pipeline.set_state(Gst.State.NULL)
        host.set_state(Gst.State.NULL)

    bad = Gst.ElementFactory.make("remotemediawebrtcsink")
    bad.set_property("signaling-url", "grpc+nope://127.0.0.1:1")
    assert bad.set_state(Gst.State.READY) == Gst.StateChangeReturn.FAILURE


LEVEL = json.dumps({"version": "v1", "nodes": [{"id": "level", "node_type": "AudioLevelNode"}]})


def drop_result_events(pad, info):
    event = info.get_event()
    s = event.get_structure() if event.type == Gst.EventType.CUSTOM_DOWNSTREAM else None
    if s is not None and s.get_name() == "remotemedia-result":
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.OK


@pytest.mark.parametrize("carrier", ["events and metas", "metas only"])
def test_results_reach_the_peer_once_from_events_or_metas(carrier):
    """A pipeline's results reach the sink as `remotemedia-result` events and as metas on the
    audio buffers; the peer gets each once. With the events dropped on the way, the metas alone
    carry them."""
    port = free_port()
    pipeline = Gst.parse_launch(
        "audiotestsrc is-live=true samplesperbuffer=960 freq=440 volume=0.5 ! "
        "audio/x-raw,format=F32LE,rate=48000,channels=1 ! remotemediapipeline name=rm ! queue ! "
        f"remotemediawebrtcsink name=s signaling-port={port} ice-loopback-only=true"
    )
    rm = pipeline.get_by_name("rm")
    rm.set_property("manifest-json", LEVEL)
    if carrier == "metas only":
        rm.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, drop_result_events)
    try:
        assert pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE

        async def scenario():
            peer = Peer("listener")
            assert await peer.call(port, recv=("audio",)) is None
            await peer.wait_connected()
            while peer.channel.readyState != "open":
                await asyncio.sleep(0.05)
            results = []
            for _ in range(100):
                results = [m for m in map(json.loads, peer.received) if m.get("type") == "result"]
                if len(results) >= 8:
                    break
                await asyncio.sleep(0.05)
            await peer.close()
            return results

        results = run(scenario())
        assert len(results) >= 8, results
        assert all((r["node_id"], r["kind"]) == ("level", "json") for r in results), results[0]
        assert all(abs(r["data"]["rms_db"] + 9.03) < 0.05 for r in results), results[0]
        # One message per 100 ms window: none twice, none left out.
        times = [r["data"]["timestamp_ms"] for r in results]
        assert [round(t - times[0]) for t in times] == [100 * i for i in range(len(times))], times
    finally:
        pipeline.set_state(Gst.State.NULL)


SIGNALS = {
    "send-to-peer": 2, "send-to-peer-bytes": 2, "broadcast": 1, "broadcast-bytes": 1,
    "disconnect-peer": 2, "create-session": 2, "join-session": 2, "leave-session": 2,
    "delete-session": 1, "send-to-session": 2, "get-sessions": 0, "get-peers": 0,
}


@pytest.mark.parametrize("element", ["remotemediawebrtcsink", "remotemediawebrtcsrc"])
def test_action_signals_take_null_and_wrong_types_without_aborting(element):
    """NULL (None) for every argument, stopped and running, and arguments of the wrong type
    (PyGObject refuses them for GBytes and turns them into strings for text). Before the fix a
    NULL string made the handler return nothing and GLib abort the process."""
    port = free_port()
    e = Gst.ElementFactory.make(element)
    e.set_property("signaling-port", port)
    pipeline = Gst.Pipeline()
    pipeline.add(e)

    def emit_all():
        for name, n in SIGNALS.items():
            result = e.emit(name, *([None] * n))
            assert result in (False, 0, "[]", []) or name == "get-sessions", (name, result)

    emit_all()
    assert pipeline.set_state(Gst.State.READY) == Gst.StateChangeReturn.SUCCESS
    try:
        emit_all()
        for name, n in SIGNALS.items():
            for wrong in (object(), 5, 2.5):
                if not n:
                    continue
                try:
                    result = e.emit(name, *([wrong] * n))
                except TypeError:
                    assert "bytes" in name
                else:
                    assert result in (False, 0), (name, wrong, result)
        # The element still works after all that.
        assert e.emit("create-session", "room", "") is True
        assert json.loads(e.emit("get-sessions"))[0]["session_id"] == "room"
    finally:
        pipeline.set_state(Gst.State.NULL)
