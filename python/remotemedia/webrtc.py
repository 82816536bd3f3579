"""RemoteMedia's WebRTC server from Python, on top of the `remotemediawebrtcserver` element.

    from remotemedia.webrtc import WebRtcServer

    server = await WebRtcServer.create({"port": 8080, "manifest": "examples/launch/vad.json"})

    @server.on_pipeline_output
    async def output(event):
        print(event.peer_id, event.node_id, event.data)

    await server.start()          # browsers open http://127.0.0.1:8080/
    ...
    await server.shutdown()

Every peer that connects gets its own run of the manifest; its audio goes through it, media
results return on its track and text/JSON results on its data channel (and to
`on_pipeline_output`). A manifest without nodes (`{"nodes": [], "connections": []}`) makes it a
signaling and data-channel server: no run per peer, the peers' media is dropped. The element
does the media work in native code; this module turns its bus messages into asyncio callbacks.
It needs GStreamer's Python bindings (PyGObject) and the plugin on GST_PLUGIN_PATH (or
installed).
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional

from ._gst import error_of, gst

log = logging.getLogger("remotemedia.webrtc")

_ELEMENT = "remotemediawebrtcserver"
_CODECS = ("vp8", "vp9", "h264")
_CLOCK_TIME_NONE = 2**64 - 1


class WebRtcError(Exception):
    """A failure of the WebRTC server, with its error code (CONFIG_ERROR, ...)."""

    def __init__(self, code: str, message: str, peer_id: Optional[str] = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.peer_id = peer_id


@dataclass
class TurnServer:
    url: str
    username: str
    credential: str


@dataclass
class WebRtcServerConfig:
    """What `WebRtcServer.create` takes (a dict with these keys works too)."""

    port: Optional[int] = 8080
    signaling_url: Optional[str] = None
    manifest: Any = None
    stun_servers: list = field(default_factory=list)
    turn_servers: list = field(default_factory=list)
    max_peers: int = 10
    audio_codec: str = "opus"
    video_codec: str = "vp9"
    host: str = "127.0.0.1"
    peer_id: str = "remotemedia"
    ice_loopback_only: bool = False
    # {max_attempts, initial_backoff_ms, max_backoff_ms, backoff_multiplier}: how an external
    # signaling server (ws://, grpc://) is reconnected when it goes away.
    reconnect: Optional[dict] = None
    # Peers to call as soon as they are announced (and again when they come back).
    connect_to: list = field(default_factory=list)
    auth_token: Optional[str] = None

    @classmethod
    def of(cls, config: "WebRtcServerConfig | dict") -> "WebRtcServerConfig":
        if isinstance(config, cls):
            return config
        if not isinstance(config, dict):
            raise WebRtcError("CONFIG_ERROR", f"config must be a dict or WebRtcServerConfig, got {type(config).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(config) - known)
        if unknown:
            raise WebRtcError("CONFIG_ERROR", f"unknown config keys {unknown}; known: {sorted(known)}")
        return cls(**config)


@dataclass
class PeerInfo:
    peer_id: str
    capabilities: dict
    metadata: dict
    state: str
    connected_at: int  # unix milliseconds


@dataclass
class SessionInfo:
    session_id: str
    peer_ids: list
    created_at: int  # unix milliseconds
    metadata: dict


@dataclass
class PeerConnectedEvent:
    peer_id: str
    capabilities: dict
    metadata: dict = field(default_factory=dict)


@dataclass
class PeerDisconnectedEvent:
    peer_id: str
    reason: Optional[str]


@dataclass
class PipelineOutputEvent:
    """One result of a peer's manifest run: `data` is the parsed JSON (or the text)."""

    peer_id: str
    node_id: str
    kind: str
    data: Any
    timestamp: Optional[int]  # stream time in nanoseconds


@dataclass
class DataReceivedEvent:
    """A data-channel message: `data` is the bytes received (text arrives UTF-8 encoded,
    `binary` says which kind the peer sent), `timestamp` its arrival in Unix milliseconds."""

    peer_id: str
    data: bytes
    timestamp: int = 0
    binary: bool = False

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass
class ErrorEvent:
    code: str
    message: str
    peer_id: Optional[str]


@dataclass
class SessionEvent:
    session_id: str
    event_type: str  # "created" | "deleted" | "peer_joined" | "peer_left"
    peer_id: Optional[str]


_RECONNECT_KEYS = ("max_attempts", "initial_backoff_ms", "max_backoff_ms", "backoff_multiplier")


def _with_reconnect(url: str, reconnect: Optional[dict]) -> str:
    """`url` with the reconnect policy as the query parameters both ws:// and grpc:// read."""
    if not reconnect:
        return url
    unknown = sorted(set(reconnect) - set(_RECONNECT_KEYS))
    if unknown:
        raise WebRtcError("CONFIG_ERROR", f"unknown reconnect keys {unknown}; known: {list(_RECONNECT_KEYS)}")
    for key, value in reconnect.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise WebRtcError("CONFIG_ERROR", f"reconnect.{key} must be a number >= 0, got {value!r}")
    query = "&".join(f"{k}={v}" for k, v in reconnect.items())
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _glib():
    from gi.repository import GLib

    return GLib


def _manifest_property(manifest: Any) -> tuple[str, str]:
    """The element property and value for a manifest given as dict, JSON text or path."""
    if manifest is None:
        raise WebRtcError("CONFIG_ERROR", "config 'manifest' is required: a dict, JSON text or a path")
    if isinstance(manifest, dict):
        return "manifest-json", json.dumps(manifest)
    if isinstance(manifest, os.PathLike):
        manifest = os.fspath(manifest)
    if isinstance(manifest, str):
        if manifest.lstrip().startswith("{"):
            return "manifest-json", manifest
        if not os.path.isfile(manifest):
            raise WebRtcError("CONFIG_ERROR", f"manifest file {manifest!r} does not exist")
        return "manifest", os.path.abspath(manifest)
    raise WebRtcError("CONFIG_ERROR", f"manifest must be a dict, JSON text or a path, got {type(manifest).__name__}")


def _turn_url(server: Any) -> str:
    if isinstance(server, str):
        return server
    if isinstance(server, dict):
        server = TurnServer(**server)
    if isinstance(server, TurnServer):
        scheme, _, rest = server.url.partition(":")
        return f"{scheme}:{server.username}:{server.credential}@{rest}"
    raise WebRtcError("CONFIG_ERROR", f"a TURN server is a URL, a dict or a TurnServer, got {type(server).__name__}")


def _text(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"data channel messages are text: {e}") from None


class WebRtcSession:
    """A session (room): a named group of peers. Made by `WebRtcServer.create_session`."""

    def __init__(self, server: "WebRtcServer", session_id: str):
        self._server = server
        self._id = session_id
        self._joined: list = []
        self._left: list = []

    @property
    def session_id(self) -> str:
        return self._id

    async def _info(self) -> SessionInfo:
        info = await self._server.get_session(self._id)
        if info is None:
            raise WebRtcError("SESSION_NOT_FOUND", f"no session {self._id!r}")
        return info

    async def get_peers(self) -> list:
        return list((await self._info()).peer_ids)

    async def get_created_at(self) -> int:
        return (await self._info()).created_at

    async def get_metadata(self) -> dict:
        return dict((await self._info()).metadata)

    def on_peer_joined(self, callback: Callable[[str], Any]) -> Callable[[str], Any]:
        self._joined.append(callback)
        return callback

    def on_peer_left(self, callback: Callable[[str], Any]) -> Callable[[str], Any]:
        self._left.append(callback)
        return callback

    async def add_peer(self, peer_id: str) -> None:
        self._server._session_call("join-session", self._id, peer_id)

    async def remove_peer(self, peer_id: str) -> None:
        self._server._session_call("leave-session", self._id, peer_id)

    async def broadcast(self, data: bytes | str) -> int:
        """Sends to every member with an open data channel; returns how many."""
        self._server._require_running()
        return self._server._element.emit("send-to-session", self._id, _text(data))

    async def send_to_peer(self, peer_id: str, data: bytes | str) -> None:
        if peer_id not in await self.get_peers():
            raise WebRtcError("PEER_NOT_FOUND", f"peer {peer_id!r} is not in session {self._id!r}", peer_id)
        await self._server.send_to_peer(peer_id, data)


class WebRtcServer:
    """RemoteMedia's WebRTC server: one run of the manifest per connected peer."""

    def __init__(self, config: WebRtcServerConfig):
        self._config = config
        self._id = str(uuid.uuid4())
        self._state = "created"
        self._callbacks: dict[str, list] = {k: [] for k in (
            "peer_connected", "peer_disconnected", "pipeline_output", "data", "error", "session")}
        self._peers: dict[str, PeerInfo] = {}
        self._sessions: dict[str, WebRtcSession] = {}
        # Errors the element just posted, to explain a failed start or action signal.
        self._recent_errors: collections.deque = collections.deque(maxlen=16)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # Async callbacks still running: the loop keeps only weak references to tasks.
        self._tasks: set[asyncio.Task] = set()
        self._lock = threading.Lock()
        Gst = gst()
        self._Gst = Gst
        element = Gst.ElementFactory.make(_ELEMENT, None)
        if element is None:
            raise WebRtcError("CONFIG_ERROR", f"the GStreamer element {_ELEMENT} is not available: set GST_PLUGIN_PATH "
                              "to the folder holding libgstremotemedia.so, or install the plugin (see README)")
        self._element = element
        self._configure(config)
        self._pipeline = Gst.Pipeline.new(f"webrtc-server-{self._id[:8]}")
        self._pipeline.add(element)

    def _configure(self, c: WebRtcServerConfig) -> None:
        prop, value = _manifest_property(c.manifest)
        e = self._element
        e.set_property(prop, value)
        if c.audio_codec != "opus":
            raise WebRtcError("CONFIG_ERROR", f"audio_codec {c.audio_codec!r} is not supported; use 'opus'")
        if c.video_codec not in _CODECS:
            raise WebRtcError("CONFIG_ERROR", f"video_codec {c.video_codec!r} is not one of {list(_CODECS)}")
        e.set_property("video-codec", c.video_codec)
        if not 1 <= int(c.max_peers) <= 1000:
            raise WebRtcError("CONFIG_ERROR", f"max_peers must be 1..1000, got {c.max_peers}")
        e.set_property("max-peers", int(c.max_peers))
        if c.connect_to:
            e.set_property("connect-to", ",".join(c.connect_to))
        if c.auth_token:
            e.set_property("auth-token", c.auth_token)
        if c.signaling_url:
            e.set_property("signaling-url", _with_reconnect(c.signaling_url, c.reconnect))
        else:
            port = 0 if c.port is None else int(c.port)
            if not 0 <= port <= 65535:
                raise WebRtcError("CONFIG_ERROR", f"port must be 0..65535, got {port}")
            e.set_property("signaling-port", port)
            e.set_property("signaling-host", c.host)
        e.set_property("peer-id", c.peer_id)
        e.set_property("stun-servers", ",".join(c.stun_servers))
        e.set_property("turn-servers", ",".join(_turn_url(t) for t in c.turn_servers))
        e.set_property("ice-loopback-only", bool(c.ice_loopback_only))

    # ----- creation and life cycle -------------------------------------------------------

    @staticmethod
    async def create(config: "WebRtcServerConfig | dict") -> "WebRtcServer":
        """A server with embedded signaling on `port` (0: a free port, see `.port`)."""
        return WebRtcServer(WebRtcServerConfig.of(config))

    @staticmethod
    async def connect(config: "WebRtcServerConfig | dict") -> "WebRtcServer":
        """A server that announces itself on an external signaling server (`signaling_url`)."""
        c = WebRtcServerConfig.of(config)
        if not c.signaling_url:
            raise WebRtcError("CONFIG_ERROR", "connect() needs 'signaling_url' (ws://host:port/ws)")
        return WebRtcServer(c)

    @property
    def id(self) -> str:
        return self._id

    @property
    def port(self) -> Optional[int]:
        """The embedded signaling port (the one picked when configured as 0)."""
        if self._config.signaling_url:
            return None
        return self._element.get_property("signaling-port")

    async def get_state(self) -> str:
        """created, starting, running, stopping or stopped."""
        return self._state

    async def start(self) -> None:
        """Binds the signaling port (or connects to the signaling server) and starts serving."""
        if self._state not in ("created", "stopped"):
            raise WebRtcError("CONFIG_ERROR", f"cannot start a server that is {self._state}")
        self._state = "starting"
        self._loop = asyncio.get_running_loop()
        self._recent_errors.clear()
        bus = self._pipeline.get_bus()
        bus.set_sync_handler(self._on_bus)
        Gst = self._Gst
        result = await asyncio.to_thread(self._pipeline.set_state, Gst.State.PLAYING)
        if result == Gst.StateChangeReturn.FAILURE:
            await asyncio.to_thread(self._pipeline.set_state, Gst.State.NULL)
            self._state = "stopped"
            code, message = self._recent_errors[0] if self._recent_errors else ("INTERNAL_ERROR", "the server did not start")
            raise WebRtcError(code, message)
        self._state = "running"

    async def shutdown(self) -> None:
        """Tells every peer goodbye, stops every run and frees the port."""
        if self._state in ("created", "stopped"):
            self._state = "stopped"
            return
        self._state = "stopping"
        await asyncio.to_thread(self._pipeline.set_state, self._Gst.State.NULL)
        self._pipeline.get_bus().set_sync_handler(None)
        self._peers.clear()
        self._state = "stopped"

    async def __aenter__(self) -> "WebRtcServer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> bool:
        await self.shutdown()
        return False

    # ----- callbacks ---------------------------------------------------------------------

    def _register(self, kind: str, callback: Callable) -> Callable:
        self._callbacks[kind].append(callback)
        return callback

    def on_peer_connected(self, callback: Callable[[PeerConnectedEvent], Any]) -> Callable:
        return self._register("peer_connected", callback)

    def on_peer_disconnected(self, callback: Callable[[PeerDisconnectedEvent], Any]) -> Callable:
        return self._register("peer_disconnected", callback)

    def on_pipeline_output(self, callback: Callable[[PipelineOutputEvent], Any]) -> Callable:
        return self._register("pipeline_output", callback)

    def on_data(self, callback: Callable[[DataReceivedEvent], Any]) -> Callable:
        return self._register("data", callback)

    def on_error(self, callback: Callable[[ErrorEvent], Any]) -> Callable:
        return self._register("error", callback)

    def on_session(self, callback: Callable[[SessionEvent], Any]) -> Callable:
        return self._register("session", callback)

    # ----- peers, data and sessions ------------------------------------------------------

    def _require_running(self) -> None:
        if self._state != "running":
            raise WebRtcError("CONFIG_ERROR", f"the server is {self._state}; call start() first")

    async def get_peers(self) -> list:
        """The connected peers."""
        return list(self._peers.values())

    async def send_to_peer(self, peer_id: str, data: bytes | str) -> None:
        """Sends on the peer's data channel: `str` as a text message, bytes as binary."""
        self._require_running()
        if not self._element.emit(*self._data_signal("send-to-peer", data, peer_id)):
            raise WebRtcError("PEER_NOT_FOUND", f"no data channel open with peer {peer_id!r}", peer_id)

    async def broadcast(self, data: bytes | str) -> int:
        """Sends to every peer with an open data channel (text or binary); returns how many."""
        self._require_running()
        return self._element.emit(*self._data_signal("broadcast", data))

    def _data_signal(self, name: str, data: bytes | str, *head: str) -> tuple:
        if isinstance(data, str):
            return (name, *head, data)
        GLib = _glib()
        return (f"{name}-bytes", *head, GLib.Bytes.new(bytes(data)))

    async def disconnect_peer(self, peer_id: str, reason: Optional[str] = None) -> None:
        """Hangs up on a peer; it hears `reason` before the call ends."""
        self._require_running()
        if not self._element.emit("disconnect-peer", peer_id, reason or ""):
            raise WebRtcError("PEER_NOT_FOUND", f"no peer {peer_id!r}", peer_id)

    def _session_call(self, signal: str, *args: str) -> None:
        self._require_running()
        with self._lock:
            self._recent_errors.clear()
        if not self._element.emit(signal, *args):
            # The element posted why (synchronously) as an error message.
            with self._lock:
                code, message = self._recent_errors[-1] if self._recent_errors else ("CONFIG_ERROR", f"{signal} failed")
            raise WebRtcError(code, message)

    async def create_session(self, session_id: str, metadata: Optional[dict] = None) -> WebRtcSession:
        """A new session (room); peers join it by announcing user_data.session or `add_peer`."""
        meta = json.dumps(metadata or {})
        self._session_call("create-session", session_id, meta)
        session = WebRtcSession(self, session_id)
        self._sessions[session_id] = session
        return session

    async def create_session_info(self, session_id: str, metadata: Optional[dict] = None) -> SessionInfo:
        await self.create_session(session_id, metadata)
        return await self.get_session(session_id)

    async def get_sessions(self) -> list:
        self._require_running()
        return [SessionInfo(**s) for s in json.loads(self._element.emit("get-sessions"))]

    async def get_session(self, session_id: str) -> Optional[SessionInfo]:
        return next((s for s in await self.get_sessions() if s.session_id == session_id), None)

    async def delete_session(self, session_id: str) -> None:
        self._session_call("delete-session", session_id)
        self._sessions.pop(session_id, None)

    # ----- bus messages to callbacks -----------------------------------------------------

    def _on_bus(self, bus, msg):
        """Runs on GStreamer's threads: hands the message to the asyncio loop, never blocks."""
        Gst = self._Gst
        if msg.type == Gst.MessageType.ERROR:
            code, text = error_of(msg)
            with self._lock:
                self._recent_errors.append((code, text))
            self._post(self._error, ErrorEvent(code, text, None))
        elif msg.type == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            fields = {s.nth_field_name(i): s.get_value(s.nth_field_name(i)) for i in range(s.n_fields())}
            # A GBytes field points into the message, which is gone once this returns.
            if "bytes" in fields:
                fields["bytes"] = bytes(fields["bytes"].get_data() or b"")
            if s.get_name() == "error":
                with self._lock:
                    self._recent_errors.append((fields.get("code", "INTERNAL_ERROR"), fields.get("message", "")))
            self._post(self._element_message, s.get_name(), fields)
        return Gst.BusSyncReply.DROP

    def _post(self, fn, *args) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _fire(self, callbacks: list, arg: Any) -> None:
        for callback in list(callbacks):
            try:
                result = callback(arg)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(self._guard(result, callback))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            except Exception:  # a user's callback must not stop the others
                log.exception("callback %r failed", callback)

    @staticmethod
    async def _guard(awaitable: Awaitable, callback: Callable) -> None:
        try:
            await awaitable
        except Exception:
            log.exception("callback %r failed", callback)

    def _error(self, event: ErrorEvent) -> None:
        self._fire(self._callbacks["error"], event)

    def _element_message(self, name: str, f: dict) -> None:
        peer = f.get("peer-id") or None
        if name == "peer-connected":
            try:
                caps = json.loads(f.get("capabilities") or "{}")
            except ValueError:
                caps = {}
            try:
                metadata = json.loads(f.get("metadata") or "{}")
            except ValueError:
                metadata = {}
            if not isinstance(metadata, dict):
                metadata = {"user_data": metadata}
            self._peers[peer] = PeerInfo(peer, caps, metadata, "connected", int(time.time() * 1000))
            self._fire(self._callbacks["peer_connected"], PeerConnectedEvent(peer, caps, metadata))
        elif name == "peer-disconnected":
            self._peers.pop(peer, None)
            self._fire(self._callbacks["peer_disconnected"], PeerDisconnectedEvent(peer, f.get("reason")))
        elif name == "remotemedia":
            text = f.get("json", "")
            try:
                data = json.loads(text)
            except ValueError:
                data = text
            pts = f.get("pts")
            if pts is not None and int(pts) >= _CLOCK_TIME_NONE:
                pts = None
            event = PipelineOutputEvent(peer, f.get("node-id", ""), f.get("kind", ""), data,
                                        None if pts is None else int(pts))
            self._fire(self._callbacks["pipeline_output"], event)
        elif name == "data":
            binary = bool(f.get("binary"))
            data = f.get("bytes", b"") if binary else f.get("message", "").encode()
            self._fire(self._callbacks["data"], DataReceivedEvent(peer, data, int(f.get("timestamp") or 0), binary))
        elif name == "error":
            self._fire(self._callbacks["error"], ErrorEvent(f.get("code", "INTERNAL_ERROR"), f.get("message", ""), peer))
        elif name == "session":
            room, kind = f.get("session-id", ""), f.get("event", "").replace("-", "_")
            session = self._sessions.get(room)
            if session is not None and kind in ("peer_joined", "peer_left"):
                self._fire(session._joined if kind == "peer_joined" else session._left, peer)
            self._fire(self._callbacks["session"], SessionEvent(room, kind, peer))
