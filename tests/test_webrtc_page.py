"""The page the WebRTC elements serve, looked at in headless Chromium (the flags of
tests/chromium.py): the shipped speech goes through Silero VAD, and the page's plot shades the
speech segments. The test reads the canvas pixels: the shade is where the VAD's segments are
and nowhere else. The server run also takes the screenshot README shows; UPDATE_SCREENSHOT=1
writes it to docs/page.png."""

import asyncio
import base64
import json
import os
import struct
import wave
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

from bus import BusLog  # noqa: E402
from chromium import Browser  # noqa: E402
from test_webrtc_server import SPEECH, VAD, ServerPipeline  # noqa: E402
from webrtc_peer import free_port  # noqa: E402

Gst.init(None)
ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "page.png"
VAD_PARAMS = json.loads(VAD.read_text())["nodes"][1]["params"]
# The level of what the browser sends (per channel), then the VAD of examples/launch/vad.json.
LEVEL_AND_VAD = json.dumps({"version": "v1", "nodes": [
    {"id": "level", "node_type": "AudioLevelNode"},
    {"id": "resample", "node_type": "FastResampleNode", "params": {"target_rate": 16000, "channels": 1}},
    {"id": "vad", "node_type": "SileroVADNode", "params": VAD_PARAMS},
], "connections": [{"from": "level", "to": "resample"}, {"from": "resample", "to": "vad"}]})
# A screenshot-sized window at one canvas pixel per CSS pixel.
WINDOW = ["--window-size=900,1100", "--force-device-scale-factor=1", "--hide-scrollbars"]

# Two speech segments are fully in the plot's window (the speech sample loops: 11.4 s, two
# segments each time round).
TWO_SEGMENTS_SHOWN = ("rm.plot.segments.filter(s => s.to !== null"
                      " && s.from >= rm.plot.geometry().from).length >= 2")

# Pauses the plot as a user would, draws it, and reads its pixels in the same task, so no
# result moves it in between. The segments expected come from the VAD results the page
# received (rm.results), not from the plot's own state; `cancel` is a cancelled speculation
# [from_ms, to_ms] sent to the page, or null.
CHECK_PLOT = """((cancel) => {
  document.getElementById('pause').click();
  rm.plot.draw();
  const g = rm.plot.geometry();
  const canvas = document.getElementById('plot');
  const W = canvas.width, H = canvas.height, px = g.dpr;
  const img = canvas.getContext('2d').getImageData(0, 0, W, H).data;
  const rgb = (hex) => [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
  const is = (color) => (x, y) => {
    const i = (y * W + x) * 4;
    return img[i] === color[0] && img[i + 1] === color[1] && img[i + 2] === color[2] && img[i + 3] === 255;
  };
  const isShade = is(rgb(rm.plot.color.speech));
  // VAD segments: a start, then an end that says where its speech began; the last may go on.
  const segments = [];
  let open = null, last = -Infinity;
  for (const r of rm.results) {
    if (r.node_id !== 'vad') continue;
    if (r.data.speech_probability !== undefined) last = Math.max(last, r.data.timestamp_ms);
    if (r.data.is_speech_start) open = r.data.timestamp_ms;
    if (r.data.is_speech_end) {
      segments.push([r.data.speech_start_ms ?? open, r.data.timestamp_ms]);
      open = null;
    }
  }
  if (open !== null) segments.push([open, null]);
  const shown = segments.filter(([a, b]) => (b ?? last) > g.from && a < g.to);
  // An ongoing segment ends at the newest VAD result.
  const edges = shown.map(([a, b]) => [g.x(Math.max(a, g.from)) * px, g.x(Math.min(b ?? last, g.to)) * px]);
  const laneY = Math.round((g.laneTop + g.laneBottom) / 2 * px);
  const [top, bottom] = [Math.ceil(g.top * px), Math.floor(g.bottom * px)];
  const out = { inside: 0, outside: 0, laneMisses: [], stray: [], areaShade: 0, area: 0 };
  for (let x = Math.ceil(g.left * px) + 1; x < Math.floor(g.right * px) - 1; x++) {
    // Column x covers x..x+1; 2 pixels either side of an edge are left out (antialiasing).
    const inside = edges.some(([a, b]) => x >= a + 2 && x + 1 <= b - 2);
    const outside = edges.every(([a, b]) => x + 1 <= a - 2 || x >= b + 2);
    if (inside) {
      out.inside++;
      if (!isShade(x, laneY)) out.laneMisses.push(x);
      for (let y = top; y < bottom; y++) { out.area++; if (isShade(x, y)) out.areaShade++; }
    } else if (outside) {
      out.outside++;
      for (let y = 0; y < H; y++) if (isShade(x, y)) { out.stray.push([x, y]); break; }
    }
  }
  const label = canvas.getAttribute('aria-label');
  const sec = (ms) => (ms / 1000).toFixed(1) + ' s';
  if (cancel) {
    // A red bar on top of the band, red hatching in it, and no red elsewhere on top.
    const isRed = is(rgb(rm.plot.color.cancelled));
    const [a, b] = cancel.map(ms => g.x(ms) * px);
    const barY = top + 1;
    Object.assign(out, { cancelColumns: 0, cancelBar: 0, hatch: 0, hatchArea: 0, redElsewhere: [] });
    for (let x = Math.ceil(g.left * px) + 1; x < Math.floor(g.right * px) - 1; x++) {
      if (x >= a + 2 && x + 1 <= b - 2) {
        out.cancelColumns++;
        if (isRed(x, barY)) out.cancelBar++;
        for (let y = top + 4; y < bottom; y++) {
          const i = (y * W + x) * 4;
          out.hatchArea++;
          if (img[i] > 150 && img[i + 1] < 150 && img[i + 2] < 150) out.hatch++;
        }
      } else if ((x + 1 <= a - 2 || x >= b + 2) && isRed(x, barY)) {
        out.redElsewhere.push(x);
      }
    }
    out.cancelLabelled = label.includes('cancelled speculations: ' + sec(cancel[0]) + ' to ' + sec(cancel[1]));
  }
  out.labelled = shown.filter(([a, b]) => b !== null && a >= g.from)
    .every(([a, b]) => label.includes(sec(a) + ' to ' + sec(b)));
  out.label = label;
  out.segments = shown;
  out.view = [g.from, g.to];
  out.paused = rm.plot.paused !== null && document.getElementById('pause').getAttribute('aria-pressed') === 'true';
  return out;
})"""


def check_plot_js(cancel=None):
    return f"{CHECK_PLOT}({json.dumps(cancel)})"


def check_plot(plot, known_segments):
    """The shade is in every pixel column of a segment (its lane, most of the plot above it)
    and in no column outside them; the label names the segments; their lengths are the
    sample's speech."""
    assert plot["paused"], plot
    assert plot["inside"] > 100 and plot["outside"] > 20, plot
    assert plot["laneMisses"] == [], plot
    assert plot["stray"] == [], plot
    assert plot["areaShade"] > 0.75 * plot["area"], plot
    assert plot["labelled"], plot
    complete = [b - a for a, b in plot["segments"] if b is not None and a >= plot["view"][0]]
    known = [b - a for a, b in known_segments]
    assert any(abs(d - k) < 500 for d in complete for k in known), (complete, known)


def png_size(data):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


def test_the_page_plots_the_speech_segments_of_the_servers_run(known_segments, tmp_path):
    s = ServerPipeline(manifest_json=LEVEL_AND_VAD)
    s.play()
    # The fake microphone plays the speech sample, looping.
    browser = Browser(f"http://127.0.0.1:{s.port}/?id=viewer",
                      extra_flags=[f"--use-file-for-fake-audio-capture={SPEECH}", *WINDOW])

    async def scenario():
        try:
            await browser.connect()
            await browser.wait_for("rm.state === 'connected'")
            await browser.wait_for(TWO_SEGMENTS_SHOWN, timeout=60)
            # A level meter per channel of what the browser sends, and the badges of the
            # level's alarms.
            await browser.wait_for("document.querySelectorAll('#meters .meter').length > 0")
            await browser.wait_for("!document.querySelector('#alarms [data-alarm=silent]').hidden")
            # For the screenshot: while the next sentence is spoken.
            await browser.wait_for("document.getElementById('speech').textContent === 'speaking'")
            plot = await browser.evaluate(check_plot_js())
            check_plot(plot, known_segments)
            # The text is still there: the speech state, the peers table with the server.
            assert await browser.evaluate("document.getElementById('speech').textContent") in ("speaking", "silence")
            peers = await browser.evaluate(
                "[...document.querySelectorAll('#peers tr')].map(r => [...r.cells].map(c => c.textContent))")
            assert ["remotemedia", "server", "audio, video, data"] == peers[0][:3], peers
            await screenshot(tmp_path / "page.png")
        finally:
            await browser.close()

    async def screenshot(path):
        # From the results to the end of the peers table.
        clip = await browser.evaluate(
            "(() => { const a = document.getElementById('results').getBoundingClientRect();"
            " const b = document.querySelector('table').getBoundingClientRect();"
            " const y = Math.floor(a.top + scrollY) - 8;"
            " return {x: 0, y, width: document.documentElement.clientWidth,"
            " height: Math.ceil(b.bottom + scrollY) + 8 - y, scale: 1}; })()")
        shot = await browser.command("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                                "captureBeyondViewport": True})
        data = base64.b64decode(shot["data"])
        width, height = png_size(data)
        assert (width, height) == (round(clip["width"]), round(clip["height"])), (width, height, clip)
        path.write_bytes(data)
        if os.environ.get("UPDATE_SCREENSHOT") == "1":
            SCREENSHOT.write_bytes(data)

    try:
        run(scenario())
    finally:
        s.stop()
    assert not s.errors, s.errors


class LoopingSpeech:
    """The shipped speech, looped without end, through the VAD of examples/launch/vad.json to
    remotemediawebrtcsink, which forwards the results to its peers. appsrc feeds the samples
    as fast as clocksync lets them through: in real time."""

    def __init__(self):
        with wave.open(str(SPEECH)) as w:
            self.rate = w.getframerate()
            assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
            self.pcm = w.readframes(w.getnframes())
        self.chunk = self.rate // 10 * 2  # 100 ms of S16 mono
        self.offset = 0
        self.pts = 0
        self.port = free_port()
        self.pipeline = Gst.parse_launch(
            f"appsrc name=speech format=time max-bytes={self.chunk * 2} "
            f"caps=audio/x-raw,format=S16LE,rate={self.rate},channels=1,layout=interleaved ! "
            "clocksync ! audioconvert ! audioresample ! audio/x-raw,rate=48000 ! "
            f"remotemediapipeline manifest={VAD} ! "
            f"remotemediawebrtcsink name=sink signaling-port={self.port} ice-loopback-only=true")
        self.pipeline.get_by_name("speech").connect("need-data", self.feed)
        self.sink = self.pipeline.get_by_name("sink")
        self.bus = BusLog(self.pipeline)
        assert self.pipeline.set_state(Gst.State.PLAYING) != Gst.StateChangeReturn.FAILURE

    def feed(self, src, _length):
        data = self.pcm[self.offset:self.offset + self.chunk]
        self.offset = (self.offset + self.chunk) % len(self.pcm) if len(data) == self.chunk else 0
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = self.pts
        buf.duration = Gst.util_uint64_scale(len(data) // 2, Gst.SECOND, self.rate)
        self.pts += buf.duration
        src.emit("push-buffer", buf)

    def stop(self):
        self.pipeline.set_state(Gst.State.NULL)


def test_the_page_plots_the_speech_segments_a_sink_forwards(known_segments):
    s = LoopingSpeech()
    browser = Browser(f"http://127.0.0.1:{s.port}/?id=viewer", extra_flags=WINDOW)

    async def scenario():
        try:
            await browser.connect()
            await browser.wait_for("rm.state === 'connected'")
            await browser.wait_for(TWO_SEGMENTS_SHOWN, timeout=60)
            # A cancelled speculation (as SpeculativeVADGate reports one) in the pause between
            # the two sentences, sent in the envelope the sink forwards results in.
            gap = await browser.evaluate(
                "(() => { const s = rm.plot.segments.filter(s => s.to !== null && s.from >= rm.plot.geometry().from);"
                " return [s[0].to + 300, s[1].from - 300]; })()")
            assert gap[1] - gap[0] > 500, gap
            cancel = {"type": "result", "node_id": "gate", "kind": "json", "pts_ms": gap[0], "data": {
                "type": "cancel_speculation", "timestamp_ms": gap[0], "from_ms": gap[0], "to_ms": gap[1]}}
            assert s.sink.emit("broadcast", json.dumps(cancel)) == 1
            await browser.wait_for("rm.plot.cancelled.length === 1")
            plot = await browser.evaluate(check_plot_js(gap))
            check_plot(plot, known_segments)
            assert plot["cancelColumns"] > 10 and plot["cancelBar"] == plot["cancelColumns"], plot
            assert plot["hatch"] > 0.15 * plot["hatchArea"], plot
            assert plot["redElsewhere"] == [] and plot["cancelLabelled"], plot
        finally:
            await browser.close()

    try:
        run(scenario())
        s.bus.poll()
    finally:
        s.stop()
