"""The web page served by the elements, in headless Chromium (the flags of tests/chromium.py)."""

import asyncio

import pytest

from chromium import Browser
from test_webrtc_sink import SinkPipeline, run  # noqa: F401


def test_chromium_plays_the_sinks_audio_and_video():
    s = SinkPipeline()
    browser = Browser(f"http://127.0.0.1:{s.port}/?id=chromium-1")

    async def scenario():
        try:
            await check()
        finally:
            await browser.close()

    async def check():
        await browser.connect()
        await browser.wait_for("rm.state === 'connected'")
        await s.message("peer-connected", **{"peer-id": "chromium-1"})
        # As a user would: press Unmute (the page starts muted for autoplay policies).
        await browser.evaluate("document.getElementById('unmute').click(); document.getElementById('video').play().then(() => true)")
        stats = await browser.wait_for(
            "rm.stats().then(s => s.framesDecoded > 30 && s.audioEnergy > 0.001 ? s : null)"
        )
        assert stats["framesDecoded"] > 30
        # The peers list shows the element, and data-channel messages show in the page.
        peers = await browser.evaluate("rm.peers.map(p => p.peer_id)")
        assert "remotemedia" in peers
        await browser.wait_for("rm.channel.readyState === 'open'")
        assert s.sink.emit("broadcast", '{"event": "hello"}') == 1
        await browser.wait_for("rm.data.includes('{\"event\": \"hello\"}')")
        await browser.evaluate("rm.channel.send('from chromium')")
        await s.message("data", **{"peer-id": "chromium-1", "message": "from chromium"})

    try:
        run(scenario())
    finally:
        s.stop()


@pytest.mark.parametrize("codec", ["vp9", "h264"])
def test_chromium_decodes_each_video_codec_of_the_sink(codec):
    s = SinkPipeline(video_codec=codec)
    browser = Browser(f"http://127.0.0.1:{s.port}/?id=chromium-{codec}")

    async def scenario():
        try:
            await browser.connect()
            await browser.wait_for("rm.state === 'connected'")
            frames = await browser.wait_for("rm.stats().then(s => s.framesDecoded > 30 ? s.framesDecoded : null)")
            assert frames > 30
            mime = await browser.evaluate(
                "rm.pc.getStats().then(r => [...r.values()].filter(s => s.type === 'codec')"
                ".map(s => s.mimeType).join(' '))")
            assert f"VIDEO/{codec.upper()}" in mime.upper(), mime
        finally:
            await browser.close()

    try:
        run(scenario())
    finally:
        s.stop()


def test_chromium_sends_its_microphone_and_camera_to_the_src():
    import numpy as np

    from test_webrtc_src import SrcPipeline

    s = SrcPipeline()
    browser = Browser(f"http://127.0.0.1:{s.port}/?id=chromium-src")

    async def scenario():
        try:
            await browser.connect()
            await browser.wait_for("rm.state === 'connected'")
            await s.wait(lambda pads: len(pads) == 2 and all(p["buffers"] > 30 for p in pads.values()))
            audio, video = s.pads["audio_0"], s.pads["video_0"]
            assert audio["stream_id"] == "peer:chromium-src:audio:0"
            assert video["caps"].startswith("video/x-raw"), video["caps"]
            # Chromium's fake microphone beeps once a second: wait for a beep.
            for _ in range(100):
                with s.lock:
                    pcm = np.frombuffer(b"".join(audio["pcm"]), dtype=np.int16)
                if pcm.size and np.abs(pcm).max() > 3000:
                    break
                await asyncio.sleep(0.1)
            assert np.abs(pcm).max() > 3000, "no sound from the fake microphone"
            # Chromium's RTCP sender reports reach the jitter buffers, with one CNAME for its
            # audio and video: what rtpbin needs to play them in sync.
            for _ in range(100):
                senders = s.rtp_senders()
                if len(senders) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(senders) == 2 and len(set(senders.values())) == 1, senders
        finally:
            await browser.close()

    try:
        run(scenario())
    finally:
        s.stop()


def test_chromium_server_mode_gets_vad_events_on_its_data_channel():
    from test_webrtc_server import SPEECH, VAD, ServerPipeline

    s = ServerPipeline(manifest=VAD)
    s.play()
    # The fake microphone plays the speech sample (Chromium loops the file).
    browser = Browser(f"http://127.0.0.1:{s.port}/?id=chromium-server",
                      extra_flags=[f"--use-file-for-fake-audio-capture={SPEECH}"])

    async def scenario():
        try:
            await browser.connect()
            await browser.wait_for("rm.state === 'connected'")
            await s.message("peer-connected", **{"peer-id": "chromium-server"})
            # VAD results of this browser's own run arrive on its data channel, and the page
            # shows them: a speech start in the log, the speech state on the page.
            start = await browser.wait_for(
                "rm.results.find(r => r.node_id === 'vad' && r.data.is_speech_start) || null")
            assert start["kind"] == "json" and start["data"]["has_speech"] is True
            await browser.wait_for("rm.events.some(e => e.kind === 'result')")
            await browser.wait_for("document.getElementById('speech').textContent === 'speaking'")
            # The run's audio (the speech, through the manifest) comes back on the track.
            await browser.evaluate("document.getElementById('unmute').click(); document.getElementById('video').play(); true")
            stats = await browser.wait_for("rm.stats().then(s => s.audioEnergy > 0.001 ? s : null)")
            assert stats["audioSamples"] > 0
        finally:
            await browser.close()

    try:
        run(scenario())
    finally:
        s.stop()
    assert not s.errors, s.errors
