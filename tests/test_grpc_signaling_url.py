"""WebRTC elements announcing on a remotemedia-server over gRPC (signaling-url=grpc://): a
browser-side peer on the server's WebSocket reaches them, and they reconnect when the server
dies and comes back."""

import asyncio

import gi
import pytest

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from server_process import ServerProcess  # noqa: E402
from bus import BusLog  # noqa: E402
from webrtc_peer import Peer, free_port  # noqa: E402

Gst.init(None)


class Sink:
    def __init__(self, url):
        self.pipeline = Gst.parse_launch(
            f'remotemediawebrtcsink name=s signaling-url="{url}" ice-loopback-only=true '
            "audiotestsrc is-live=true wave=sine freq=440 volume=0.5 ! s.audio_0"
        )
        self.bus = BusLog(self.pipeline)
        assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE

    async def message(self, name, timeout=20, **fields):
        return await self.bus.message(name, timeout, **fields)

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


@pytest.fixture
def cleanup():
    items = []
    yield items.append
    for item in reversed(items):
        item.stop()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_sink_on_grpc_reaches_a_websocket_peer_and_survives_a_server_restart(cleanup):
    grpc_addr, ws_addr = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    server = ServerProcess(grpc=grpc_addr, ws=ws_addr, metrics="off")
    cleanup(server)
    url = f"grpc://{grpc_addr}?initial_backoff_ms=200&max_backoff_ms=500&max_attempts=40"
    sink = Sink(url)
    cleanup(sink)

    async def scenario():
        first = Peer("ws-peer-1")
        assert await first.call(server.ws_port) is None
        await first.wait_connected()
        assert await first.audio_rms(0.5) > 0.1
        await sink.message("peer-connected", **{"peer-id": "ws-peer-1"})

        server.kill()
        attempt = await sink.message("error", code="RECONNECT_ATTEMPT")
        assert "attempt 1 of 40" in attempt["message"], attempt
        # Media goes peer to peer: losing signaling does not stop it.
        assert await first.audio_rms(0.5) > 0.1

        server.start()
        await sink.message("signaling-reconnected")
        second = Peer("ws-peer-2")
        assert await second.call(server.ws_port) is None
        await second.wait_connected()
        assert await second.audio_rms(0.5) > 0.1
        for p in (first, second):
            await p.close()

    run(scenario())


def test_sink_reports_reconnect_failed_when_the_server_stays_away(cleanup):
    server = ServerProcess(ws="off", metrics="off")
    cleanup(server)
    sink = Sink(f"grpc://{server.grpc}?initial_backoff_ms=100&max_backoff_ms=100&max_attempts=2")
    cleanup(sink)

    async def scenario():
        server.kill()
        await sink.message("error", code="RECONNECT_ATTEMPT")
        failed = await sink.message("error", code="RECONNECT_FAILED")
        assert "after 2 attempts" in failed["message"], failed

    run(scenario())


def test_unreachable_grpc_server_fails_start_with_signaling_error():
    pipeline = Gst.parse_launch(
        f'remotemediawebrtcsink name=s signaling-url="grpc://127.0.0.1:{free_port()}" '
        "audiotestsrc is-live=true ! s.audio_0"
    )
    try:
        pipeline.set_state(Gst.State.PLAYING)
        msg = pipeline.get_bus().timed_pop_filtered(15 * Gst.SECOND, Gst.MessageType.ERROR)
        assert msg is not None, "no error for an unreachable signaling server"
        err, _ = msg.parse_error()
        assert "SIGNALING_ERROR" in err.message and "127.0.0.1" in err.message, err.message
    finally:
        pipeline.set_state(Gst.State.NULL)


def test_bad_grpc_url_names_the_parameter():
    pipeline = Gst.parse_launch(
        'remotemediawebrtcsink name=s signaling-url="grpc://127.0.0.1:1?colour=red" '
        "audiotestsrc is-live=true ! s.audio_0"
    )
    try:
        pipeline.set_state(Gst.State.PLAYING)
        msg = pipeline.get_bus().timed_pop_filtered(15 * Gst.SECOND, Gst.MessageType.ERROR)
        assert msg is not None
        err, _ = msg.parse_error()
        assert "colour" in err.message, err.message
    finally:
        pipeline.set_state(Gst.State.NULL)


def test_sink_on_grpcs_checks_the_server_certificate(cleanup, tmp_path, monkeypatch):
    # A test CA and a server certificate for 127.0.0.1 signed by it.
    from tls_ca import make_test_ca

    ca, cert, key = make_test_ca(tmp_path)
    server = ServerProcess("--tls-cert", str(cert), "--tls-key", str(key), metrics="off")
    cleanup(server)

    # Not trusted yet: the handshake fails and start says why.
    untrusted = Gst.parse_launch(
        f'remotemediawebrtcsink name=s signaling-url="grpcs://{server.grpc}" audiotestsrc is-live=true ! s.audio_0'
    )
    try:
        untrusted.set_state(Gst.State.PLAYING)
        msg = untrusted.get_bus().timed_pop_filtered(15 * Gst.SECOND, Gst.MessageType.ERROR)
        assert msg is not None, "an untrusted certificate was accepted"
        assert "SIGNALING_ERROR" in msg.parse_error()[0].message
    finally:
        untrusted.set_state(Gst.State.NULL)

    # Trusted through the system's roots (SSL_CERT_FILE): the peer reaches the sink.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    sink = Sink(f"grpcs://{server.grpc}")
    cleanup(sink)

    async def scenario():
        peer = Peer("tls-peer")
        assert await peer.call(server.ws_port) is None
        await peer.wait_connected()
        assert await peer.audio_rms(0.5) > 0.1
        await peer.close()

    run(scenario())
