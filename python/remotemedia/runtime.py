"""The runtime API, as RemoteMedia's FFI transport offers it, awaitable from asyncio.

Inputs may be: an audio dict (see `numpy_to_audio_dict`), a str (text), bytes (binary), a
dict (JSON; or {"type": "text" | "json" | "binary", ...}), any JSON value, or a numpy array
(a tensor). Outputs are dicts with "type", "node_id", "pts" and the payload: audio has
"samples" (float32, interleaved), "sample_rate", "channels"; text has "text"; json has "data".

Audio crosses without a copy where the memory allows it: a float32 C-contiguous array goes in
as is (do not modify it while the pipeline runs), and audio that a node passes through comes
back as the very same array.
"""

from __future__ import annotations

import asyncio
import collections
import json
import weakref
from typing import Any, AsyncIterator, Iterable

import numpy as np

from . import _native


def get_runtime_version() -> str:
    """The native runtime's version."""
    return _native.version()


def is_available() -> bool:
    """Whether the native runtime is loaded (it is, once this module imports)."""
    return True


def numpy_to_audio_dict(arr: np.ndarray, sample_rate: int, channels: int) -> dict:
    """An audio input from samples: 1-D interleaved, or 2-D (frames, channels). No copy for a
    C-contiguous float32 array."""
    samples = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1)
    return {"type": "audio", "samples": samples, "sample_rate": int(sample_rate), "channels": int(channels)}


def audio_dict_to_numpy(audio_dict: dict) -> np.ndarray:
    """The samples of an audio dict: 1-D for mono, (frames, channels) otherwise. No copy."""
    samples = np.asarray(audio_dict["samples"], dtype=np.float32)
    channels = int(audio_dict.get("channels", 1))
    return samples if channels == 1 else samples.reshape(-1, channels)


def _manifest_text(manifest: str | dict) -> str:
    return manifest if isinstance(manifest, str) else json.dumps(manifest)


def _to_native(item: Any) -> tuple:
    """An input as the tagged tuple the native module takes."""
    if isinstance(item, dict):
        kind = item.get("type")
        if kind == "audio":
            samples = np.ascontiguousarray(item["samples"], dtype=np.float32).reshape(-1)
            return ("audio", samples, int(item["sample_rate"]), int(item.get("channels", 1)), item.get("pts"))
        if kind == "text":
            return ("text", str(item["text"]))
        if kind == "json":
            return ("json", json.dumps(item["data"]))
        if kind == "binary":
            return ("binary", bytes(item["data"]))
        return ("json", json.dumps(item))
    if isinstance(item, str):
        return ("text", item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ("binary", bytes(item))
    if isinstance(item, np.ndarray):
        flat = np.ascontiguousarray(item)
        return ("tensor", flat.reshape(-1).view(np.uint8), list(item.shape), str(flat.dtype))
    try:
        return ("json", json.dumps(item))
    except TypeError:
        raise TypeError(f"cannot send {type(item).__name__} into a pipeline") from None


class Outputs(list):
    """The outputs of a unary run, in order: a list of output dicts.

    It also reads as RemoteMedia's unary result, the run's final output:
    `result.get("type")` and `result["text"]` look in the last output (an empty run has no
    keys). Integer indexes and slices are the list's, as usual."""

    def _final(self) -> dict:
        return self[-1] if self else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._final().get(key, default)

    def __getitem__(self, index):
        if isinstance(index, str):
            final = self._final()
            if index not in final:
                raise KeyError(f"{index!r}: the final output has {sorted(final) or 'no keys'}")
            return final[index]
        return super().__getitem__(index)


def _result(outputs: list, metrics: list, enable_metrics: bool) -> Any:
    outputs = Outputs(outputs)
    return {"outputs": outputs, "metrics": metrics} if enable_metrics else outputs


async def execute_pipeline(manifest_json: str | dict, enable_metrics: bool = False) -> Any:
    """Runs a manifest with no input (its nodes drain) and returns its outputs; with
    enable_metrics, {"outputs": [...], "metrics": [...per node...]}."""
    return await execute_pipeline_with_input(manifest_json, [], enable_metrics)


async def execute_pipeline_with_input(
    manifest_json: str | dict, input_data: Iterable[Any], enable_metrics: bool = False
) -> Any:
    """Runs every input item through a fresh run of the manifest, drains it, and returns all
    outputs in order as `Outputs` (a list that also answers `result.get("type")` from the final
    output, as RemoteMedia's unary call does); with enable_metrics,
    {"outputs": Outputs, "metrics": [...per node...]}. Raises ManifestError for an invalid
    manifest and PipelineError when a node fails."""
    manifest = _manifest_text(manifest_json)
    items = [_to_native(item) for item in input_data]
    outputs, metrics = await asyncio.to_thread(_native.execute, manifest, items)
    return _result(outputs, metrics, enable_metrics)


class StreamSession:
    """A live run of a manifest:

        async with await StreamSession.open(manifest) as session:
            await session.send(numpy_to_audio_dict(chunk, 16000, 1))
            async for output in session:   # ends once the session is closed and drained
                ...

    `await StreamSession.open(manifest)` starts the session (manifest, Python workers) off the
    event loop; `StreamSession(manifest)` does the same work on the calling thread.

    Receiving does not poll: when a receiver is about to wait, the native session makes a
    socket readable at the next output, and the event loop watches it.
    """

    def __init__(self, manifest_json: str | dict, *, _native_session=None):
        self._native = _native_session or _native.Session(_manifest_text(manifest_json))
        self._closing = False
        self._closed = False
        self._rest: collections.deque = collections.deque()
        self._waiters: set[asyncio.Future] = set()
        self._watching: asyncio.AbstractEventLoop | None = None
        self._unwatcher: weakref.finalize | None = None

    @classmethod
    async def open(cls, manifest_json: str | dict) -> "StreamSession":
        """Starts a session without blocking the event loop while its workers start."""
        native = await asyncio.to_thread(_native.Session, _manifest_text(manifest_json))
        return cls(manifest_json, _native_session=native)

    async def __aenter__(self) -> "StreamSession":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def send(self, item: Any) -> None:
        """Sends one input; waits while the pipeline is full (backpressure).

        While every node's queue has room and no Python node would run on the caller, the
        input is handed on from the event loop's own thread (the GIL released; cheap native
        nodes run here); otherwise a thread sends it, waiting for room while the loop goes on."""
        native = _to_native(item)
        if not self._native.send_is_quick():
            await asyncio.to_thread(self._native.send, native)
        elif not self._waiters:
            self._native.send(native)
        else:
            # A receiver waits: what the nodes that run here make is handed to it directly,
            # without a wake-up through the socket.
            self._native.disarm_wakeup()
            try:
                self._native.send(native)
            finally:
                self._hand_over()

    def _hand_over(self) -> None:
        """Moves the outputs queued now to the waiting receivers (re-arming the socket for
        those still to come); an error among them is raised by the receiver, in its place."""
        try:
            ready = self._native.take_ready()
            if not ready:
                self._native.arm_wakeup()
                ready = self._native.take_ready()
        except Exception as e:  # a node failed: the receiver raises it
            ready = [e]
        if ready:
            self._rest.extend(ready)
            for woken in list(self._waiters):
                _wake(woken)

    async def recv(self, timeout: float | None = None) -> dict | None:
        """The next output, or None if none came within `timeout` seconds (None: wait until
        one comes or the session is closed and drained)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._rest:
                out = self._rest.popleft()
                if isinstance(out, Exception):
                    raise out
                return out
            self._rest.extend(self._native.take_ready())
            if self._rest:
                continue
            if self._closed:
                return None
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return None
            # Armed before the last look, so an output queued from here on wakes the wait.
            self._native.arm_wakeup()
            self._rest.extend(self._native.take_ready())
            if not self._rest:
                await self._wait_for_output(loop, remaining)

    async def _wait_for_output(self, loop: asyncio.AbstractEventLoop, timeout: float | None) -> None:
        self._watch(loop)
        woken = loop.create_future()
        self._waiters.add(woken)
        timer = None if timeout is None else loop.call_later(timeout, _wake, woken)
        try:
            await woken
        finally:
            self._waiters.discard(woken)
            if timer is not None:
                timer.cancel()

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watches the wakeup socket from `loop`, once for the session's life there (not per
        wait). The callback holds the session weakly, and a session dropped unclosed stops
        the watch as it goes."""
        if self._watching is loop:
            return
        self._unwatch()
        fd = self._native.wakeup_fd()
        session = weakref.ref(self)

        def readable() -> None:
            me = session()
            if me is not None:
                me._native.clear_wakeups()
                for woken in list(me._waiters):
                    _wake(woken)

        loop.add_reader(fd, readable)
        self._watching = loop
        self._unwatcher = weakref.finalize(self, _stop_watching, loop, fd)

    def _unwatch(self) -> None:
        if self._unwatcher is not None:
            self._unwatcher()  # runs once, here or when the session is collected
        self._unwatcher = None
        self._watching = None

    async def close(self) -> list:
        """Ends the input: drains the pipeline; what it still held is returned and also
        yielded by iteration."""
        if not self._closing:
            self._closing = True
            try:
                self._rest.extend(await asyncio.to_thread(self._native.close))
            finally:
                self._closed = True
                self._unwatch()
                for woken in list(self._waiters):
                    _wake(woken)
        return [out for out in self._rest if not isinstance(out, Exception)]

    def metrics(self) -> list:
        return self._native.metrics()

    def __aiter__(self) -> AsyncIterator[dict]:
        return self

    async def __anext__(self) -> dict:
        out = await self.recv()
        if out is None:
            raise StopAsyncIteration
        return out


def _stop_watching(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    if not loop.is_closed():
        loop.remove_reader(fd)


def _wake(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
