"""RemoteMedia's Python WebRtcServer API (remotemedia.webrtc) on the server element, with an
aiortc peer: callbacks, data, peers, sessions, shutdown, and bad configuration."""

import asyncio

import pytest

from remotemedia.webrtc import WebRtcError, WebRtcServer
from test_webrtc_server import SPEECH, VAD, wait_for
from webrtc_peer import Peer, WavTrack


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_server_api_with_an_aiortc_peer():
    async def scenario():
        server = await WebRtcServer.create({"port": 0, "manifest": str(VAD), "ice_loopback_only": True,
                                            "max_peers": 4, "video_codec": "vp8"})
        seen = {"connected": [], "disconnected": [], "outputs": [], "data": [], "session": [], "joined": []}

        @server.on_peer_connected
        async def connected(event):
            seen["connected"].append(event)

        @server.on_peer_disconnected
        def disconnected(event):
            seen["disconnected"].append(event)

        @server.on_pipeline_output
        def output(event):
            seen["outputs"].append(event)

        @server.on_pipeline_output
        def broken(event):
            if len(seen["outputs"]) == 1:
                raise RuntimeError("a user's callback failing must not stop the others")

        @server.on_data
        def data(event):
            seen["data"].append(event)

        @server.on_session
        def session_event(event):
            seen["session"].append(event)

        assert await server.get_state() == "created"
        await server.start()
        assert await server.get_state() == "running"
        port = server.port
        assert port and port > 0
        peer = Peer("py-peer")
        try:
            assert await peer.call(port, recv=(), sendrecv_tracks=[WavTrack(SPEECH)],
                                   user_data={"name": "Ada"}) is None
            await wait_for(lambda: seen["connected"], "on_peer_connected")
            assert seen["connected"][0].peer_id == "py-peer"
            assert seen["connected"][0].capabilities == {"aiortc": True}
            assert seen["connected"][0].metadata == {"name": "Ada"}
            peers = await server.get_peers()
            assert [p.peer_id for p in peers] == ["py-peer"] and peers[0].state == "connected"
            await wait_for(lambda: any(e.data.get("is_speech_start") for e in seen["outputs"]), "a speech start")
            first = seen["outputs"][0]
            assert (first.peer_id, first.node_id, first.kind) == ("py-peer", "vad", "json")
            assert first.timestamp is None or first.timestamp >= 0
            # Data both ways.
            await wait_for(lambda: peer.channel.readyState == "open", "data channel")
            # str goes as text, bytes as binary, both ways.
            await server.send_to_peer("py-peer", '{"hello": 1}')
            await wait_for(lambda: '{"hello": 1}' in peer.received, "send_to_peer")
            await server.send_to_peer("py-peer", b"\x00\x01")
            await wait_for(lambda: b"\x00\x01" in peer.received, "send_to_peer with bytes")
            assert await server.broadcast("all") == 1
            assert await server.broadcast(b"\xff") == 1
            await wait_for(lambda: b"\xff" in peer.received, "broadcast with bytes")
            peer.channel.send("from aiortc")
            await wait_for(lambda: any(e.text == "from aiortc" for e in seen["data"]), "on_data")
            peer.channel.send(b"\x00raw")
            await wait_for(lambda: any(e.binary and e.data == b"\x00raw" for e in seen["data"]), "binary on_data")
            assert all(e.timestamp > 1.7e12 for e in seen["data"])
            with pytest.raises(WebRtcError) as err:
                await server.send_to_peer("nobody", "x")
            assert err.value.code == "PEER_NOT_FOUND"
            # Sessions.
            room = await server.create_session("room-1", {"topic": "vad"})
            room.on_peer_joined(lambda p: seen["joined"].append(p))
            await room.add_peer("py-peer")
            await wait_for(lambda: seen["joined"] == ["py-peer"], "on_peer_joined")
            assert await room.get_peers() == ["py-peer"]
            assert await room.get_metadata() == {"topic": "vad"}
            assert await room.broadcast("to the room") == 1
            await wait_for(lambda: "to the room" in peer.received, "session broadcast")
            info = await server.get_session("room-1")
            assert info.peer_ids == ["py-peer"] and info.created_at > 0
            assert [s.session_id for s in await server.get_sessions()] == ["room-1"]
            with pytest.raises(WebRtcError) as err:
                await server.create_session("room-1")
            assert err.value.code == "CONFIG_ERROR" and "already exists" in err.value.message
            await server.delete_session("room-1")
            assert await server.get_session("room-1") is None
            with pytest.raises(WebRtcError) as err:
                await server.delete_session("room-1")
            assert err.value.code == "SESSION_NOT_FOUND"
            await wait_for(lambda: [e.event_type for e in seen["session"]] ==
                           ["created", "peer_joined", "deleted"], "session events")
            # The application hangs up.
            await server.disconnect_peer("py-peer", reason="test over")
            why = await peer.signaling.notification("peer.state_change")
            assert why["state"] == "disconnected: test over"
            await wait_for(lambda: seen["disconnected"], "on_peer_disconnected")
            assert await server.get_peers() == []
        finally:
            await peer.close()
            await server.shutdown()
        assert await server.get_state() == "stopped"
        # The port is free again: a new server starts on it at once.
        again = await WebRtcServer.create({"port": port, "manifest": str(VAD)})
        await again.start()
        assert again.port == port
        await again.shutdown()

    run(scenario())


def test_bad_configuration_is_reported_before_or_at_start():
    async def scenario():
        with pytest.raises(WebRtcError, match="unknown config keys \\['prot'\\]"):
            await WebRtcServer.create({"prot": 1, "manifest": str(VAD)})
        with pytest.raises(WebRtcError, match="'manifest' is required"):
            await WebRtcServer.create({"port": 0})
        with pytest.raises(WebRtcError, match="does not exist"):
            await WebRtcServer.create({"port": 0, "manifest": "/no/such/manifest.json"})
        with pytest.raises(WebRtcError, match="video_codec 'av1'"):
            await WebRtcServer.create({"port": 0, "manifest": str(VAD), "video_codec": "av1"})
        with pytest.raises(WebRtcError, match="needs 'signaling_url'"):
            await WebRtcServer.connect({"manifest": str(VAD)})
        with pytest.raises(WebRtcError, match="unknown reconnect keys \\['tries'\\]"):
            await WebRtcServer.connect({"manifest": str(VAD), "signaling_url": "ws://127.0.0.1:1/ws",
                                        "reconnect": {"tries": 3}})
        with pytest.raises(WebRtcError, match="reconnect.max_attempts must be a number"):
            await WebRtcServer.connect({"manifest": str(VAD), "signaling_url": "ws://127.0.0.1:1/ws",
                                        "reconnect": {"max_attempts": "many"}})
        bad = await WebRtcServer.create({"port": 0, "manifest": {"version": "v1", "nodes": [
            {"id": "x", "node_type": "NoSuchNode"}]}})
        with pytest.raises(WebRtcError) as err:
            await bad.start()
        assert err.value.code == "CONFIG_ERROR" and "NoSuchNode" in err.value.message
        assert await bad.get_state() == "stopped"
        turn = await WebRtcServer.create({"port": 0, "manifest": str(VAD),
                                          "turn_servers": [{"url": "turn:127.0.0.1:3478", "username": "u",
                                                            "credential": "secret"}],
                                          "stun_servers": ["nonsense"]})
        with pytest.raises(WebRtcError) as err:
            await turn.start()
        assert err.value.code == "CONFIG_ERROR" and "nonsense" in err.value.message
        assert "secret" not in str(err.value)

    run(scenario())


def test_reconnect_config_reaches_ws_signaling():
    """WebRtcServer.connect with `reconnect`: the server goes away and comes back, and the
    element retries as configured and announces itself again."""
    from server_process import ServerProcess
    from webrtc_peer import free_port

    ws_port = free_port()
    server = ServerProcess(ws=f"127.0.0.1:{ws_port}")

    async def scenario():
        errors = []
        ws = await WebRtcServer.connect({"manifest": str(VAD), "signaling_url": f"ws://127.0.0.1:{ws_port}/ws",
                                         "peer_id": "py-server", "reconnect": {
                                             "max_attempts": 50, "initial_backoff_ms": 100, "max_backoff_ms": 300}})
        ws.on_error(errors.append)
        await ws.start()
        try:
            server.kill()
            await wait_for(lambda: any(e.code == "RECONNECT_ATTEMPT" for e in errors), "a reconnect attempt")
            assert "in 100 ms" in next(e.message for e in errors if e.code == "RECONNECT_ATTEMPT")
            server.start()
            await wait_for(lambda: _announced(ws_port, "py-server"), "py-server announced again")
        finally:
            await ws.shutdown()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        server.stop()


def _announced(port, peer_id):
    import json as _json

    import websockets.sync.client as sync_ws

    with sync_ws.connect(f"ws://127.0.0.1:{port}/ws") as c:
        c.send(_json.dumps({"jsonrpc": "2.0", "id": 1, "method": "peer.list", "params": {}}))
        reply = _json.loads(c.recv(timeout=5))
    return any(p["peer_id"] == peer_id for p in reply["result"]["peers"])
