"""WebRTC elements that call: pipeline to pipeline across gst-launch-1.0 processes, over every
signaling they speak (another element's embedded server, remotemedia-server's ws:// and
grpc://), glare, a peer coming back, and a three-pipeline mesh. Each receiver writes what it
hears to a raw file, and the tone's frequency tells whose audio it is."""

import re
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from server_process import ServerProcess
from webrtc_peer import free_port

RATE = 48000
RAW = f"audio/x-raw,format=S16LE,channels=1,rate={RATE}"


class Launch:
    """A gst-launch-1.0 process with `-m`, its output in a file."""

    def __init__(self, args, env):
        self.args = args
        self.env = env
        self.out = tempfile.NamedTemporaryFile("w+", prefix="gst-launch-", suffix=".log")
        self.proc = subprocess.Popen(["gst-launch-1.0", "-m", *args], stdout=self.out,
                                     stderr=subprocess.STDOUT, env=env)

    def log(self):
        self.out.flush()
        return Path(self.out.name).read_text(errors="replace")

    def story(self, lines=40):
        """What matters of the log when a wait fails: our elements' messages, warnings, errors
        and panics, without the state changes."""
        keep = [line for line in self.log().splitlines()
                if re.search(r"remotemedia|WARN|ERROR|rror|panicked|refused|failed", line)
                and "state-changed" not in line and "stream-status" not in line]
        return f"{self.args[:4]} ...\n" + "\n".join(keep[-lines:])

    def count(self, pattern):
        return len(re.findall(pattern, self.log()))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def launches(gst_env):
    made = []

    def make(*args):
        p = Launch(list(args), gst_env)
        made.append(p)
        return p

    yield make
    for p in made:
        p.stop()


def wait_until(predicate, what, timeout=30, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for p in procs:
            assert p.proc.poll() is None, f"{p.args[:3]} exited while waiting for {what}:\n{p.log()[-3000:]}"
        time.sleep(0.1)
    logs = "\n".join(p.story() for p in procs)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def tone(path, seconds=1.0):
    """(dominant frequency, rms) of the last `seconds` written to a raw S16 mono file."""
    data = np.fromfile(path, dtype=np.int16).astype(np.float64) if Path(path).exists() else np.zeros(0)
    tail = data[-int(RATE * seconds):]
    if len(tail) < RATE * seconds / 2:
        return None, 0.0
    spectrum = np.abs(np.fft.rfft(tail * np.hanning(len(tail))))
    return np.argmax(spectrum) * RATE / len(tail), float(np.sqrt(np.mean(tail ** 2)))


def hears(path, freq, seconds=1.0):
    f, rms = tone(path, seconds)
    return f is not None and abs(f - freq) < 5 and rms > 1000


def sender(peer_id, freq, signaling, *extra):
    return ["audiotestsrc", "is-live=true", f"freq={freq}", "!", "remotemediawebrtcsink",
            f"peer-id={peer_id}", "ice-loopback-only=true", *signaling, *extra]


def receiver(peer_id, out, signaling, *extra):
    return ["remotemediawebrtcsrc", "name=rx", f"peer-id={peer_id}", "ice-loopback-only=true",
            *signaling, *extra, "rx.", "!", "queue", "!", "audioconvert", "!", "audioresample", "!",
            RAW, "!", "filesink", f"location={out}"]


def embedded(port):
    return [f"signaling-port={port}"]


def url(u):
    return [f"signaling-url={u}"]


@pytest.fixture
def server():
    s = ServerProcess()
    yield s
    s.stop()


@pytest.mark.parametrize("caller", ["src", "sink"])
def test_pipeline_to_pipeline_over_an_elements_embedded_signaling(launches, tmp_path, caller):
    """The src calls the sink (it plays the sink's tone), or the sink calls the src (it pushes
    its tone); the other element's embedded server is the signaling of both."""
    port = free_port()
    out = tmp_path / "heard.raw"
    if caller == "src":
        tx = launches(*sender("cam1", 660, embedded(port)))
        wait_until(lambda: tx.count("PLAYING") > 0, "the sink to play", procs=[tx])
        rx = launches(*receiver("studio", out, url(f"ws://127.0.0.1:{port}/ws"), "connect-to=cam1"))
    else:
        rx = launches(*receiver("studio", out, embedded(port)))
        wait_until(lambda: rx.count("PLAYING") > 0, "the src to play", procs=[rx])
        tx = launches(*sender("cam1", 660, url(f"ws://127.0.0.1:{port}/ws"), "connect-to=studio"))
    wait_until(lambda: hears(out, 660), "the 660 Hz tone at the receiver", procs=[tx, rx])
    assert rx.count(r"peer-connected, peer-id=\(string\)cam1") == 1, rx.log()[-2000:]
    assert tx.count(r"peer-connected, peer-id=\(string\)studio") == 1, tx.log()[-2000:]


@pytest.mark.parametrize("scheme", ["ws", "grpc"])
def test_pipeline_to_pipeline_over_remotemedia_server(launches, server, tmp_path, scheme):
    signaling = url(f"ws://{server.ws}/ws" if scheme == "ws" else f"grpc://{server.grpc}")
    out = tmp_path / "heard.raw"
    # The callee comes second: the call starts when it is announced.
    rx = launches(*receiver("studio", out, signaling, "connect-to=cam1"))
    time.sleep(1.0)
    tx = launches(*sender("cam1", 550, signaling))
    wait_until(lambda: hears(out, 550), "the 550 Hz tone at the receiver", procs=[tx, rx])


def test_glare_settles_on_one_connection(launches, server, tmp_path):
    """Both call each other at the same moment: one connection, media flows, none doubled."""
    signaling = url(f"ws://{server.ws}/ws")
    out = tmp_path / "heard.raw"
    rx = launches(*receiver("studio", out, signaling, "connect-to=cam1"))
    tx = launches(*sender("cam1", 770, signaling, "connect-to=studio"))
    wait_until(lambda: hears(out, 770), "the 770 Hz tone", procs=[tx, rx])
    time.sleep(2.0)
    assert hears(out, 770)
    assert rx.count(r"peer-connected, peer-id=\(string\)cam1") == 1, rx.log()[-3000:]
    assert tx.count(r"peer-connected, peer-id=\(string\)studio") == 1, tx.log()[-3000:]
    assert rx.count(r"peer-disconnected") == 0 and tx.count(r"peer-disconnected") == 0


def test_the_caller_calls_again_when_the_peer_comes_back(launches, server, tmp_path):
    signaling = url(f"ws://{server.ws}/ws")
    out = tmp_path / "heard.raw"
    rx = launches(*receiver("studio", out, signaling, "connect-to=cam1"))
    tx = launches(*sender("cam1", 440, signaling))
    wait_until(lambda: hears(out, 440), "the first sender's 440 Hz", procs=[tx, rx])
    tx.stop()
    wait_until(lambda: rx.count(r"peer-disconnected, peer-id=\(string\)cam1") == 1, "cam1 leaving", procs=[rx])
    # The same peer id comes back with another tone.
    tx2 = launches(*sender("cam1", 880, signaling))
    wait_until(lambda: hears(out, 880), "the returning sender's 880 Hz", procs=[tx2, rx])
    assert rx.count(r"peer-connected, peer-id=\(string\)cam1") == 2


def test_a_connect_to_peer_that_never_comes_is_no_error(launches, server, tmp_path):
    rx = launches(*receiver("studio", tmp_path / "none.raw", url(f"ws://{server.ws}/ws"), "connect-to=nobody"))
    wait_until(lambda: rx.count("PLAYING") > 0, "the src to play", procs=[rx])
    time.sleep(2.0)
    assert rx.proc.poll() is None
    assert "error" not in rx.log().lower(), rx.log()[-2000:]


def mesh_node(name, freq, signaling, others, tmp_path):
    """One pipeline of the mesh: a sink sending its tone as `<name>-tx`, a src `<name>-rx`
    calling the other senders, each of their streams to a file of its own."""
    files = [tmp_path / f"{name}-{i}.raw" for i in range(len(others))]
    args = sender(f"{name}-tx", freq, signaling)
    args += ["remotemediawebrtcsrc", "name=rx", f"peer-id={name}-rx", "ice-loopback-only=true",
             *signaling, "connect-to=" + ",".join(f"{o}-tx" for o in others)]
    for f in files:
        args += ["rx.", "!", "queue", "!", "audioconvert", "!", "audioresample", "!", RAW, "!",
                 "filesink", f"location={f}"]
    return args, files


def heard(files):
    return sorted(round(f) for f, rms in map(tone, files) if f is not None and rms > 1000)


def test_three_pipeline_mesh_and_one_leaving(launches, server, tmp_path):
    signaling = url(f"ws://{server.ws}/ws")
    freqs = {"a": 440, "b": 660, "c": 880}
    nodes = {}
    for name in freqs:
        others = [o for o in freqs if o != name]
        args, files = mesh_node(name, freqs[name], signaling, others, tmp_path)
        nodes[name] = (launches(*args), files, others)
    procs = [p for p, _, _ in nodes.values()]
    for name, (proc, files, others) in nodes.items():
        want = sorted(freqs[o] for o in others)
        wait_until(lambda: heard(files) == want, f"{name} hearing {want}", timeout=40, procs=procs)
        # Two pads, one per remote sender, each named by its peer.
        assert proc.count(r"peer-connected, peer-id=\(string\)[bc]?[a-c]-tx") >= 2
    # c leaves; a and b keep hearing each other.
    nodes["c"][0].stop()
    for name in "ab":
        proc, files, _ = nodes[name]
        wait_until(lambda: proc.count(r"peer-disconnected, peer-id=\(string\)c-tx") >= 1, f"{name} seeing c leave",
                   procs=[nodes["a"][0], nodes["b"][0]])
    sizes = {n: [f.stat().st_size for f in nodes[n][1]] for n in "ab"}
    time.sleep(2.0)
    for name, other in (("a", "b"), ("b", "a")):
        files = nodes[name][1]
        grown = [f for f, before in zip(files, sizes[name]) if f.stat().st_size > before + RATE]
        assert len(grown) == 1, f"{name}: one stream goes on"
        assert hears(grown[0], freqs[other]), f"{name} still hears {other}"


def test_the_caller_recovers_from_an_ice_failure(launches, server, tmp_path):
    """The sink freezes (SIGSTOP) long enough for ICE to fail; the src calls again with backoff
    and hears it once it runs again."""
    import signal

    signaling = url(f"ws://{server.ws}/ws")
    out = tmp_path / "heard.raw"
    rx = launches(*receiver("studio", out, signaling, "connect-to=cam1"))
    tx = launches(*sender("cam1", 495, signaling))
    wait_until(lambda: hears(out, 495), "the tone", procs=[tx, rx])
    tx.proc.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: rx.count("RECONNECT_ATTEMPT") >= 1, "the src to retry after ICE failed", 40, [rx])
    finally:
        tx.proc.send_signal(signal.SIGCONT)
    size = out.stat().st_size
    wait_until(lambda: out.stat().st_size > size + RATE and hears(out, 495, 0.5), "the tone again", 40, [tx, rx])
    assert rx.count(r"peer-connected, peer-id=\(string\)cam1") >= 2


def test_ws_signaling_comes_back_after_the_server_restarts(launches, tmp_path):
    """remotemedia-server dies and comes back on the same port: both elements reconnect with the
    backoff their URL asks for, the call in progress keeps its media, and a new call goes
    through the restarted server."""
    ws_port = free_port()
    server = ServerProcess(ws=f"127.0.0.1:{ws_port}")
    try:
        signaling = url(f"ws://127.0.0.1:{ws_port}/ws?initial_backoff_ms=200&max_backoff_ms=500&max_attempts=40")
        out = tmp_path / "heard.raw"
        rx = launches(*receiver("studio", out, signaling, "connect-to=cam1"))
        tx = launches(*sender("cam1", 440, signaling))
        wait_until(lambda: hears(out, 440), "cam1's tone", procs=[tx, rx])
        server.kill()
        wait_until(lambda: rx.count("RECONNECT_ATTEMPT") >= 1 and tx.count("RECONNECT_ATTEMPT") >= 1,
                   "both elements retrying", 20, [tx, rx])
        size = out.stat().st_size
        time.sleep(1.0)
        assert out.stat().st_size > size + RATE, "the call's media goes on without signaling"
        server.start()
        wait_until(lambda: rx.count("signaling-reconnected") >= 1 and tx.count("signaling-reconnected") >= 1,
                   "both elements back on signaling", 20, [tx, rx])
        # cam1 restarts with another tone: the src calls it again through the restarted server.
        tx.stop()
        tx2 = launches(*sender("cam1", 880, signaling))
        wait_until(lambda: hears(out, 880), "the new call's tone", 30, [tx2, rx])
    finally:
        server.stop()


def test_a_peer_that_refuses_the_call_is_a_peer_error_naming_it(launches, server, tmp_path):
    """cam1 (a plain JSON-RPC client here) answers the src's offer with a failed state change:
    the src reports PEER_ERROR naming cam1 and the refusal, retries with backoff, and keeps
    serving the peer that does answer."""
    import asyncio
    import json

    import websockets

    signaling = url(f"ws://{server.ws}/ws")
    out = tmp_path / "heard.raw"
    rx = launches(*receiver("studio", out, signaling, "connect-to=cam1,cam2"))

    async def refuse_once():
        async with websockets.connect(f"ws://{server.ws}/ws") as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "peer.announce",
                                      "params": {"peer_id": "cam1", "capabilities": {}, "user_data": {}}}))
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
                if msg.get("method") == "peer.offer":
                    break
            await ws.send(json.dumps({"jsonrpc": "2.0", "method": "peer.state_change", "params": {
                "to": msg["params"]["from"], "state": "failed: not taking calls"}}))
            await asyncio.sleep(1.0)

    asyncio.run(refuse_once())
    wait_until(lambda: rx.count(r"code=\(string\)PEER_ERROR, peer-id=\(string\)cam1") >= 1, "the PEER_ERROR", 10, [rx])
    assert "not\\ taking\\ calls" in rx.log()
    tx = launches(*sender("cam2", 660, signaling))
    wait_until(lambda: hears(out, 660), "cam2 still served", 30, [tx, rx])
