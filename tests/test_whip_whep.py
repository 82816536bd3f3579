"""WHIP into remotemediawebrtcsrc and remotemediawebrtcserver, WHEP out of
remotemediawebrtcsink, and a token on every door, with aiortc as the outside client."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
import websockets

from server_process import ServerProcess
from test_webrtc_calling import RAW, Launch, hears, wait_until
from webrtc_peer import free_port
from whip_client import ahttp, http, player, publisher

TOKEN = "s3cret-token"
HERE = Path(__file__).resolve().parent


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 90))


def src_args(port, audio_out, video_out, *extra):
    return ["remotemediawebrtcsrc", "name=rx", f"signaling-port={port}", "ice-loopback-only=true", *extra,
            "rx.audio_0", "!", "queue", "!", "audioconvert", "!", "audioresample", "!", RAW, "!",
            "filesink", f"location={audio_out}",
            "rx.video_0", "!", "queue", "!", "videoconvert", "!", "video/x-raw,format=I420", "!",
            "filesink", f"location={video_out}"]


def playing(p):
    wait_until(lambda: p.count("PLAYING") > 0, "the pipeline to play", procs=[p])


def test_aiortc_publishes_h264_and_opus_into_the_src(gst_env, tmp_path):
    port = free_port()
    audio, video = tmp_path / "a.raw", tmp_path / "v.raw"
    rx = Launch(src_args(port, audio, video, f"auth-token={TOKEN}"), gst_env)
    try:
        playing(rx)
        base = f"http://127.0.0.1:{port}/whip"

        async def scenario():
            s = publisher(base, 440)
            assert await s.negotiate(TOKEN) == 201, s.body
            assert "/whip/whip-" in s.location
            await s.wait_connected()
            await asyncio.to_thread(wait_until, lambda: hears(audio, 440), "the published tone", 30, [rx])
            await asyncio.to_thread(wait_until, lambda: video.exists() and video.stat().st_size > 320 * 240 * 3,
                                    "decoded H.264 frames", 30, [rx])
            assert await s.delete(TOKEN) == 200
            await asyncio.to_thread(wait_until, lambda: rx.count("peer-disconnected") == 1, "the session to end",
                                    10, [rx])
            # The resource is gone.
            assert (await ahttp("DELETE", s.location, token=TOKEN))[0] == 404

        run(scenario())
        assert rx.count(r"peer-connected, peer-id=\(string\)whip-") == 1
        assert "DELETE" in rx.log()
    finally:
        rx.stop()


def test_whep_player_gets_the_sinks_stream(gst_env):
    port = free_port()
    # The player is aiortc, which decodes VP8 and H.264, not VP9 (the default).
    tx = Launch(["audiotestsrc", "is-live=true", "freq=660", "!", "remotemediawebrtcsink", "name=tx",
                 f"signaling-port={port}", "ice-loopback-only=true", f"auth-token={TOKEN}", "video-codec=vp8",
                 "videotestsrc", "is-live=true", "!", "video/x-raw,width=320,height=240,framerate=15/1", "!", "tx."],
                gst_env)
    try:
        playing(tx)

        async def scenario():
            p = player(f"http://127.0.0.1:{port}/whep")
            assert await p.negotiate(TOKEN) == 201, p.body
            await p.wait_connected()
            freq, rms = await p.audio_tone()
            assert abs(freq - 660) < 5 and rms > 1000, (freq, rms)
            frame = await asyncio.wait_for(p.tracks["video"].recv(), 15)
            assert (frame.width, frame.height) == (320, 240)
            assert await p.delete(TOKEN) == 200

        run(scenario())
    finally:
        tx.stop()


def test_a_player_without_the_sinks_video_codec_is_told_which_to_set(gst_env):
    port = free_port()
    tx = Launch(["videotestsrc", "is-live=true", "!", "remotemediawebrtcsink", f"signaling-port={port}",
                 "ice-loopback-only=true"], gst_env)  # VP9, the default; aiortc offers VP8 and H.264
    try:
        playing(tx)

        async def scenario():
            p = player(f"http://127.0.0.1:{port}/whep")
            assert await p.negotiate(None) == 400, p.body
            return p.body

        body = run(scenario())
        assert "no VP9 video" in body and "VP8" in body and "video-codec" in body, body
    finally:
        tx.stop()


def test_the_server_runs_its_manifest_on_a_whip_publisher(gst_env):
    port = free_port()
    srv = Launch(["remotemediawebrtcserver", "manifest=examples/launch/vad.json", f"signaling-port={port}",
                  "ice-loopback-only=true"], gst_env)
    try:
        playing(srv)
        from webrtc_peer import WavTrack
        from test_webrtc_server import SPEECH

        async def scenario():
            s = publisher(f"http://127.0.0.1:{port}/whip", video=False)
            s.pc.getTransceivers()[0].sender.replaceTrack(WavTrack(SPEECH))
            assert await s.negotiate() == 201, s.body
            await s.wait_connected()
            # No data channel: the results go to the bus, with the publisher's id.
            await asyncio.to_thread(
                wait_until, lambda: srv.count(r'remotemedia, .*is_speech_start\\":true.*peer-id=\(string\)whip-') > 0,
                "a VAD result for the WHIP publisher on the bus", 40, [srv])
            await s.delete()

        run(scenario())
    finally:
        srv.stop()


def test_doors_refuse_what_they_cannot_take(gst_env, tmp_path):
    port = free_port()
    rx = Launch(src_args(port, tmp_path / "a.raw", tmp_path / "v.raw", f"auth-token={TOKEN}", "max-peers=1"),
                gst_env)
    try:
        playing(rx)
        base = f"http://127.0.0.1:{port}"
        offer = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
        # No token, a wrong one: 401 before anything else is looked at.
        assert http("POST", f"{base}/whip", offer.encode(), "application/sdp")[0] == 401
        assert http("POST", f"{base}/whip", offer.encode(), "application/sdp", "wrong")[0] == 401
        # Wrong content type, malformed SDP, no media: 415 and 400 naming the problem.
        status, headers, body = http("POST", f"{base}/whip", b"{}", "application/json", TOKEN)
        assert status == 415 and "application/sdp" in body
        status, _, body = http("POST", f"{base}/whip", b"hello", "application/sdp", TOKEN)
        assert status == 400 and "malformed SDP" in body, body
        status, _, body = http("POST", f"{base}/whip", offer.split("m=")[0].encode(), "application/sdp", TOKEN)
        assert status == 400 and "no media" in body, body
        # Unknown sessions, wrong methods, the other door.
        assert http("DELETE", f"{base}/whip/whip-0000", token=TOKEN)[0] == 404
        assert http("PATCH", f"{base}/whip/whip-0000", b"a=end-of-candidates\r\n",
                    "application/trickle-ice-sdpfrag", TOKEN)[0] == 404
        assert http("GET", f"{base}/whip", token=TOKEN)[0] == 405
        assert http("POST", f"{base}/whep", offer.encode(), "application/sdp", TOKEN)[0] == 404

        async def scenario():
            first = publisher(f"{base}/whip", video=False)
            assert await first.negotiate(TOKEN) == 201
            await first.wait_connected()
            # Trickle on the session: a wrong type is 415, candidates are 204.
            assert (await ahttp("PATCH", first.location, b"a=x\r\n", "text/plain", TOKEN))[0] == 415
            frag = b"a=mid:0\r\na=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
            assert (await ahttp("PATCH", first.location, frag, "application/trickle-ice-sdpfrag", TOKEN))[0] == 204
            # max-peers=1: the second publisher gets 503, and the bus says why.
            second = publisher(f"{base}/whip", video=False)
            assert await second.negotiate(TOKEN) == 503
            await second.pc.close()
            assert await first.delete(TOKEN) == 200

        run(scenario())
        assert rx.count("MAX_PEERS_REACHED") == 1
        assert rx.proc.poll() is None
    finally:
        rx.stop()


def test_a_vanished_publisher_frees_its_slot(gst_env, tmp_path):
    port = free_port()
    rx = Launch(src_args(port, tmp_path / "a.raw", tmp_path / "v.raw", "max-peers=1"), gst_env)
    try:
        playing(rx)
        url = f"http://127.0.0.1:{port}/whip"
        gone = subprocess.Popen([sys.executable, str(HERE / "whip_client.py"), url], stdout=subprocess.PIPE,
                                text=True)
        try:
            assert gone.stdout.readline().strip() == "connected"
        finally:
            gone.kill()
            gone.wait()
        # Killed without DELETE: ICE gives up on it and the slot opens again.
        wait_until(lambda: rx.count("peer-disconnected") == 1, "the vanished publisher to be dropped", 30, [rx])

        async def scenario():
            s = publisher(url, video=False)
            assert await s.negotiate() == 201, s.body
            await s.delete()

        run(scenario())
    finally:
        rx.stop()


async def ws_status(url):
    """The HTTP status of a WebSocket upgrade (101 when it opened)."""
    try:
        async with websockets.connect(url):
            return 101
    except websockets.exceptions.InvalidStatus as e:
        return e.response.status_code


def test_the_embedded_websocket_needs_the_token(gst_env):
    port = free_port()
    tx = Launch(["audiotestsrc", "is-live=true", "!", "remotemediawebrtcsink", f"signaling-port={port}",
                 f"auth-token={TOKEN}"], gst_env)
    try:
        playing(tx)
        base = f"ws://127.0.0.1:{port}/ws"
        assert run(ws_status(base)) == 401
        assert run(ws_status(f"{base}?token=nope")) == 401
        assert run(ws_status(f"{base}?token={TOKEN}")) == 101
        # The page itself is served to anyone; it passes its own ?token= on.
        assert http("GET", f"http://127.0.0.1:{port}/")[0] == 200
    finally:
        tx.stop()


def test_elements_reach_a_server_that_wants_a_token(gst_env, tmp_path):
    server = ServerProcess("--ws-auth-tokens", TOKEN)
    try:
        base = f"ws://{server.ws}/ws"
        assert run(ws_status(base)) == 401
        # An element without the token fails at start, naming the refusal.
        bad = Launch(["audiotestsrc", "is-live=true", "!", "remotemediawebrtcsink", f"signaling-url={base}"], gst_env)
        bad.proc.wait(20)
        assert bad.proc.returncode != 0 and "401" in bad.log(), bad.log()[-2000:]
        # With ?token= it calls and is heard.
        out = tmp_path / "heard.raw"
        signaling = f"signaling-url={base}?token={TOKEN}"
        rx = Launch(["remotemediawebrtcsrc", "name=rx", "peer-id=studio", "connect-to=cam1", "ice-loopback-only=true",
                     signaling, "rx.", "!", "queue", "!", "audioconvert", "!", "audioresample", "!", RAW, "!",
                     "filesink", f"location={out}"], gst_env)
        tx = Launch(["audiotestsrc", "is-live=true", "freq=550", "!", "remotemediawebrtcsink", "peer-id=cam1",
                     "ice-loopback-only=true", signaling], gst_env)
        try:
            wait_until(lambda: hears(out, 550), "the tone through the guarded server", 30, [rx, tx])
        finally:
            tx.stop()
            rx.stop()
    finally:
        server.stop()
        time.sleep(0)


class StaticPages:
    """tests/web over HTTP on loopback, so the page and the npm client load as on a site."""

    def __init__(self):
        import functools
        import http.server
        import threading

        handler = functools.partial(Quiet, directory=str(HERE / "web"))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        assert (HERE / "web" / "node_modules" / "whip-whep" / "whip.js").exists(), \
            "tests/web/node_modules missing: run scripts/setup.sh"

    def url(self, query):
        return f"http://127.0.0.1:{self.port}/whip.html?{query}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _quiet_handler():
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    return Handler


Quiet = _quiet_handler()


def test_chromium_publishes_with_an_npm_whip_client_and_plays_with_its_whep_client(gst_env, tmp_path):
    from chromium import Browser

    pages = StaticPages()
    port = free_port()
    audio, video = tmp_path / "a.raw", tmp_path / "v.raw"
    rx = Launch(src_args(port, audio, video, f"auth-token={TOKEN}"), gst_env)
    tx_port = free_port()
    tx = Launch(["videotestsrc", "is-live=true", "!", "video/x-raw,width=320,height=240,framerate=15/1", "!",
                 "remotemediawebrtcsink", "name=tx", f"signaling-port={tx_port}", "video-codec=h264", "ice-loopback-only=true",
                 f"auth-token={TOKEN}", "audiotestsrc", "is-live=true", "!", "tx."], gst_env)
    browsers = []
    try:
        playing(rx)
        playing(tx)

        async def scenario():
            try:
                await steps()
            finally:
                for b in browsers:
                    await b.close()

        async def steps():
            pub = Browser(pages.url(f"whip=http://127.0.0.1:{port}/whip&token={TOKEN}"))
            browsers.append(pub)
            await pub.connect()
            await pub.wait_for("rm.state === 'negotiated' || rm.error")
            assert await pub.evaluate("rm.error") is None
            # The src decodes the browser's H.264 and Opus on its pads.
            await asyncio.to_thread(wait_until, lambda: video.exists() and video.stat().st_size > 320 * 240 * 30,
                                    "H.264 frames from Chromium decoded by the src", 40, [rx])
            await asyncio.to_thread(wait_until, lambda: audio.exists() and audio.stat().st_size > 48000 * 2,
                                    "Opus audio from Chromium decoded by the src", 20, [rx])
            await pub.evaluate("rm.client.stop().then(() => true)")
            await asyncio.to_thread(wait_until, lambda: rx.count("peer-disconnected") == 1,
                                    "the WHIP client's DELETE", 15, [rx])

            # A page without camera access hides its addresses behind mDNS names unless told not
            # to; the tests keep ICE on plain loopback addresses.
            play = Browser(pages.url(f"whep=http://127.0.0.1:{tx_port}/whep&token={TOKEN}"),
                           ["--disable-features=WebRtcHideLocalIpsWithMdns"])
            browsers.append(play)
            await play.connect()
            await play.wait_for("rm.state === 'negotiated' || rm.error")
            assert await play.evaluate("rm.error") is None
            stats = await play.wait_for("rm.stats().then(s => s.framesDecoded > 30 && s.audioEnergy > 0 ? s : null)",
                                        40)
            assert stats["connection"] == "connected"

        run(scenario())
        assert rx.count(r"peer-connected, peer-id=\(string\)whip-") == 1
        assert tx.count(r"peer-connected, peer-id=\(string\)whep-") == 1
    finally:
        rx.stop()
        tx.stop()
        pages.close()


def test_the_sinks_whip_client_publishes_into_our_src_and_comes_back_after_a_restart(gst_env, tmp_path):
    port = free_port()
    first, second = tmp_path / "1.raw", tmp_path / "2.raw"

    def src(out):
        return Launch(["remotemediawebrtcsrc", "name=rx", f"signaling-port={port}", "ice-loopback-only=true",
                       f"auth-token={TOKEN}", "rx.", "!", "queue", "!", "audioconvert", "!", "audioresample", "!",
                       RAW, "!", "filesink", f"location={out}"], gst_env)

    rx = src(first)
    tx = None
    try:
        playing(rx)
        tx = Launch(["audiotestsrc", "is-live=true", "freq=330", "!", "remotemediawebrtcsink",
                     f"whip-url=http://127.0.0.1:{port}/whip", f"auth-token={TOKEN}", "ice-loopback-only=true"],
                    gst_env)
        wait_until(lambda: hears(first, 330), "the sink's tone over WHIP", 30, [rx, tx])
        # The server goes away: the sink retries with backoff, and publishes again once it is back.
        rx.stop()
        wait_until(lambda: tx.count("RECONNECT_ATTEMPT") >= 1, "a reconnect attempt", 30, [tx])
        rx = src(second)
        wait_until(lambda: hears(second, 330), "the tone after the server's restart", 40, [rx, tx])
        # At stop the sink DELETEs its session.
        tx.proc.send_signal(2)  # SIGINT: gst-launch-1.0 stops the pipeline cleanly
        tx.proc.wait(20)
        wait_until(lambda: "DELETE" in rx.log(), "the sink's DELETE", 10, [rx])
    finally:
        rx.stop()
        if tx:
            tx.stop()


def test_a_whip_url_with_a_wrong_token_is_reported(gst_env, tmp_path):
    port = free_port()
    rx = Launch(src_args(port, tmp_path / "a.raw", tmp_path / "v.raw", f"auth-token={TOKEN}"), gst_env)
    tx = None
    try:
        playing(rx)
        tx = Launch(["audiotestsrc", "is-live=true", "!", "remotemediawebrtcsink",
                     f"whip-url=http://127.0.0.1:{port}/whip", "auth-token=wrong", "ice-loopback-only=true"], gst_env)
        wait_until(lambda: tx.count(r"server\\? answered\\? 401") > 0, "the 401 on the bus", 20, [tx])
        assert "RECONNECT_ATTEMPT" in tx.log()
    finally:
        rx.stop()
        if tx:
            tx.stop()


def test_a_late_whep_player_of_a_relayed_whip_stream_gets_a_key_frame_at_once(gst_env):
    """WHIP in, WHEP out without decoding: the player's key-frame request goes through the relay
    to the publisher (PLI), so it decodes within a second or two, not at the publisher's next
    periodic key frame (every 600 frames: 20 s)."""
    whip_port, whep_port = free_port(), free_port()
    relay = Launch(["remotemediawebrtcsrc", "name=rx", f"signaling-port={whip_port}", "decode=false",
                    "ice-loopback-only=true", "remotemediawebrtcsink", "name=tx", f"signaling-port={whep_port}",
                    "ice-loopback-only=true", "video-codec=vp8", "rx.video_0", "!", "queue", "!", "tx.video_0"],
                   gst_env)
    publisher_proc = None
    try:
        playing(relay)
        publisher_proc = Launch(["videotestsrc", "is-live=true", "!", "video/x-raw,width=320,height=240,framerate=30/1",
                                 "!", "remotemediawebrtcsink", f"whip-url=http://127.0.0.1:{whip_port}/whip",
                                 "ice-loopback-only=true", "video-codec=vp8"], gst_env)
        wait_until(lambda: relay.count(r"peer-connected, peer-id=\(string\)whip-") == 1, "the publisher", 20,
                   [relay, publisher_proc])
        time.sleep(3.0)  # well past the publisher's first key frame

        async def scenario():
            p = player(f"http://127.0.0.1:{whep_port}/whep")
            assert await p.negotiate() == 201, p.body
            await p.wait_connected()
            frame = await asyncio.wait_for(p.tracks["video"].recv(), 8)
            assert (frame.width, frame.height) == (320, 240)
            await p.delete()

        run(scenario())
    finally:
        relay.stop()
        if publisher_proc:
            publisher_proc.stop()


def test_the_sinks_whip_client_speaks_https_and_checks_the_certificate(gst_env, tmp_path):
    """whip-url=https://: the sink publishes through TLS (a relay with a test CA's certificate in
    front of our src) once the CA is trusted through the system's roots (SSL_CERT_FILE), and
    refuses the certificate before that, naming the TLS failure."""
    import socket
    import ssl
    import threading

    from tls_ca import make_test_ca

    ca, cert, key = make_test_ca(tmp_path)

    port = free_port()
    out = tmp_path / "heard.raw"
    rx = Launch(["remotemediawebrtcsrc", "name=rx", f"signaling-port={port}", "ice-loopback-only=true",
                 "rx.", "!", "queue", "!", "audioconvert", "!", "audioresample", "!", RAW, "!",
                 "filesink", f"location={out}"], gst_env)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    tls_port = listener.getsockname()[1]
    stop = threading.Event()

    def pump(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def relay():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            try:
                conn.settimeout(None)
                tls = context.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                continue
            backend = socket.create_connection(("127.0.0.1", port))
            threading.Thread(target=pump, args=(tls, backend), daemon=True).start()
            threading.Thread(target=pump, args=(backend, tls), daemon=True).start()

    threading.Thread(target=relay, daemon=True).start()
    sink_args = ["audiotestsrc", "is-live=true", "freq=330", "!", "remotemediawebrtcsink",
                 f"whip-url=https://127.0.0.1:{tls_port}/whip", "ice-loopback-only=true"]
    untrusted = trusted = None
    try:
        playing(rx)
        untrusted = Launch(sink_args, {k: v for k, v in gst_env.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")})
        wait_until(lambda: untrusted.count("RECONNECT_ATTEMPT") >= 1, "the refused certificate", 20, [untrusted])
        assert "TLS" in untrusted.log(), untrusted.log()[-2000:]
        untrusted.stop()
        trusted = Launch(sink_args, {**gst_env, "SSL_CERT_FILE": str(ca)})
        wait_until(lambda: hears(out, 330), "the tone published over https", 30, [rx, trusted])
    finally:
        stop.set()
        listener.close()
        for p in (untrusted, trusted, rx):
            if p:
                p.stop()


@pytest.mark.parametrize("profile", ["main", "high"])
def test_h264_main_and_high_profile_publishers_are_decoded(gst_env, tmp_path, profile):
    """OBS sends H.264 baseline, main or high (no B-frames): a publisher sending already encoded
    main/high H.264 over WHIP is decoded on the src's video pad."""
    port = free_port()
    audio, video = tmp_path / "a.raw", tmp_path / "v.raw"
    rx = Launch(src_args(port, audio, video), gst_env)
    tx = None
    try:
        playing(rx)
        tx = Launch(["videotestsrc", "is-live=true", "!", "video/x-raw,width=320,height=240,framerate=30/1", "!",
                     "x264enc", "tune=zerolatency", "bframes=0", "key-int-max=30", "!",
                     f"video/x-h264,profile={profile}", "!", "h264parse", "!", "s.video_0",
                     "audiotestsrc", "is-live=true", "!", "s.audio_0",
                     "remotemediawebrtcsink", "name=s", "video-codec=h264",
                     f"whip-url=http://127.0.0.1:{port}/whip", "ice-loopback-only=true"], gst_env)
        wait_until(lambda: video.exists() and video.stat().st_size > 320 * 240 * 3 // 2 * 30,
                   f"{profile} profile frames decoded", 30, [rx, tx])
    finally:
        rx.stop()
        if tx:
            tx.stop()
