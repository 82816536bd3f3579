"""remotemediawebrtcserver against aiortc peers: every peer gets its own run of the manifest,
its audio goes through it, results come back on its data channel and audio on its track;
a failing run ends that peer alone; sessions group peers."""

import asyncio
import json
import time
from pathlib import Path

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from bus import BusLog  # noqa: E402
from webrtc_peer import Peer, WavTrack, free_port  # noqa: E402

Gst.init(None)
ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT / "examples" / "launch" / "speech.wav"
VAD = ROOT / "examples" / "launch" / "vad.json"


class ServerPipeline:
    def __init__(self, manifest=None, manifest_json=None, max_peers=10):
        self.port = free_port()
        self.server = Gst.ElementFactory.make("remotemediawebrtcserver", "server")
        assert self.server, "remotemediawebrtcserver missing: is GST_PLUGIN_PATH set?"
        self.server.set_property("signaling-port", self.port)
        self.server.set_property("ice-loopback-only", True)
        self.server.set_property("max-peers", max_peers)
        if manifest:
            self.server.set_property("manifest", str(manifest))
        if manifest_json:
            self.server.set_property("manifest-json", manifest_json)
        self.pipeline = Gst.Pipeline.new()
        self.pipeline.add(self.server)
        self.bus = BusLog(self.pipeline, fail_on_error=False)
        self.errors = self.bus.errors

    def play(self):
        return self.pipeline.set_state(Gst.State.PLAYING)

    def poll(self):
        self.bus.poll()

    async def message(self, name, timeout=15, **fields):
        return await self.bus.message(name, timeout, **fields)

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


@pytest.fixture
def server():
    made = []

    def make(**kw):
        s = ServerPipeline(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def results(peer):
    out = []
    for text in peer.received:
        msg = json.loads(text)
        if msg.get("type") == "result":
            out.append(msg)
    return out


async def wait_for(predicate, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_each_peer_gets_its_own_vad_run_with_results_and_audio_back(server):
    s = server(manifest=VAD)
    assert s.play() != Gst.StateChangeReturn.FAILURE
    async def scenario():
        talker, quiet = Peer("talker"), Peer("quiet")
        try:
            from aiortc import AudioStreamTrack

            assert await talker.call(s.port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)]) is None
            assert await quiet.call(s.port, recv=(), sendrecv_tracks=[AudioStreamTrack()]) is None
            await talker.wait_connected()
            await quiet.wait_connected()
            await s.message("peer-connected", **{"peer-id": "talker"})
            # The speech sample starts talking at 1.0 s: a speech start reaches the talker.
            await wait_for(lambda: any(r["data"].get("is_speech_start") for r in results(talker)),
                           "a VAD speech start on the talker's data channel")
            first = results(talker)[0]
            assert first["node_id"] == "vad" and first["kind"] == "json"
            assert set(first["data"]) >= {"has_speech", "speech_probability", "timestamp_ms"}
            # The other peer's run is its own: silence in, no speech out.
            await wait_for(lambda: len(results(quiet)) > 20, "results for the quiet peer")
            assert not any(r["data"]["has_speech"] for r in results(quiet))
            # The manifest's audio (the talker's speech, resampled) comes back on its track.
            rms = await talker.audio_rms(seconds=3.0)
            assert rms > 0.01, rms
            # The bus carries each result with the peer it belongs to.
            bus = await s.message("remotemedia", **{"peer-id": "talker", "node-id": "vad"})
            assert json.loads(bus["json"])["speech_probability"] >= 0
            # A peer that leaves takes its run along; the other one goes on.
            await quiet.close()
            await s.message("peer-disconnected", **{"peer-id": "quiet"})
            before = len(results(talker))
            await wait_for(lambda: len(results(talker)) > before + 10, "results after the other peer left")
            await wait_for(lambda: s.server.get_by_name("peer1") is None, "the quiet peer's run removed")
            assert s.server.get_by_name("peer0") is not None
        finally:
            await talker.close()
            await quiet.close()

    run(scenario())
    assert not s.errors, s.errors


def test_a_failing_run_ends_that_peer_alone(server):
    # Silero needs 16 kHz mono; a browser sends 48 kHz: the node fails at the first buffer.
    manifest = json.dumps({"version": "v1", "nodes": [
        {"id": "vad", "node_type": "SileroVADNode", "params": {}}], "connections": []})
    s = server(manifest_json=manifest)
    assert s.play() != Gst.StateChangeReturn.FAILURE
    async def scenario():
        peer = Peer("doomed")
        try:
            assert await peer.call(s.port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)]) is None
            err = await s.message("error", code="PIPELINE_ERROR", **{"peer-id": "doomed"})
            assert "16000" in err["message"], err
            await s.message("peer-disconnected", **{"peer-id": "doomed"})
            await wait_for(lambda: any('"PIPELINE_ERROR"' in m for m in peer.received) or
                           peer.pc.connectionState in ("closed", "failed"), "the peer told")
        finally:
            await peer.close()
        # The server is still up: a new peer is answered and gets a run (and an error) of its own.
        again = Peer("next")
        try:
            assert await again.call(s.port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)]) is None
            await s.message("error", code="PIPELINE_ERROR", **{"peer-id": "next"})
        finally:
            await again.close()

    run(scenario())
    assert not s.errors, f"a peer's failure reached the pipeline: {s.errors}"
    _, state, _ = s.pipeline.get_state(0)
    assert state == Gst.State.PLAYING


def test_a_bad_manifest_fails_at_start_naming_the_problem(server):
    s = server(manifest_json='{"version": "v1", "nodes": [{"id": "x", "node_type": "NoSuchNode"}]}')
    assert s.play() == Gst.StateChangeReturn.FAILURE
    s.poll()
    assert any("CONFIG_ERROR" in e and "NoSuchNode" in e for e in s.errors), s.errors
    missing = server()
    assert missing.play() == Gst.StateChangeReturn.FAILURE
    missing.poll()
    assert any("manifest" in e for e in missing.errors), missing.errors


def test_sessions_group_peers(server):
    s = server(manifest=VAD)
    assert s.play() != Gst.StateChangeReturn.FAILURE
    async def scenario():
        a, b, c = Peer("a"), Peer("b"), Peer("c")
        try:
            assert s.server.emit("create-session", "lobby", '{"topic": "demo"}')
            assert not s.server.emit("create-session", "lobby", "")
            await s.message("error", code="CONFIG_ERROR")
            for peer, room in ((a, "lobby"), (b, "lobby"), (c, "other")):
                assert await peer.call(s.port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)],
                                       user_data={"session": room}) is None
            for peer in (a, b, c):
                await peer.wait_connected()
                await wait_for(lambda p=peer: p.channel.readyState == "open", "data channel open")
            await s.message("session", **{"session-id": "lobby", "event": "peer-joined", "peer-id": "b"})
            await s.message("session", **{"session-id": "other", "event": "created"})
            sessions = {x["session_id"]: x for x in json.loads(s.server.emit("get-sessions"))}
            assert sessions["lobby"]["peer_ids"] == ["a", "b"]
            assert sessions["lobby"]["metadata"] == {"topic": "demo"}
            assert sessions["other"]["peer_ids"] == ["c"]
            assert s.server.emit("send-to-session", "lobby", "hello lobby") == 2
            await wait_for(lambda: "hello lobby" in a.received and "hello lobby" in b.received, "lobby message")
            await asyncio.sleep(0.3)
            assert "hello lobby" not in c.received
            # The application moves peers, and unknown sessions are reported.
            assert s.server.emit("join-session", "other", "a")
            assert s.server.emit("leave-session", "lobby", "a")
            assert s.server.emit("send-to-session", "nowhere", "x") == 0
            await s.message("error", code="SESSION_NOT_FOUND")
            await b.close()
            await s.message("session", **{"session-id": "lobby", "event": "peer-left", "peer-id": "b"})
            sessions = {x["session_id"]: x for x in json.loads(s.server.emit("get-sessions"))}
            assert sessions["lobby"]["peer_ids"] == []
            assert sessions["other"]["peer_ids"] == ["a", "c"]
            assert s.server.emit("delete-session", "lobby")
            assert not s.server.emit("delete-session", "lobby")
        finally:
            for peer in (a, b, c):
                await peer.close()

    run(scenario())


def test_a_first_track_that_cannot_be_fed_ends_that_peer_and_the_server_goes_on(server):
    """A peer that takes our audio (Opus) but sends PCMU (no decoder chain for it): building the run's input fails and
    the run posts its error from the track's thread. Before, that thread held the run's input
    lock while the server, handling the error on the same thread, stopped the run, which took
    the lock again: the process hung."""
    from aiortc import RTCRtpSender

    s = server(manifest=VAD)
    assert s.play() != Gst.StateChangeReturn.FAILURE

    async def scenario():
        bad = Peer("pcmu-peer")
        bad.pc.addTransceiver("audio", direction="recvonly")
        bad.pc.addTransceiver(WavTrack(SPEECH), direction="sendonly").setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"])
        assert await bad.call(s.port, recv=()) is None
        err = await s.message("error", code="PIPELINE_ERROR", **{"peer-id": "pcmu-peer"})
        assert "no depayloader" in err["message"], err
        await bad.close()
        # The server still serves the next peer.
        good = Peer("good-peer")
        try:
            assert await good.call(s.port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)]) is None
            await s.message("peer-connected", **{"peer-id": "good-peer"})
            await s.message("remotemedia", 30, **{"peer-id": "good-peer"})
        finally:
            await good.close()

    run(scenario())


def test_slow_manifest_starts_do_not_stall_signaling(server, tmp_path):
    """Two peers call at once a server whose manifest has a Python node that takes 3 s to load.
    Starting their runs must not occupy the async workers that carry signaling: a peer.list
    sent meanwhile is answered before either worker has finished loading (one clock:
    CLOCK_MONOTONIC, read here and by the workers). Before, both runtime workers waited for the
    Python workers and the answer came after."""
    import websockets

    (tmp_path / "slow_nodes.py").write_text(
        "import pathlib, sys, time\n"
        "time.sleep(3)\n"
        f"with open({str(tmp_path / 'loaded')!r}, 'a') as f:\n"
        "    f.write(f'{time.monotonic()}\\n')\n"
        "from remotemedia import Node, register_node\n"
        "@register_node('Slow')\n"
        "class Slow(Node):\n"
        "    async def process(self, a):\n"
        "        return a\n")
    manifest = tmp_path / "slow.json"
    manifest.write_text(json.dumps({"version": "v1", "nodes": [
        {"id": "slow", "node_type": "Slow", "executor": "python", "python_module": "slow_nodes"}]}))
    s = server(manifest=manifest)
    assert s.play() != Gst.StateChangeReturn.FAILURE

    async def scenario():
        peers = [Peer(f"caller-{i}") for i in range(2)]
        calls = [asyncio.ensure_future(p.call(s.port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)])) for p in peers]
        await asyncio.sleep(0.5)  # the offers are in, the runs are starting
        async with websockets.connect(f"ws://127.0.0.1:{s.port}/ws") as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "peer.list", "params": {}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 30))
            answered = time.monotonic()
        assert "result" in reply, reply
        await asyncio.gather(*calls)
        loaded = [float(t) for t in (tmp_path / "loaded").read_text().split()]
        assert answered < min(loaded), (answered, loaded)
        for p in peers:
            await p.close()

    run(scenario())
