"""remotemedia-server end to end over gRPC (docs/ARCHITECTURE.md, "Signaling"): WebRTC signaling on the shared
peer registry, unary and streaming pipeline execution, standard health and reflection, auth,
limits, metrics, and a WebSocket peer reaching a gRPC peer through the one server.

Every server runs on 127.0.0.1 with ports it picks itself; stubs come from grpc_stubs.py.
"""

import asyncio
import itertools
import json
import queue
import re
import threading
import time
import urllib.request
import wave

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from conftest import LAUNCH
from grpc_stubs import pb  # noqa: F401  (the session fixture)
from server_process import ServerProcess
from webrtc_peer import Peer as WsPeer  # also keeps aiortc's ICE on 127.0.0.1

SERVICES = (
    "remotemedia.v1.PipelineExecutionService",
    "remotemedia.v1.StreamingPipelineService",
    "remotemedia.v1.webrtc.WebRtcSignaling",
)
VAD_JSON = (LAUNCH / "vad.json").read_text()
PASSTHROUGH_JSON = (LAUNCH / "passthrough.json").read_text()


# ---------------------------------------------------------------- server processes


class Server(ServerProcess):
    """remotemedia-server on loopback with free ports, and gRPC channels to it."""

    def __init__(self, *flags):
        super().__init__(*flags)
        self.channels = []

    def channel(self, new_connection=False):
        """A channel to the gRPC port; `new_connection` keeps it off the connections that other
        channels to the same address share."""
        options = [("grpc.use_local_subchannel_pool", 1)] if new_connection else []
        ch = grpc.insecure_channel(self.grpc, options=options)
        grpc.channel_ready_future(ch).result(timeout=10)
        self.channels.append(ch)
        return ch

    def metrics_text(self):
        with urllib.request.urlopen(f"http://{self.metrics}/metrics", timeout=5) as r:
            assert r.status == 200
            return r.read().decode()

    def stop(self):
        for ch in self.channels:
            ch.close()
        super().stop()


def start_server(tmp_path_factory, *flags):
    return Server(*flags)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    s = start_server(tmp_path_factory, "--require-auth", "--auth-tokens", "secret1,secret2")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory):
    s = start_server(tmp_path_factory, "--max-message-mb", "1", "--max-memory-mb", "1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def short_server(tmp_path_factory):
    s = start_server(tmp_path_factory, "--max-timeout-sec", "1")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rate_server(tmp_path_factory):
    s = start_server(tmp_path_factory, "--calls-per-sec", "5")
    yield s
    s.stop()


@pytest.fixture
def fresh_server(tmp_path_factory):
    """A server of its own, for counts nobody else has touched."""
    s = start_server(tmp_path_factory)
    yield s
    s.stop()


# ---------------------------------------------------------------- clients


class Stubs:
    def __init__(self, pb, channel):
        self.signaling = pb.signaling_grpc.WebRtcSignalingStub(channel)
        self.execution = pb.execution_grpc.PipelineExecutionServiceStub(channel)
        self.streaming = pb.streaming_grpc.StreamingPipelineServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)


class SignalStream:
    """One Signal stream: requests go in through a queue, responses are buffered by a reader
    thread and taken out by what they are (answer to a request id, or a notification)."""

    def __init__(self, pb, channel, metadata=None):
        self.pb = pb
        self._requests = queue.Queue()
        self._buffer = []
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.status = None  # the stream's final status code once it has ended
        self.details = None
        stub = pb.signaling_grpc.WebRtcSignalingStub(channel)
        self.call = stub.Signal(iter(self._requests.get, None), metadata=metadata)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        status, details = grpc.StatusCode.OK, ""
        try:
            for response in self.call:
                with self._cond:
                    self._buffer.append(response)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            status, details = e.code(), e.details()
        with self._cond:
            self.status, self.details = status, details
            self._cond.notify_all()

    def send(self, request_id=None, **request):
        rid = f"req-{next(self._ids)}" if request_id is None else request_id
        self._requests.put(self.pb.signaling.SignalingRequest(request_id=rid, **request))
        return rid

    def take(self, match, timeout=5.0, what="response"):
        """Removes and returns the first buffered response for which `match` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, r in enumerate(self._buffer):
                    if match(r):
                        return self._buffer.pop(i)
                left = deadline - time.monotonic()
                if self.status is not None or left <= 0:
                    raise AssertionError(f"no {what}; buffered {list(self._buffer)}, "
                                         f"stream status {self.status} {self.details}")
                self._cond.wait(left)

    def request(self, request_id=None, **request):
        """Sends one request and returns the response that echoes its request id."""
        rid = self.send(request_id, **request)
        return self.take(lambda r: r.request_id == rid and r.WhichOneof("response") != "notification",
                         what=f"answer to {rid}")

    def notification(self, event, timeout=5.0):
        r = self.take(lambda r: r.WhichOneof("response") == "notification"
                      and r.notification.WhichOneof("event") == event, timeout, f"{event} notification")
        assert r.request_id == "", r
        return getattr(r.notification, event)

    def buffered(self, event):
        with self._cond:
            return [getattr(r.notification, event) for r in self._buffer
                    if r.WhichOneof("response") == "notification"
                    and r.notification.WhichOneof("event") == event]

    def sync(self):
        """A list_peers round trip: every notification queued for this stream before it is
        buffered once it returns."""
        assert self.request(list_peers=self.pb.signaling.ListPeersRequest()).HasField("peer_list")

    def announce(self, peer_id, take_over=False, **metadata):
        s = self.pb.signaling
        return self.request(announce=s.AnnounceRequest(
            peer_id=peer_id, capabilities=s.PeerCapabilities(audio=True, data=True),
            metadata=metadata, take_over=take_over))

    def wait_end(self, timeout=5.0):
        with self._cond:
            self._cond.wait_for(lambda: self.status is not None, timeout)
            assert self.status is not None, "the stream did not end"
            return self.status, self.details

    def close(self):
        self._requests.put(None)
        self.call.cancel()


def expect_error(response, code, kind=None):
    assert response.WhichOneof("response") == "error", response
    assert response.error.code == code, response
    if kind:
        assert response.error.kind == kind, response
    assert response.error.message, response
    return response.error


def wait_for_peers(stubs, pb, want, metadata=None, timeout=5.0):
    """Polls GetPeers until it lists exactly `want` (peers leave asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        peers = {p.peer_id for p in stubs.signaling.GetPeers(pb.signaling.GetPeersRequest(),
                                                             metadata=metadata).peers}
        if peers == set(want) or time.monotonic() > deadline:
            return peers
        time.sleep(0.05)


def speech_16k():
    """The speech sample as 16 kHz mono f32 (it is stored at another rate)."""
    with wave.open(str(LAUNCH / "speech.wav")) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768
    if rate != 16000:
        t = np.arange(int(len(pcm) * 16000 / rate)) * rate / 16000
        pcm = np.interp(t, np.arange(len(pcm)), pcm)
    return pcm.astype("<f4")


def audio(pb, samples, rate=16000, channels=1, pts_ns=None):
    a = pb.types.AudioBuffer(samples=np.asarray(samples, dtype="<f4").tobytes(),
                             sample_rate=rate, channels=channels)
    if pts_ns is not None:
        a.pts_ns = pts_ns
    return pb.types.DataBuffer(audio=a)


def audio_inputs(pb, samples, chunk, node_id=""):
    return [pb.execution.NamedInput(node_id=node_id, data=audio(pb, samples[i:i + chunk]))
            for i in range(0, len(samples), chunk)]


def execute(stubs, pb, manifest, inputs, timeout_ms=0, metadata=None):
    return stubs.execution.ExecutePipeline(
        pb.execution.ExecuteRequest(manifest_json=manifest, inputs=inputs, timeout_ms=timeout_ms,
                                    client_version="test"),
        metadata=metadata, timeout=60)


def rpc_error(fn, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    return info.value


def healthy(stubs, pb):
    r = stubs.signaling.HealthCheck(pb.signaling.HealthCheckRequest(), timeout=5)
    return r.healthy


# ---------------------------------------------------------------- 1. signaling


def test_signal_two_peers_exchange_offer_answer_and_candidates(server, pb):
    ch = server.channel()
    stubs = Stubs(pb, ch)
    s = pb.signaling
    assert wait_for_peers(stubs, pb, []) == set()
    alice, bob = SignalStream(pb, ch), SignalStream(pb, ch)
    try:
        ack = alice.announce("alice", room="r1")
        assert ack.WhichOneof("response") == "ack", ack
        assert ack.ack.peers_count == 1 and list(ack.ack.other_peers) == []

        ack = bob.announce("bob", room="r1")
        assert ack.ack.peers_count == 2, ack
        (other,) = ack.ack.other_peers
        assert other.peer_id == "alice" and other.metadata["room"] == "r1"
        assert other.capabilities.audio and other.capabilities.data and not other.capabilities.video
        joined = alice.notification("peer_joined")
        assert joined.peer.peer_id == "bob" and joined.peer.metadata["room"] == "r1"

        offer_sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=offer\r\n"
        r = alice.request("offer-1", offer=s.OfferRequest(to_peer_id="bob", sdp=offer_sdp))
        assert r.request_id == "offer-1" and r.WhichOneof("response") == "ack", r
        # RemoteMedia's offer id: <from>_<to>_<unix ms>.
        sender, receiver, ms = r.ack.offer_id.split("_")
        assert (sender, receiver) == ("alice", "bob") and abs(int(ms) / 1000 - time.time()) < 60, r.ack
        offer = bob.notification("offer")
        assert (offer.from_peer_id, offer.sdp) == ("alice", offer_sdp)

        answer_sdp = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=answer\r\n"
        r = bob.request(answer=s.AnswerRequest(to_peer_id="alice", sdp=answer_sdp, type="answer"))
        assert r.WhichOneof("response") == "ack", r
        answer = alice.notification("answer")
        assert (answer.from_peer_id, answer.sdp) == ("bob", answer_sdp)

        cand = "candidate:1 1 UDP 2130706431 127.0.0.1 50000 typ host"
        r = alice.request(ice_candidate=s.IceCandidateRequest(
            to_peer_id="bob", candidate=cand, sdp_mid="0", sdp_mline_index=0))
        assert r.WhichOneof("response") == "ack", r
        ice = bob.notification("ice_candidate")
        assert (ice.from_peer_id, ice.candidate, ice.sdp_mid) == ("alice", cand, "0")
        assert ice.HasField("sdp_mline_index") and ice.sdp_mline_index == 0
        r = bob.request(ice_candidate=s.IceCandidateRequest(to_peer_id="alice", candidate=cand + " 2"))
        assert r.WhichOneof("response") == "ack", r
        ice = alice.notification("ice_candidate")
        assert ice.from_peer_id == "bob" and not ice.HasField("sdp_mid")
        assert not ice.HasField("sdp_mline_index")

        # Each message arrived once: nothing more is queued behind a round trip.
        for peer in (alice, bob):
            peer.sync()
            for event in ("offer", "answer", "ice_candidate", "peer_joined"):
                assert peer.buffered(event) == [], (event, peer.buffered(event))

        listed = alice.request("list", list_peers=s.ListPeersRequest())
        assert listed.request_id == "list"
        assert sorted(p.peer_id for p in listed.peer_list.peers) == ["alice", "bob"]
        got = stubs.signaling.GetPeers(s.GetPeersRequest())
        assert sorted(p.peer_id for p in got.peers) == ["alice", "bob"]
        health = stubs.signaling.HealthCheck(s.HealthCheckRequest())
        assert health.healthy and health.peers == 2 and health.version

        # Disconnect: the peer leaves, the other hears why, the stream stays open.
        r = bob.request("bye", disconnect=s.DisconnectRequest())
        assert r.request_id == "bye" and r.WhichOneof("response") == "ack", r
        left = alice.notification("peer_left")
        assert left.peer_id == "bob" and left.reason == "disconnect"
        assert stubs.signaling.HealthCheck(s.HealthCheckRequest()).peers == 1
        assert bob.announce("bob-again").WhichOneof("response") == "ack"
        assert alice.notification("peer_joined").peer.peer_id == "bob-again"

        # Ending a stream makes its peer leave too.
        bob.close()
        left = alice.notification("peer_left")
        assert left.peer_id == "bob-again" and left.reason == "disconnected"
        assert wait_for_peers(stubs, pb, ["alice"]) == {"alice"}
    finally:
        alice.close()
        bob.close()


def test_disconnect_to_a_peer_tells_that_peer(server, pb):
    ch = server.channel()
    s = pb.signaling
    a, b = SignalStream(pb, ch), SignalStream(pb, ch)
    try:
        a.announce("hangup-a")
        b.announce("hangup-b")
        r = a.request(disconnect=s.DisconnectRequest(to_peer_id="hangup-b"))
        assert r.WhichOneof("response") == "ack", r
        assert b.notification("disconnected").from_peer_id == "hangup-a"
        # Hanging up on someone does not make the caller leave.
        assert {p.peer_id for p in a.request(list_peers=s.ListPeersRequest()).peer_list.peers} \
            >= {"hangup-a", "hangup-b"}
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------- 2. health and reflection


def test_standard_health_and_reflection(server, pb):
    ch = server.channel()
    health = health_pb2_grpc.HealthStub(ch)
    for service in ("", *SERVICES):
        r = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING, service
    err = rpc_error(health.Check, health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
    assert err.code() == grpc.StatusCode.NOT_FOUND

    # v1alpha, through grpcio-reflection's client.
    db = ProtoReflectionDescriptorDatabase(ch)
    services = set(db.get_services())
    assert set(SERVICES) | {"grpc.health.v1.Health"} <= services, services
    desc = db.FindFileContainingSymbol("remotemedia.v1.PipelineExecutionService")
    (svc,) = [s for s in desc.service if s.name == "PipelineExecutionService"]
    assert {m.name for m in svc.method} == {"ExecutePipeline", "GetVersion"}

    # v1: the same messages on the grpc.reflection.v1 service.
    v1 = ch.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                          request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                          response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    (reply,) = list(v1(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
    names = {s.name for s in reply.list_services_response.service}
    assert set(SERVICES) <= names, names


# ---------------------------------------------------------------- 3. ExecutePipeline


def test_execute_vad_on_speech_finds_the_known_segments(server, pb, known_segments):
    segments = known_segments
    stubs = Stubs(pb, server.channel())
    samples = speech_16k()
    inputs = audio_inputs(pb, samples, 640, node_id="resample")  # 40 ms each
    r = execute(stubs, pb, VAD_JSON, inputs)
    assert r.WhichOneof("outcome") == "result", r.error
    outputs = r.result.outputs
    assert {o.node_id for o in outputs} == {"vad"}
    kinds = {o.data.WhichOneof("data") for o in outputs}
    assert kinds == {"audio", "json"}, kinds
    # The VAD passes its audio through: all of it comes back, bit for bit.
    back = b"".join(o.data.audio.samples for o in outputs if o.data.HasField("audio"))
    assert back == samples.tobytes()
    assert all(o.data.audio.sample_rate == 16000 for o in outputs if o.data.HasField("audio"))

    events = [json.loads(o.data.json) for o in outputs if o.data.HasField("json")]
    starts = [e["timestamp_ms"] for e in events if e["is_speech_start"]]
    ends = [e["timestamp_ms"] for e in events if e["is_speech_end"]]
    assert len(starts) == len(ends) == len(segments), (starts, ends)
    for (start, end), s, e in zip(segments, starts, ends):
        assert abs(s - start) < 250 and abs(e - end) < 250, (segments, starts, ends)
    metrics = {m.node_id: m for m in r.result.metrics}
    assert set(metrics) == {"resample", "vad"}
    assert metrics["resample"].processed >= len(inputs) and metrics["vad"].errors == 0
    assert r.result.wall_time_us > 0


def test_get_version_lists_node_types(server, pb):
    stubs = Stubs(pb, server.channel())
    v = stubs.execution.GetVersion(pb.execution.VersionRequest(), timeout=5)
    assert v.protocol_version == "remotemedia.v1" and v.server_version
    assert {"PassThrough", "FastResampleNode", "SileroVADNode"} <= set(v.node_types), v.node_types


def test_execute_reports_manifest_and_input_errors(server, pb):
    stubs = Stubs(pb, server.channel())
    Kind = pb.types.ErrorResponse.Kind
    one = audio_inputs(pb, np.zeros(320), 320)

    bad_type = json.loads(PASSTHROUGH_JSON)
    bad_type["nodes"][0]["node_type"] = "NoSuchNode"
    r = execute(stubs, pb, json.dumps(bad_type), one)
    assert r.WhichOneof("outcome") == "error", r
    assert r.error.kind == Kind.MANIFEST and "NoSuchNode" in r.error.message, r.error

    dangling = json.loads(VAD_JSON)
    dangling["connections"] = [{"from": "resample", "to": "nowhere"}]
    r = execute(stubs, pb, json.dumps(dangling), one)
    assert r.error.kind == Kind.MANIFEST and "nowhere" in r.error.message, r

    r = execute(stubs, pb, "{not json", one)
    assert r.error.kind == Kind.MANIFEST and r.error.message, r

    r = execute(stubs, pb, VAD_JSON, audio_inputs(pb, np.zeros(320), 320, node_id="vad"))
    assert r.WhichOneof("outcome") == "error", r
    assert r.error.kind == Kind.INPUT and r.error.node_id == "vad", r.error
    assert "not a source" in r.error.message and "resample" in r.error.message, r.error

    odd = pb.types.DataBuffer(audio=pb.types.AudioBuffer(samples=b"\0" * 5, sample_rate=16000, channels=1))
    err = rpc_error(execute, stubs, pb, PASSTHROUGH_JSON, [pb.execution.NamedInput(data=odd)])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "audio.samples" in err.details(), err

    # A node failing at run time: the VAD refuses audio that is not 16 kHz mono.
    direct_vad = json.dumps({"version": "v1", "nodes": [{"id": "v", "node_type": "SileroVADNode"}],
                             "connections": []})
    r = execute(stubs, pb, direct_vad, [pb.execution.NamedInput(data=audio(pb, np.zeros(960), rate=48000))])
    assert r.WhichOneof("outcome") == "error", r
    assert r.error.kind == Kind.NODE and r.error.node_id == "v" and "16000" in r.error.message, r.error


def test_execute_passthrough_round_trips_every_buffer_type(server, pb):
    stubs = Stubs(pb, server.channel())
    t = pb.types
    buffers = [
        audio(pb, [0.5, -1.0, 0.25, 0.0], rate=48000, channels=2, pts_ns=42),
        t.DataBuffer(text="hello"),
        t.DataBuffer(json='{"a": [1, 2]}'),
        t.DataBuffer(binary=b"\x00\x01\xff"),
        t.DataBuffer(tensor=t.Tensor(data=np.arange(6, dtype="<f4").tobytes(), shape=[2, 3],
                                     dtype="f32")),
        t.DataBuffer(video=t.VideoFrame(data=bytes(range(12)), width=2, height=2, format="RGB",
                                        keyframe=True)),
    ]
    inputs = [pb.execution.NamedInput(node_id="pass", data=b) for b in buffers]
    r = execute(stubs, pb, PASSTHROUGH_JSON, inputs)
    assert r.WhichOneof("outcome") == "result", r.error
    got = [o.data for o in r.result.outputs]
    assert len(got) == len(buffers), got
    assert got[0].audio.samples == buffers[0].audio.samples and got[0].audio.channels == 2
    assert got[0].audio.pts_ns == 42
    assert got[1].text == "hello" and json.loads(got[2].json) == {"a": [1, 2]}
    assert got[3].binary == b"\x00\x01\xff"
    assert got[4].tensor == buffers[4].tensor and got[5].video == buffers[5].video
    assert all(o.node_id == "pass" for o in r.result.outputs)


# ---------------------------------------------------------------- 4. StreamPipeline


class PipelineStream:
    def __init__(self, pb, channel, metadata=None):
        self.pb = pb
        self._requests = queue.Queue()
        stub = pb.streaming_grpc.StreamingPipelineServiceStub(channel)
        self.call = stub.StreamPipeline(iter(self._requests.get, None), metadata=metadata, timeout=60)
        self._responses = iter(self.call)

    def send(self, **request):
        self._requests.put(self.pb.streaming.StreamRequest(**request))

    def chunk(self, sequence, data, node_id=""):
        self.send(data_chunk=self.pb.streaming.DataChunk(sequence=sequence, data=data, node_id=node_id))

    def next(self):
        return next(self._responses)

    def half_close(self):
        self._requests.put(None)

    def rest(self):
        return list(self._responses)

    def close(self):
        self._requests.put(None)
        self.call.cancel()


def test_stream_pipeline_results_sequences_and_close(server, pb):
    st = pb.streaming
    stream = PipelineStream(pb, server.channel())
    stream.send(init=st.StreamInit(manifest_json=PASSTHROUGH_JSON, client_version="test"))
    ready = stream.next()
    assert ready.WhichOneof("response") == "ready" and ready.ready.session_id, ready

    def chunk_data(i):
        return audio(pb, np.full(320, i / 10, dtype="<f4"))

    results = []
    for i in range(5):
        stream.chunk(i, chunk_data(i), node_id="pass" if i % 2 else "")
        r = stream.next()
        assert r.WhichOneof("response") == "result", r
        results.append(r.result)

    # Out of order: refused with SEQUENCE, and the stream goes on with the expected number.
    stream.chunk(7, chunk_data(7))
    r = stream.next()
    assert r.WhichOneof("response") == "error", r
    assert r.error.kind == pb.types.ErrorResponse.Kind.SEQUENCE and "expected sequence 5" in r.error.message
    stream.chunk(5, chunk_data(5))
    r = stream.next()
    assert r.WhichOneof("response") == "result", r
    results.append(r.result)

    stream.half_close()
    rest = stream.rest()  # ends without an error status
    assert [x.WhichOneof("response") for x in rest] == ["closed"], rest
    closed = rest[-1].closed
    assert closed.chunks == 6
    (m,) = closed.metrics
    assert m.node_id == "pass" and m.processed == 6 and m.errors == 0, m

    assert [x.output.node_id for x in results] == ["pass"] * 6
    assert [x.sequence for x in results] == list(range(6))
    for i, x in enumerate(results):
        assert x.output.data.audio.samples == chunk_data(i).audio.samples, i


def test_stream_pipeline_vad_results_come_while_streaming(server, pb):
    st = pb.streaming
    stream = PipelineStream(pb, server.channel())
    stream.send(init=st.StreamInit(manifest_json=VAD_JSON))
    assert stream.next().WhichOneof("response") == "ready"
    samples = speech_16k()[:16000 * 2]  # two seconds: silence, then speech from 1 s
    chunks = [samples[i:i + 512] for i in range(0, len(samples), 512)]
    for i, c in enumerate(chunks):
        stream.chunk(i, audio(pb, c))
    stream.send(control=st.StreamControl(command=st.StreamControl.CLOSE))
    responses = stream.rest()
    assert responses[-1].WhichOneof("response") == "closed", responses[-1]
    results = [r.result for r in responses[:-1]]
    assert all(r.output.node_id == "vad" for r in results)
    seqs = [r.sequence for r in results]
    assert seqs == sorted(seqs) and seqs[-1] <= len(chunks) - 1
    events = [json.loads(r.output.data.json) for r in results if r.output.data.HasField("json")]
    starts = [e["timestamp_ms"] for e in events if e["is_speech_start"]]
    assert len(starts) == 1 and abs(starts[0] - 1000) < 250, starts
    assert responses[-1].closed.chunks == len(chunks)


def test_stream_pipeline_refuses_a_first_message_that_is_not_init(server, pb):
    stream = PipelineStream(pb, server.channel())
    stream.chunk(0, audio(pb, np.zeros(10)))
    err = rpc_error(stream.next)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "init" in err.details(), err
    stream.close()

    stream = PipelineStream(pb, server.channel())
    stream.send(init=pb.streaming.StreamInit(manifest_json='{"version": "v1", "nodes": []}'))
    err = rpc_error(stream.next)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
    stream.close()


def test_stream_pipeline_node_and_input_errors_leave_the_stream_open(server, pb):
    Kind = pb.types.ErrorResponse.Kind
    direct_vad = json.dumps({"version": "v1", "nodes": [{"id": "v", "node_type": "SileroVADNode"}],
                             "connections": []})
    stream = PipelineStream(pb, server.channel())
    stream.send(init=pb.streaming.StreamInit(manifest_json=direct_vad))
    assert stream.next().WhichOneof("response") == "ready"
    stream.chunk(0, audio(pb, np.zeros(960), rate=48000))
    r = stream.next()
    assert r.WhichOneof("response") == "error", r
    assert r.error.kind == Kind.NODE and r.error.node_id == "v" and "16000" in r.error.message, r.error
    stream.chunk(1, pb.types.DataBuffer())
    r = stream.next()
    assert r.error.kind == Kind.INPUT and "no variant" in r.error.message, r
    stream.send(init=pb.streaming.StreamInit(manifest_json=direct_vad))
    r = stream.next()
    assert r.error.kind == Kind.INPUT and "init" in r.error.context, r
    # A refused buffer used no sequence number: the next chunk is still 1.
    stream.chunk(1, audio(pb, np.zeros(512)))
    r = stream.next()
    assert r.WhichOneof("response") == "result" and r.result.sequence == 1, r
    stream.half_close()
    responses = stream.rest()
    assert responses[-1].WhichOneof("response") == "closed" and responses[-1].closed.chunks == 2


# ---------------------------------------------------------------- 5. auth


def test_auth_refuses_missing_and_wrong_tokens(auth_server, pb):
    ch = auth_server.channel()
    stubs = Stubs(pb, ch)
    good = [("authorization", "Bearer secret2")]
    one = audio_inputs(pb, np.zeros(16), 16)
    for metadata in (None, [("authorization", "Bearer nope")], [("authorization", "secret1")],
                     [("authorization", "Bearer secret1x")]):
        err = rpc_error(execute, stubs, pb, PASSTHROUGH_JSON, one, metadata=metadata)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, err)
        err = rpc_error(stubs.signaling.GetPeers, pb.signaling.GetPeersRequest(), metadata=metadata)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, err)
        sig = SignalStream(pb, ch, metadata=metadata)
        sig.send(announce=pb.signaling.AnnounceRequest(peer_id="intruder"))
        assert sig.wait_end()[0] == grpc.StatusCode.UNAUTHENTICATED
        sig.close()
        stream = PipelineStream(pb, ch, metadata=metadata)
        stream.send(init=pb.streaming.StreamInit(manifest_json=PASSTHROUGH_JSON))
        assert rpc_error(stream.next).code() == grpc.StatusCode.UNAUTHENTICATED
        stream.half_close()

    # Nothing got in; the right token works everywhere.
    assert stubs.signaling.GetPeers(pb.signaling.GetPeersRequest(), metadata=good).peers == []
    r = execute(stubs, pb, PASSTHROUGH_JSON, one, metadata=good)
    assert r.WhichOneof("outcome") == "result" and len(r.result.outputs) == 1
    sig = SignalStream(pb, ch, metadata=[("authorization", "Bearer secret1")])
    try:
        assert sig.announce("member").WhichOneof("response") == "ack"
        peers = stubs.signaling.GetPeers(pb.signaling.GetPeersRequest(), metadata=good).peers
        assert [p.peer_id for p in peers] == ["member"]
    finally:
        sig.close()

    # Health and reflection stay open.
    r = stubs.health.Check(health_pb2.HealthCheckRequest(service=SERVICES[0]), timeout=5)
    assert r.status == health_pb2.HealthCheckResponse.SERVING
    assert set(SERVICES) <= set(ProtoReflectionDescriptorDatabase(ch).get_services())


# ---------------------------------------------------------------- 6. limits


def test_oversized_messages_are_resource_exhausted(limited_server, pb):
    ch = limited_server.channel()
    stubs = Stubs(pb, ch)
    big = np.zeros(300_000, dtype="<f4")  # 1.2 MB of samples in one message
    err = rpc_error(execute, stubs, pb, PASSTHROUGH_JSON, audio_inputs(pb, big, len(big)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "too large" in err.details(), err
    assert healthy(stubs, pb)

    # The same inside a stream, after init.
    stream = PipelineStream(pb, ch)
    stream.send(init=pb.streaming.StreamInit(manifest_json=PASSTHROUGH_JSON))
    assert stream.next().WhichOneof("response") == "ready"
    stream.chunk(0, audio(pb, big))
    err = rpc_error(stream.rest)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "too large" in err.details(), err

    # And on a Signal stream.
    sig = SignalStream(pb, ch)
    assert sig.announce("big-talker").WhichOneof("response") == "ack"
    sig.send(offer=pb.signaling.OfferRequest(to_peer_id="big-talker", sdp="x" * 1_200_000))
    assert sig.wait_end()[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and "too large" in sig.details, sig.details
    sig.close()
    assert healthy(stubs, pb)


def test_memory_limit_stops_an_execution(limited_server, pb):
    stubs = Stubs(pb, limited_server.channel())
    # 0.9 MB in (under both limits); the same again comes out, past the 1 MB for the call.
    inputs = audio_inputs(pb, np.ones(225_000, dtype="<f4"), 25_000)
    err = rpc_error(execute, stubs, pb, PASSTHROUGH_JSON, inputs)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "memory limit" in err.details(), err
    assert healthy(stubs, pb)
    # Half of that fits.
    r = execute(stubs, pb, PASSTHROUGH_JSON, inputs[:4])
    assert r.WhichOneof("outcome") == "result" and len(r.result.outputs) == 4


def test_time_limit_stops_an_execution(server, pb):
    stubs = Stubs(pb, server.channel())
    inputs = audio_inputs(pb, speech_16k(), 512)
    err = rpc_error(execute, stubs, pb, VAD_JSON, inputs, timeout_ms=1)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert "time limit of 1 ms" in err.details(), err  # the server's, not the client's deadline
    assert healthy(stubs, pb)
    r = execute(stubs, pb, PASSTHROUGH_JSON, inputs[:3])
    assert r.WhichOneof("outcome") == "result" and len(r.result.outputs) == 3


def test_max_timeout_caps_executions_and_idle_streams(short_server, pb):
    stubs = Stubs(pb, short_server.channel())
    # About 34 s of speech: several seconds of VAD work, asked to finish within a minute.
    speech = np.tile(speech_16k(), 3)
    err = rpc_error(execute, stubs, pb, VAD_JSON, audio_inputs(pb, speech, 1024), timeout_ms=60_000)
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err
    assert "time limit of 1000 ms" in err.details(), err
    assert healthy(stubs, pb)

    stream = PipelineStream(pb, short_server.channel())
    stream.send(init=pb.streaming.StreamInit(manifest_json=PASSTHROUGH_JSON))
    assert stream.next().WhichOneof("response") == "ready"
    started = time.monotonic()
    err = rpc_error(stream.rest)  # sends nothing more
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and "no message for 1 s" in err.details(), err
    assert 0.9 < time.monotonic() - started < 10
    stream.close()


def test_call_rate_is_limited_per_connection(rate_server, pb):
    stubs = Stubs(pb, rate_server.channel(new_connection=True))
    outcomes = []
    for _ in range(40):
        try:
            stubs.signaling.GetPeers(pb.signaling.GetPeersRequest(), timeout=5)
            outcomes.append("ok")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            outcomes.append("refused")
    assert outcomes[:10] == ["ok"] * 10, outcomes  # the burst: twice the rate
    assert outcomes.count("refused") >= 5, outcomes
    other = Stubs(pb, rate_server.channel(new_connection=True))
    assert other.signaling.GetPeers(pb.signaling.GetPeersRequest(), timeout=5).peers == []
    # Health is not counted.
    for _ in range(20):
        r = stubs.health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert r.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------- 7. peer ids and bad requests


def test_peer_id_conflicts_take_over_and_bad_requests(server, pb):
    ch = server.channel()
    stubs = Stubs(pb, ch)
    s = pb.signaling
    first, second, third, late = (SignalStream(pb, ch) for _ in range(4))
    try:
        assert first.announce("dup").WhichOneof("response") == "ack"
        r = second.request("again", announce=s.AnnounceRequest(peer_id="dup"))
        assert r.request_id == "again"
        expect_error(r, "ALREADY_EXISTS", "PEER_ID_TAKEN")
        assert second.announce("dup-2").WhichOneof("response") == "ack"  # still usable

        # Not announced yet.
        r = late.request("early", offer=s.OfferRequest(to_peer_id="dup", sdp="v=0"))
        assert r.request_id == "early"
        expect_error(r, "FAILED_PRECONDITION", "NOT_ANNOUNCED")

        # Take-over: the new stream owns the id, the old one ends with ALREADY_EXISTS.
        ack = third.announce("dup", take_over=True)
        assert ack.WhichOneof("response") == "ack", ack
        status, details = first.wait_end()
        assert status == grpc.StatusCode.ALREADY_EXISTS and "dup" in details, (status, details)
        peers = [p.peer_id for p in stubs.signaling.GetPeers(s.GetPeersRequest()).peers]
        assert peers.count("dup") == 1 and "dup-2" in peers
        assert second.request(offer=s.OfferRequest(to_peer_id="dup", sdp="v=0 x")).HasField("ack")
        assert third.notification("offer").from_peer_id == "dup-2"

        # Unknown peer, empty sdp, nothing set, second announce: each an error, the stream goes on.
        r = second.request("u1", offer=s.OfferRequest(to_peer_id="nobody", sdp="v=0"))
        assert r.request_id == "u1"
        assert "nobody" in expect_error(r, "NOT_FOUND", "PEER_NOT_FOUND").message
        r = second.request("u2", answer=s.AnswerRequest(to_peer_id="dup", sdp=""))
        assert r.request_id == "u2" and "sdp" in expect_error(r, "INVALID_ARGUMENT").message
        r = second.request("u2b", answer=s.AnswerRequest(to_peer_id="dup", sdp="v=0", type="offer"))
        assert "'offer'" in expect_error(r, "INVALID_ARGUMENT").message
        r = second.request("u3", offer=s.OfferRequest(to_peer_id="", sdp="v=0"))
        assert "to_peer_id" in expect_error(r, "INVALID_ARGUMENT").message
        r = second.request("u4")
        assert r.request_id == "u4"
        expect_error(r, "INVALID_ARGUMENT")
        r = second.request("u5", announce=s.AnnounceRequest(peer_id="dup-3"))
        assert "already announced" in expect_error(r, "INVALID_ARGUMENT").message
        r = second.request("u6", ice_candidate=s.IceCandidateRequest(
            to_peer_id="dup", candidate="candidate:x", sdp_mline_index=70000))
        expect_error(r, "INVALID_ARGUMENT")
        r = late.request("u7", announce=s.AnnounceRequest(peer_id=""))
        expect_error(r, "INVALID_ARGUMENT")
        for bad in ("[1]", "{not json"):
            r = late.request("u8", announce=s.AnnounceRequest(
                peer_id="ext", capabilities=s.PeerCapabilities(audio=True, extensions=bad)))
            assert "capabilities.extensions" in expect_error(r, "INVALID_ARGUMENT").message
        # Extensions travel with the peer, beside audio, video and data.
        r = late.request("u9", announce=s.AnnounceRequest(peer_id="ext", capabilities=s.PeerCapabilities(
            audio=True, extensions='{"screen_share": true, "audio": false}')))
        assert r.WhichOneof("response") == "ack", r
        (ext,) = [p for p in stubs.signaling.GetPeers(s.GetPeersRequest()).peers if p.peer_id == "ext"]
        assert ext.capabilities.audio and json.loads(ext.capabilities.extensions) == {"screen_share": True}
        assert second.request(offer=s.OfferRequest(to_peer_id="dup", sdp="v=0 y")).HasField("ack")
        assert third.notification("offer").sdp == "v=0 y"
        third.sync()
        assert third.buffered("offer") == [], "a refused request was relayed"
    finally:
        for x in (first, second, third, late):
            x.close()


# ---------------------------------------------------------------- 8. metrics


def metric(text, name, labels=""):
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    assert m, f"{name}{{{labels}}} not in metrics:\n{text}"
    return float(m.group(1))


def test_metrics_show_peers_messages_and_executions(fresh_server, pb):
    srv = fresh_server
    ch = srv.channel()
    stubs = Stubs(pb, ch)
    s = pb.signaling
    text = srv.metrics_text()
    assert metric(text, "remotemedia_signaling_peers") == 0
    assert metric(text, "remotemedia_pipeline_executions_total", 'outcome="ok"') == 0

    a, b = SignalStream(pb, ch), SignalStream(pb, ch)
    try:
        a.announce("m-a")
        b.announce("m-b")
        a.request(offer=s.OfferRequest(to_peer_id="m-b", sdp="v=0"))
        a.request(offer=s.OfferRequest(to_peer_id="m-none", sdp="v=0"))
        b.request(ice_candidate=s.IceCandidateRequest(to_peer_id="m-a", candidate="candidate:1"))
        a.sync()

        async def ws_peer():
            from webrtc_peer import Signaling
            sig = await Signaling.connect(srv.ws_port)
            reply = await sig.call("peer.announce", {"peer_id": "m-ws", "capabilities": {}})
            assert "result" in reply, reply
            text = srv.metrics_text()
            await sig.close()
            return text

        text = asyncio.run(ws_peer())
        assert metric(text, "remotemedia_signaling_peers") == 3  # both transports
        assert metric(text, "remotemedia_active_streams", 'service="signaling"') == 2
        assert metric(text, "remotemedia_signaling_pending_offers") == 1
        counts = {t: metric(text, "remotemedia_signaling_messages_total", f'type="{t}"')
                  for t in ("announce", "offer", "answer", "ice_candidate", "disconnect", "list_peers")}
        assert counts == {"announce": 2, "offer": 2, "answer": 0, "ice_candidate": 1,
                          "disconnect": 0, "list_peers": 1}, counts
        # RemoteMedia's names for the same numbers.
        assert metric(text, "grpc_webrtc_signaling_peers_total") == 3
        assert metric(text, "grpc_webrtc_signaling_streams_active") == 2
        assert metric(text, "grpc_webrtc_signaling_pending_offers") == 1
        assert metric(text, "grpc_webrtc_signaling_messages_total", 'type="offer"') == 2

        b.request(answer=s.AnswerRequest(to_peer_id="m-a", sdp="v=0"))
        r = execute(stubs, pb, PASSTHROUGH_JSON, audio_inputs(pb, np.zeros(32), 16))
        assert r.HasField("result")
        assert execute(stubs, pb, "{}", []).HasField("error")
        text = srv.metrics_text()
        assert metric(text, "remotemedia_signaling_pending_offers") == 0
        assert metric(text, "remotemedia_signaling_messages_total", 'type="answer"') == 1
        assert metric(text, "remotemedia_pipeline_executions_total", 'outcome="ok"') == 1
        assert metric(text, "remotemedia_pipeline_executions_total", 'outcome="error"') == 1
        assert metric(text, "remotemedia_pipeline_execution_seconds_count") == 2
        assert metric(text, "remotemedia_pipeline_execution_seconds_bucket", 'le="+Inf"') == 2
        assert "# TYPE remotemedia_pipeline_execution_seconds histogram" in text
    finally:
        a.close()
        b.close()
    deadline = time.monotonic() + 5
    while metric(srv.metrics_text(), "remotemedia_signaling_peers") != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    text = srv.metrics_text()
    assert metric(text, "remotemedia_signaling_peers") == 0
    assert metric(text, "remotemedia_active_streams", 'service="signaling"') == 0


# ---------------------------------------------------------------- 9. interop


def split_candidates(sdp):
    """The SDP without its candidate lines, and those candidates as (line, mid, m-line index)."""
    lines = sdp.splitlines()
    mids, index = {}, -1
    for line in lines:
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            mids[index] = line[len("a=mid:"):]
    kept, candidates, index = [], [], -1
    for line in lines:
        if line.startswith("m="):
            index += 1
        if line.startswith("a=candidate:"):
            candidates.append((line[2:], mids.get(index), index))
        elif line != "a=end-of-candidates":
            kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


async def grpc_answerer(pb, server, peer_id, ws_peer_id, done):
    """A gRPC Signal peer: answers the offer from the WebSocket peer, sends its candidates
    separately, echoes data channel messages back with a prefix, and reports what it saw."""
    from aiortc import RTCPeerConnection

    s = pb.signaling
    seen = {"messages": [], "joined": None, "left": None}
    async with grpc.aio.insecure_channel(server.grpc) as ch:
        call = pb.signaling_grpc.WebRtcSignalingStub(ch).Signal()
        inbox = asyncio.Queue()

        async def read():
            async for r in call:
                await inbox.put(r)

        reader = asyncio.ensure_future(read())

        async def next_of(kind, event=None):
            while True:
                r = await asyncio.wait_for(inbox.get(), 15)
                if r.WhichOneof("response") == "error":
                    raise AssertionError(f"signaling error: {r}")
                if r.WhichOneof("response") != kind:
                    continue
                if event is None:
                    return r
                if r.notification.WhichOneof("event") == event:
                    return getattr(r.notification, event)

        await call.write(s.SignalingRequest(request_id="hello", announce=s.AnnounceRequest(
            peer_id=peer_id, capabilities=s.PeerCapabilities(data=True))))
        assert (await next_of("ack")).request_id == "hello"
        done["announced"].set()

        pc = RTCPeerConnection()
        try:
            return await answer_and_talk(pb, call, pc, next_of, ws_peer_id, done, seen)
        finally:
            await pc.close()
            reader.cancel()


async def answer_and_talk(pb, call, pc, next_of, ws_peer_id, done, seen):
    from aiortc import RTCSessionDescription

    s = pb.signaling
    opened = asyncio.get_running_loop().create_future()

    @pc.on("datachannel")
    def on_channel(channel):
        @channel.on("message")
        def on_message(message):
            seen["messages"].append(message)
            channel.send(f"grpc got: {message}")

        if not opened.done():
            opened.set_result(channel)

    joined = await next_of("notification", "peer_joined")
    seen["joined"] = joined.peer.peer_id
    offer = await next_of("notification", "offer")
    assert offer.from_peer_id == ws_peer_id
    offered = [line for line in offer.sdp.splitlines() if line.startswith("a=candidate:")]
    assert offered and all(" 127.0.0.1 " in c for c in offered), offered
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    sdp, candidates = split_candidates(pc.localDescription.sdp)
    assert candidates, pc.localDescription.sdp
    assert all(" 127.0.0.1 " in c for c, _, _ in candidates), candidates
    await call.write(s.SignalingRequest(request_id="answer", answer=s.AnswerRequest(
        to_peer_id=ws_peer_id, sdp=sdp)))
    for i, (cand, mid, index) in enumerate(candidates):
        trickle = s.IceCandidateRequest(to_peer_id=ws_peer_id, candidate=cand, sdp_mid=mid,
                                        sdp_mline_index=index)
        await call.write(s.SignalingRequest(request_id=f"cand-{i}", ice_candidate=trickle))
    done["candidates"].set_result(candidates)

    channel = await asyncio.wait_for(opened, 15)
    await asyncio.wait_for(done["ws_sent"].wait(), 15)
    for _ in range(100):
        if seen["messages"]:
            break
        await asyncio.sleep(0.05)
    channel.send("hello from grpc")
    seen["state"] = pc.connectionState
    left = await next_of("notification", "peer_left")
    seen["left"] = left.peer_id
    await call.done_writing()
    return seen


def test_websocket_peer_and_grpc_peer_connect_through_one_server(server, pb):
    async def scenario():
        done = {"announced": asyncio.Event(), "ws_sent": asyncio.Event(),
                "candidates": asyncio.get_running_loop().create_future()}
        answerer = asyncio.ensure_future(grpc_answerer(pb, server, "grpc-peer", "ws-peer", done))

        async def until(awaitable, timeout=15):
            """Waits for `awaitable`, or fails with the answerer's error if it ends first."""
            task = asyncio.ensure_future(awaitable)
            finished, _ = await asyncio.wait({task, answerer}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
            if task in finished:
                return task.result()
            task.cancel()
            if answerer in finished:
                answerer.result()  # raises what went wrong there
                raise AssertionError(f"the gRPC peer ended early: {answerer.result()}")
            raise AssertionError(f"timed out waiting for {awaitable}")

        await until(done["announced"].wait())
        ws = WsPeer("ws-peer")
        try:
            # Announce, offer (full SDP with its candidates) and wait for the answer (no candidates).
            assert await until(ws.call(server.ws_port, target="grpc-peer", recv=())) is None
            candidates = await until(done["candidates"])
            for cand, mid, index in candidates:
                params = await ws.signaling.notification("peer.ice_candidate")
                assert params["from"] == "grpc-peer" and params["candidate"] == cand, params
                assert params["sdp_mid"] == mid and params["sdp_m_line_index"] == index, params
                await ws.add_candidate(params)
            await ws.wait_connected()
            for _ in range(100):
                if ws.channel.readyState == "open":
                    break
                await asyncio.sleep(0.05)
            ws.channel.send("hello from ws")
            done["ws_sent"].set()
            for _ in range(200):
                if len(ws.received) >= 2:
                    break
                await asyncio.sleep(0.05)
            assert sorted(ws.received) == ["grpc got: hello from ws", "hello from grpc"], ws.received
        finally:
            await ws.close()
        seen = await asyncio.wait_for(answerer, 15)
        assert seen["joined"] == "ws-peer" and seen["left"] == "ws-peer", seen
        assert seen["messages"] == ["hello from ws"] and seen["state"] == "connected", seen

    asyncio.run(asyncio.wait_for(scenario(), 60))


def test_sigterm_stops_the_server_like_ctrl_c():
    """Kubernetes and systemd stop a service with SIGTERM: the server stops accepting, closes
    its ports and exits 0 (before, SIGTERM's default action killed it: exit status -15)."""
    import signal
    import socket

    s = ServerProcess()
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(20) == 0, s.log_text()[-2000:]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.grpc_port), timeout=2).close()
