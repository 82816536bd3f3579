"""Media from a URI as RemoteMedia data, backed by GStreamer's `remotemediaingest`:

    import remotemedia

    async for item in remotemedia.ingest("rtsp://127.0.0.1:8554/test", sample_rate=16000, channels=1):
        print(item.stream_id, item.pts, item.frames())      # remotemedia.Audio / remotemedia.Video

RTSP, RTMP, SRT, UDP, files (a path or file://) and stdin (`-`); live sources reconnect with
backoff by themselves. Other schemes can be served by plugins registered with
`register_ingest_plugin`. Needs PyGObject and the plugin on GST_PLUGIN_PATH.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, AsyncIterator, Callable

import numpy as np

from ._gst import error_of, gst
from .node import Audio, Video

log = logging.getLogger("remotemedia.ingest")

_QUEUE = 64  # items waiting for the reader; a slow reader slows the source down
_END = object()
_plugins: dict[str, Callable[..., AsyncIterator[Any]]] = {}
GSTREAMER_SCHEMES = ("rtsp", "rtsps", "rtspt", "rtmp", "rtmps", "srt", "udp", "file", "stdin")


class IngestError(Exception):
    """An ingest failure with its code (CONFIG_ERROR, RECONNECT_FAILED, PIPELINE_ERROR)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def scheme_of(uri: str) -> str:
    """The scheme a URI is served under: its own, `file` for a path, `stdin` for `-`."""
    uri = uri.strip()
    if uri == "-":
        return "stdin"
    scheme, sep, _ = uri.partition("://")
    return scheme.lower() if sep and scheme else "file"


def register_ingest_plugin(schemes: str | list[str], factory: Callable[..., AsyncIterator[Any]]) -> None:
    """Serves `schemes` with `factory(uri, **options)`, an async iterator of RemoteMedia data.
    It takes precedence over the GStreamer plugin for those schemes."""
    for scheme in [schemes] if isinstance(schemes, str) else schemes:
        _plugins[scheme.lower()] = factory


def ingest_schemes() -> list[str]:
    return sorted(set(GSTREAMER_SCHEMES) | set(_plugins))


def ingest(uri: str, *, track_selection: str = "first-audio-video", sample_rate: int | None = None,
           channels: int | None = None, max_attempts: int = 10) -> AsyncIterator[Any]:
    """Yields the source's tracks as `Audio` (interleaved float32) and `Video` (RGB) items,
    `stream_id` telling the track (`audio:0`, `video:0`, ...), until the source ends."""
    options = dict(track_selection=track_selection, sample_rate=sample_rate, channels=channels,
                   max_attempts=max_attempts)
    scheme = scheme_of(uri)
    if scheme in _plugins:
        return _plugins[scheme](uri, **options)
    if scheme not in GSTREAMER_SCHEMES:
        raise IngestError("CONFIG_ERROR", f"no ingest plugin serves '{scheme}'; schemes: {', '.join(ingest_schemes())}")
    return _gstreamer(uri, **options)


class _Source:
    """One `remotemediaingest` pipeline whose appsinks hand items to the event loop. At most
    `_QUEUE` items wait for the reader: a streaming thread that finds no free slot waits
    (backpressure), and `close` frees it."""

    def __init__(self, uri: str, loop: asyncio.AbstractEventLoop, track_selection: str,
                 sample_rate: int | None, channels: int | None, max_attempts: int):
        Gst = self.Gst = gst()
        self.loop = loop
        self.items: asyncio.Queue = asyncio.Queue()
        self.slots = threading.Semaphore(_QUEUE)
        self.errors: list[IngestError] = []
        self.closed = False
        self.pipeline = Gst.Pipeline.new(None)
        ingest = Gst.ElementFactory.make("remotemediaingest", None)
        if ingest is None:
            raise IngestError("CONFIG_ERROR", "the GStreamer element remotemediaingest is not available: set "
                              "GST_PLUGIN_PATH to the folder holding libgstremotemedia.so (see README)")
        ingest.set_property("uri", uri)
        ingest.set_property("track-selection", track_selection)
        ingest.set_property("max-attempts", max_attempts)
        self.audio_caps = "audio/x-raw,format=F32LE,layout=interleaved" + (
            f",rate={sample_rate}" if sample_rate else "") + (f",channels={channels}" if channels else "")
        self.pipeline.add(ingest)
        ingest.connect("pad-added", self._on_pad)
        self.pipeline.get_bus().set_sync_handler(self._on_message)
        if self.pipeline.set_state(Gst.State.READY) == Gst.StateChangeReturn.FAILURE:
            self.pipeline.set_state(Gst.State.NULL)
            raise self.errors[0] if self.errors else IngestError("CONFIG_ERROR", f"cannot open {uri!r}")
        self.pipeline.set_state(Gst.State.PLAYING)

    def _put(self, item) -> bool:
        """From a streaming thread: waits for a free slot, then queues `item` on the loop."""
        self.slots.acquire()
        if self.closed:
            self.slots.release()  # wakes the next waiting thread in turn
            return False
        try:
            self.loop.call_soon_threadsafe(self.items.put_nowait, item)
        except RuntimeError:  # the event loop is gone
            return False
        return True

    async def next_item(self):
        item = await self.items.get()
        self.slots.release()
        return item

    def _on_message(self, _bus, msg):
        Gst = self.Gst
        if msg.type == Gst.MessageType.ERROR:
            self.errors.append(IngestError(*error_of(msg)))
            self._put(self.errors[-1])
        elif msg.type == Gst.MessageType.EOS:
            self._put(_END)
        elif msg.type == Gst.MessageType.ELEMENT and msg.get_structure().get_name() == "reconnect":
            s = msg.get_structure()
            log.warning("%s: reconnecting (attempt %s): %s", s.get_value("uri"), s.get_value("attempt"),
                        s.get_value("reason"))
        return Gst.BusSyncReply.DROP

    def _on_pad(self, _ingest, pad):
        Gst = self.Gst
        kind, _, index = pad.get_name().partition("_")
        track = f"{kind}:{index}"
        if kind == "audio":
            desc = f"audioconvert ! audioresample ! {self.audio_caps}"
        elif kind == "video":
            desc = "videoconvert ! video/x-raw,format=RGB"
        else:
            return
        branch = Gst.parse_bin_from_description(f"{desc} ! appsink name=out sync=false emit-signals=true", True)
        branch.get_by_name("out").connect("new-sample", self._on_sample, track)
        self.pipeline.add(branch)
        branch.sync_state_with_parent()
        pad.link(branch.get_static_pad("sink"))

    def _on_sample(self, sink, track):
        Gst = self.Gst
        sample = sink.emit("pull-sample")
        buf, s = sample.get_buffer(), sample.get_caps().get_structure(0)
        ok, info = buf.map(Gst.MapFlags.READ)
        if not ok:
            return Gst.FlowReturn.ERROR
        try:
            data = np.frombuffer(info.data, dtype=np.uint8).copy()
        finally:
            buf.unmap(info)
        pts = None if buf.pts == Gst.CLOCK_TIME_NONE else buf.pts
        if track.startswith("audio"):
            item = Audio(data.view(np.float32), s.get_value("rate"), s.get_value("channels"), pts=pts,
                         stream_id=track,
                         duration=None if buf.duration == Gst.CLOCK_TIME_NONE else buf.duration)
        else:
            item = Video(data, s.get_value("width"), s.get_value("height"), "RGB", pts=pts,
                         keyframe=not buf.has_flags(Gst.BufferFlags.DELTA_UNIT), stream_id=track)
        return Gst.FlowReturn.OK if self._put(item) else Gst.FlowReturn.FLUSHING

    def close(self):
        self.closed = True
        self.slots.release()
        self.pipeline.set_state(self.Gst.State.NULL)
        self.pipeline.get_bus().set_sync_handler(None)


async def _gstreamer(uri: str, **options) -> AsyncIterator[Any]:
    source = await asyncio.to_thread(_Source, uri, asyncio.get_running_loop(), **options)
    try:
        while True:
            item = await source.next_item()
            if item is _END:
                return
            if isinstance(item, IngestError):
                raise item
            yield item
    finally:
        await asyncio.to_thread(source.close)
