"""remotemedia.ingest from Python: a file and an RTSP camera as Audio items, custom plugins by
scheme, and errors."""

import asyncio

import numpy as np
import pytest

import remotemedia
from remotemedia import Audio, IngestError
from test_ingest import SPEECH, rtsp_server, servers  # noqa: F401
from webrtc_peer import free_port


async def collect(uri, limit=None, **kw):
    items = []
    async for item in remotemedia.ingest(uri, **kw):
        items.append(item)
        if limit and len(items) >= limit:
            break
    return items


def test_a_file_as_audio_items():
    items = asyncio.run(collect(str(SPEECH), sample_rate=16000, channels=1))
    assert all(isinstance(i, Audio) and i.stream_id == "audio:0" for i in items)
    assert {(i.sample_rate, i.channels) for i in items} == {(16000, 1)}
    pcm = np.concatenate([i.samples for i in items])
    assert pcm.dtype == np.float32 and abs(len(pcm) / 16000 - 11.397) < 0.05
    assert np.abs(pcm).max() > 0.1
    pts = [i.pts for i in items]
    assert pts == sorted(pts)


def test_items_reach_the_loop_without_a_thread_per_item():
    """The appsinks hand items to the event loop themselves: a file's ~90 items cost the loop
    only the executor calls that open and close the source. Before, each item was fetched by
    a thread polling the queue every 0.2 s."""
    async def main():
        loop = asyncio.get_running_loop()
        calls = []
        run = loop.run_in_executor
        loop.run_in_executor = lambda ex, fn, *a: calls.append(fn) or run(ex, fn, *a)
        items = await collect(str(SPEECH), sample_rate=16000, channels=1)
        return items, calls

    items, calls = asyncio.run(main())
    assert len(items) > 50
    assert len(calls) <= 2, calls


def test_rtsp_as_audio_items(servers):  # noqa: F811
    port = free_port()
    rtsp_server(servers, port)
    items = asyncio.run(collect(f"rtsp://127.0.0.1:{port}/test", limit=100))
    assert len(items) == 100 and items[0].stream_id == "audio:0" and items[0].sample_rate == 48000


def test_custom_plugins_and_errors():
    async def ticks(uri, **options):
        for n in range(3):
            yield Audio(np.zeros(160, np.float32), 16000, stream_id=f"audio:{n}")

    remotemedia.register_ingest_plugin("ticks", ticks)
    assert [i.stream_id for i in asyncio.run(collect("ticks://x"))] == ["audio:0", "audio:1", "audio:2"]
    with pytest.raises(IngestError, match="no ingest plugin serves 'http'") as err:
        remotemedia.ingest("http://127.0.0.1/x")
    assert err.value.code == "CONFIG_ERROR"
    with pytest.raises(IngestError, match="no such file") as err:
        asyncio.run(collect("/no/such.wav"))
    with pytest.raises(IngestError, match="no video:0 stream") as err:
        asyncio.run(collect(str(SPEECH), track_selection="video:0"))
    # The code comes from the element error's details, not from its text.
    assert err.value.code == "CONFIG_ERROR"
