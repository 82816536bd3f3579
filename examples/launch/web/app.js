// The RemoteMedia demo page: JSON-RPC 2.0 signaling over WebSocket (peer.announce, peer.offer,
// peer.ice_candidate ...), one RTCPeerConnection to the element, its media and its data channel.
// Query parameters: ?peer=<element peer id>&id=<my id>&send=1 (send microphone and camera)
// &session=<room> (join that session) &token=<auth-token> (passed on to the WebSocket).
// Results of a manifest (the server's run for this peer, or what a sink forwards) are drawn: a
// scrolling plot of the speech probability with speech segments and cancelled speculations, a
// level meter per channel, the health alarms as badges; the same state stays readable as text.
// `window.rm` exposes state for tests and the console.
"use strict";

const query = new URLSearchParams(location.search);
const me = query.get("id") || "browser-" + Math.random().toString(36).slice(2, 8);
const rm = { me, state: "starting", peers: [], events: [], data: [], results: [], error: null, tracks: 0 };
const KEEP = 2000; // messages kept in rm.data / rm.results
window.rm = rm;

const $ = (id) => document.getElementById(id);
let pc = null;
let channel = null;
let target = null;
$("me").textContent = me;

function log(kind, detail) {
  const entry = { t: Date.now(), kind, detail };
  rm.events.push(entry);
  $("log").textContent += `${new Date().toLocaleTimeString()} ${kind} ${JSON.stringify(detail)}\n`;
}

function setState(state) {
  rm.state = state;
  $("state").textContent = state;
  if (target) renderPeers();
}

// --- JSON-RPC over WebSocket ---
const token = query.get("token");
const wsQuery = token ? `?token=${encodeURIComponent(token)}` : "";
const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${wsQuery}`);
let nextId = 1;
const pending = new Map();

function call(method, params) {
  const id = nextId++;
  ws.send(JSON.stringify({ jsonrpc: "2.0", id, method, params }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

ws.onmessage = (ev) => {
  const msg = JSON.parse(ev.data);
  if (msg.id !== undefined && msg.id !== null && pending.has(msg.id)) {
    const p = pending.get(msg.id);
    pending.delete(msg.id);
    msg.error ? p.reject(msg.error) : p.resolve(msg.result);
    return;
  }
  if (msg.error) return log("error", msg.error);
  onNotification(msg.method, msg.params || {});
};
ws.onclose = () => { if (rm.state !== "closed") setState("signaling closed"); };

// --- peers ---
function el(tag, props, ...children) {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...children);
  return e;
}

const SHOWN_CAPS = ["role", "audio", "video", "data"];

function renderPeers() {
  const body = $("peers");
  body.textContent = "";
  if (!rm.peers.length) body.append(el("tr", {}, el("td", { colSpan: 5 }, "no other peer announced")));
  for (const p of rm.peers) {
    const caps = p.capabilities || {};
    const role = caps.role || (caps.browser ? "browser" : "-");
    const media = ["audio", "video", "data"].filter((k) => caps[k]).join(", ") || "-";
    const details = [
      ...Object.entries(caps).filter(([k]) => !SHOWN_CAPS.includes(k)),
      ...Object.entries(p.user_data || {}),
    ].map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ");
    const row = el("tr", { className: p.peer_id === target ? "target" : "" },
      el("td", {}, el("code", {}, p.peer_id)), el("td", {}, role), el("td", {}, media),
      el("td", { className: "details" }, details), el("td", {}, p.peer_id === target ? `calling: ${rm.state}` : ""));
    body.append(row);
  }
}


async function onNotification(method, params) {
  switch (method) {
    case "peer.joined":
      rm.peers.push(params);
      renderPeers();
      log("peer.joined", params.peer_id);
      if (!target && isElement(params)) start(params.peer_id);
      break;
    case "peer.left":
      rm.peers = rm.peers.filter((p) => p.peer_id !== params.peer_id);
      renderPeers();
      log("peer.left", params);
      if (params.peer_id === target) hangUp("element left");
      break;
    case "peer.answer":
      await pc.setRemoteDescription({ type: "answer", sdp: params.sdp });
      log("answer", "applied");
      break;
    case "peer.ice_candidate":
      if (params.candidate) {
        await pc.addIceCandidate({
          candidate: params.candidate,
          sdpMid: params.sdp_mid || null,
          sdpMLineIndex: params.sdp_m_line_index ?? 0,
        });
      }
      break;
    case "peer.state_change":
      log("state_change", params.state);
      if (String(params.state).startsWith("failed")) rm.error = params.state;
      break;
    case "peer.disconnect":
      hangUp("disconnected by the element");
      break;
    default:
      log(method, params);
  }
}

function isElement(peer) {
  const role = peer.capabilities && peer.capabilities.role;
  return query.get("peer") ? peer.peer_id === query.get("peer") : ["sink", "src", "server"].includes(role);
}

function hangUp(why) {
  if (pc) pc.close();
  pc = null;
  setState("closed");
  log("closed", why);
}

async function start(peerId) {
  target = peerId;
  $("target").textContent = peerId;
  const role = (rm.peers.find((p) => p.peer_id === peerId) || {}).capabilities?.role;
  pc = new RTCPeerConnection({ iceServers: [] });
  rm.pc = pc;
  pc.onconnectionstatechange = () => setState(pc.connectionState);
  pc.onicecandidate = (ev) => {
    if (!ev.candidate) return;
    call("peer.ice_candidate", {
      to: peerId,
      candidate: ev.candidate.candidate,
      sdp_mid: ev.candidate.sdpMid,
      sdp_m_line_index: ev.candidate.sdpMLineIndex,
    }).catch((e) => log("error", e));
  };
  const media = new MediaStream();
  $("video").srcObject = media;
  pc.ontrack = (ev) => {
    rm.tracks++;
    media.addTrack(ev.track);
    log("track", ev.track.kind);
  };
  channel = pc.createDataChannel("remotemedia");
  channel.onmessage = (ev) => {
    keep(rm.data, ev.data);
    let msg = null;
    try { msg = JSON.parse(ev.data); } catch (_) { /* plain text */ }
    if (msg && msg.type === "result") return showResult(msg);
    log("data", ev.data);
  };
  channel.onopen = () => log("datachannel", "open");
  rm.channel = channel;

  const sending = query.get("send") === "1" || role === "src" || role === "server";
  if (sending) {
    const local = await navigator.mediaDevices.getUserMedia({ audio: true, video: role !== "server" });
    for (const track of local.getTracks()) pc.addTransceiver(track, { direction: role === "server" ? "sendrecv" : "sendonly" });
  }
  if (role !== "src" && role !== "server") {
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.addTransceiver("video", { direction: "recvonly" });
  }
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  setState("offering");
  try {
    await call("peer.offer", { to: peerId, sdp: offer.sdp });
  } catch (e) {
    rm.error = (e.data && e.data.code) || e.message;
    log("error", e);
    hangUp(rm.error);
  }
}

function keep(list, item) {
  list.push(item);
  if (list.length > KEEP) list.splice(0, list.length - KEEP);
}

// A result of the server's manifest run: VAD events update the speech state, and only
// speech starts/ends and text go to the log (probabilities come every few milliseconds).
function showResult(msg) {
  keep(rm.results, msg);
  $("result").textContent = `${msg.node_id} ${JSON.stringify(msg.data)}`;
  const d = msg.data || {};
  if (typeof d.has_speech === "boolean") $("speech").textContent = d.has_speech ? "speaking" : "silence";
  if (d.is_speech_start || d.is_speech_end || msg.kind === "text") log("result", msg);
  view(msg);
}

// --- the results drawn ---
// Every result says where on the stream it belongs (`timestamp_ms`, ms of stream time). The
// plot shows the last PLOT_MS of that timeline and scrolls with the newest VAD result.
const PLOT_MS = 20000;
const COLOR = {
  bg: "#ffffff", lane: "#eeeeee", speech: "#c8e6c9", line: "#1f4e9c",
  grid: "#d0d0d0", text: "#555555", cancelled: "#d32f2f",
};
const plot = {
  probs: [], // [ms, speech probability], in stream order
  segments: [], // {from, to, speculative}: speech from VAD starts and ends; to null while it lasts
  cancelled: [], // {from, to}: speculations taken back
  origin: null, // the oldest stream time of this timeline: the plot fills from there, then scrolls
  head: null, // the newest stream time of a VAD result
  paused: null, // the end of the view the plot was paused at
  pending: false,
  color: COLOR,
  window_ms: PLOT_MS,
};
rm.plot = plot;

function view(msg) {
  const d = msg.data;
  if (!d || typeof d !== "object") return;
  const t = d.timestamp_ms;
  switch (d.type) {
    case "cancel_speculation": return cancelSpeculation(d.from_ms, d.to_ms);
    case "speech_confirmed": return confirmSpeech(d);
    case "audio_level": return level(msg.node_id, d);
    case "silence_start": return setAlarm("silence", true, `since ${sec(t)}`);
    case "silence_end": return setAlarm("silence", false, `silence from ${sec(t)} lasted ${sec(d.duration_ms)}`);
    case "dropouts": return setAlarm("dropouts", true, `${d.count} short dropouts from ${sec(t)}`);
    case "clipping":
      return setAlarm("clipping", true, `${(100 * d.clipped_ratio).toFixed(1)} % clipped, crest factor ${d.crest_factor_db} dB at ${sec(t)}`);
    case "channel_imbalance": return balance("imbalance", t, `ch ${d.louder_channel + 1} louder by ${d.imbalance_db} dB at ${sec(t)}`);
    case "dead_channel": return balance("dead", t, `ch ${d.channel + 1} dead at ${sec(t)}`);
    case "balance_ok": return balance(null, t);
  }
  if (typeof t !== "number") return;
  // Speech starts and ends (SileroVADNode, SpeculativeVADGate): a start is stamped where speech
  // began, an end where it ended.
  if (d.is_speech_start) {
    advance(t, false);
    // Two nodes (a VAD and a gate) may report the same speech: one open segment.
    const open = plot.segments.findLast((s) => s.to === null);
    if (open) Object.assign(open, { from: Math.min(open.from, t), speculative: open.speculative && d.speculative === true });
    else plot.segments.push({ from: t, to: null, speculative: d.speculative === true });
  } else if (d.is_speech_end) {
    advance(t, false);
    const open = plot.segments.findLast((s) => s.to === null);
    const from = d.speech_start_ms ?? (open ? open.from : t);
    if (open) Object.assign(open, { from, to: t });
    else plot.segments.push({ from, to: t });
  } else if (typeof d.speech_probability === "number") {
    advance(t, true);
    if (!plot.probs.length || t > plot.probs[plot.probs.length - 1][0]) plot.probs.push([t, d.speech_probability]);
  } else {
    return;
  }
  redraw();
}

// A speculation confirmed: the open speculative segment is speech for good (a confirmation
// with both ends is a segment of its own unless one is shown there already).
function confirmSpeech(d) {
  const open = plot.segments.findLast((s) => s.to === null);
  if (open) open.speculative = false;
  else if (typeof d.from_ms === "number" && typeof d.to_ms === "number" &&
    !plot.segments.some((s) => s.from <= d.to_ms && (s.to ?? Infinity) >= d.from_ms)) {
    plot.segments.push({ from: d.from_ms, to: d.to_ms });
    advance(d.to_ms, false);
  }
  redraw();
}

// A speculation taken back (the gate's cancel_speculation result): its segment goes, a
// cancelled band shows where it was.
function cancelSpeculation(from, to) {
  if (typeof from !== "number" || typeof to !== "number") return;
  if (plot.cancelled.some((c) => c.from === from && c.to === to)) return;
  plot.segments = plot.segments.filter((s) => !(s.speculative && s.from < to && (s.to ?? Infinity) > from));
  plot.cancelled.push({ from, to });
  advance(to, false);
  redraw();
}

// Moves the plot's head to stream time `t`. A VAD result far behind it means a new timeline
// (a new run, a source that restarted): the old one is forgotten.
function advance(t, vad) {
  if (vad && plot.head !== null && t < plot.head - PLOT_MS) {
    plot.probs = [];
    plot.segments = [];
    plot.cancelled = [];
    plot.head = plot.origin = null;
    plot.paused = plot.paused === null ? null : t + PLOT_MS;
  }
  if (plot.head === null || t > plot.head) plot.head = t;
  if (plot.origin === null || t < plot.origin) plot.origin = t;
  // Keep what the plot can still show (the paused view included).
  const oldest = Math.min(plot.head, plot.paused ?? Infinity) - PLOT_MS;
  plot.origin = Math.max(plot.origin, oldest);
  const keep = plot.probs.findIndex(([ms]) => ms >= oldest);
  if (keep !== 0) plot.probs.splice(0, keep < 0 ? plot.probs.length : keep);
  plot.segments = plot.segments.filter((s) => s.to === null || s.to >= oldest);
  plot.cancelled = plot.cancelled.filter((s) => s.to >= oldest);
}

function sec(ms) {
  return typeof ms === "number" ? `${(ms / 1000).toFixed(1)} s` : "?";
}

function redraw() {
  if (plot.pending) return;
  plot.pending = true;
  // Drawn once per frame at most; a hidden page draws when it shows again.
  requestAnimationFrame(() => plot.draw());
}

// The stream time at the right edge of the view while it follows the stream.
plot.end = () => (plot.head === null ? PLOT_MS : Math.max(plot.head, plot.origin + PLOT_MS));

// Where things are on the canvas, in CSS pixels (`dpr` canvas pixels each).
plot.geometry = () => {
  const c = $("plot");
  const width = c.clientWidth || 600;
  const height = c.clientHeight || 190;
  const to = plot.paused ?? plot.end();
  const g = {
    dpr: window.devicePixelRatio || 1, width, height, from: to - PLOT_MS, to,
    left: 46, right: width - 10, top: 8, bottom: height - 42, laneTop: height - 36, laneBottom: height - 22,
  };
  g.x = (ms) => g.left + ((ms - g.from) / PLOT_MS) * (g.right - g.left);
  g.y = (p) => g.bottom - 2 - p * (g.bottom - g.top - 4);
  return g;
};

let hatch = null;
function hatchPattern(ctx) {
  if (hatch) return hatch;
  const tile = document.createElement("canvas");
  tile.width = tile.height = 8;
  const t = tile.getContext("2d");
  t.strokeStyle = COLOR.cancelled;
  t.lineWidth = 2;
  t.beginPath();
  for (const o of [-8, 0, 8]) { t.moveTo(o, 8); t.lineTo(o + 8, 0); }
  t.stroke();
  hatch = ctx.createPattern(tile, "repeat");
  return hatch;
}

plot.draw = () => {
  plot.pending = false;
  const c = $("plot");
  const g = plot.geometry();
  const w = Math.round(g.width * g.dpr);
  const h = Math.round(g.height * g.dpr);
  if (c.width !== w || c.height !== h) Object.assign(c, { width: w, height: h });
  const ctx = c.getContext("2d");
  ctx.setTransform(g.dpr, 0, 0, g.dpr, 0, 0);
  ctx.fillStyle = COLOR.bg;
  ctx.fillRect(0, 0, g.width, g.height);
  ctx.fillStyle = COLOR.lane;
  ctx.fillRect(g.left, g.laneTop, g.right - g.left, g.laneBottom - g.laneTop);
  // A segment still going on ends at the newest result.
  const span = (s) => [Math.max(g.x(s.from), g.left), Math.min(g.x(s.to ?? plot.head), g.right)];
  // Speech: shaded over the plot and as a bar in the lane under it.
  ctx.fillStyle = COLOR.speech;
  for (const s of plot.segments) {
    const [a, b] = span(s);
    if (b <= a) continue;
    ctx.fillRect(a, g.top, b - a, g.bottom - g.top);
    ctx.fillRect(a, g.laneTop, b - a, g.laneBottom - g.laneTop);
  }
  // Cancelled speculations: hatched red, with a red bar on top (drawn after the grid).
  ctx.fillStyle = hatchPattern(ctx);
  for (const s of plot.cancelled) {
    const [a, b] = span(s);
    if (b <= a) continue;
    ctx.fillRect(a, g.top, b - a, g.bottom - g.top);
    ctx.fillRect(a, g.laneTop, b - a, g.laneBottom - g.laneTop);
  }
  // Grid: probability 0, 0.5 (the usual threshold, dashed) and 1; a line every 2 s.
  ctx.strokeStyle = COLOR.grid;
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (const p of [0, 1]) { ctx.moveTo(g.left, Math.round(g.y(p)) + 0.5); ctx.lineTo(g.right, Math.round(g.y(p)) + 0.5); }
  const first = Math.ceil(g.from / 2000) * 2000;
  for (let t = first; t <= g.to; t += 2000) {
    const x = Math.round(g.x(t)) + 0.5;
    ctx.moveTo(x, g.top);
    ctx.lineTo(x, g.bottom);
  }
  ctx.stroke();
  ctx.setLineDash([4, 4]);
  ctx.beginPath();
  ctx.moveTo(g.left, Math.round(g.y(0.5)) + 0.5);
  ctx.lineTo(g.right, Math.round(g.y(0.5)) + 0.5);
  ctx.stroke();
  ctx.setLineDash([]);
  // The red bars of cancelled speculations, whole: a grid line inside one would cut it.
  ctx.fillStyle = COLOR.cancelled;
  for (const s of plot.cancelled) {
    const [a, b] = span(s);
    if (b > a) ctx.fillRect(a, g.top, b - a, 3);
  }
  // The probability.
  ctx.save();
  ctx.beginPath();
  ctx.rect(g.left, g.top, g.right - g.left, g.bottom - g.top);
  ctx.clip();
  ctx.strokeStyle = COLOR.line;
  ctx.lineWidth = 1.5;
  ctx.lineJoin = "round";
  ctx.beginPath();
  let drawn = 0;
  for (const [ms, p] of plot.probs) {
    if (ms < g.from - 1000 || ms > g.to) continue;
    drawn++ ? ctx.lineTo(g.x(ms), g.y(p)) : ctx.moveTo(g.x(ms), g.y(p));
  }
  ctx.stroke();
  ctx.restore();
  // Labels.
  ctx.fillStyle = COLOR.text;
  ctx.font = "11px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const p of [0, 0.5, 1]) ctx.fillText(String(p), g.left - 6, g.y(p));
  ctx.fillText("speech", g.left - 6, (g.laneTop + g.laneBottom) / 2);
  ctx.textAlign = "center";
  ctx.textBaseline = "alphabetic";
  for (let t = first; t <= g.to; t += 2000) ctx.fillText(`${t / 1000} s`, g.x(t), g.height - 6);
  if (!plot.probs.length && !plot.segments.length) {
    ctx.fillText("waiting for speech results", (g.left + g.right) / 2, (g.top + g.bottom) / 2);
  }
  c.setAttribute("aria-label", plot.summary(g));
};

// The plot in words: its label, for screen readers and tests.
plot.summary = (g = plot.geometry()) => {
  if (plot.head === null) return "Speech probability: no results yet";
  const inView = (s) => (s.to ?? g.to) > g.from && s.from < g.to;
  const range = (s) => (s.to === null ? `from ${sec(s.from)}, ongoing` : `${sec(s.from)} to ${sec(s.to)}`);
  const speech = plot.segments.filter(inView).map(range);
  const cancelled = plot.cancelled.filter(inView).map(range);
  const last = plot.probs[plot.probs.length - 1];
  return `Speech probability from ${sec(g.from)} to ${sec(g.to)} of the stream` +
    `${plot.paused !== null ? " (paused)" : ""}` +
    `${last ? `, now ${last[1].toFixed(2)}` : ""}; ` +
    `speech: ${speech.join(", ") || "none"}; cancelled speculations: ${cancelled.join(", ") || "none"}.`;
};

$("pause").onclick = () => {
  plot.paused = plot.paused === null ? plot.end() : null;
  $("pause").setAttribute("aria-pressed", String(plot.paused !== null));
  $("pause").textContent = plot.paused === null ? "Pause plot" : "Resume plot";
  redraw();
};
window.addEventListener("resize", redraw);

// Level meters, one per channel (`channel_rms_db`; the mixed `rms_db` when a result has no
// channels), for each node that reports levels.
const METER_DB = 60; // the meters show -60..0 dBFS
const HOLD_MS = 1500; // a meter's peak mark holds this long
const meters = new Map();
rm.levels = {};

function level(node, d) {
  const dbs = Array.isArray(d.channel_rms_db) && d.channel_rms_db.length ? d.channel_rms_db : [d.rms_db];
  const named = Array.isArray(d.channel_rms_db) && d.channel_rms_db.length;
  const sources = new Set([...meters.values()].map((m) => m.node).concat(node));
  dbs.forEach((db, i) => {
    const label = `${sources.size > 1 ? node + " " : ""}${named ? `ch ${i + 1}` : "mix"}`;
    meter(`${node}/${i}`, node, label, db);
  });
  setAlarm("silent", d.is_silent === true, `RMS ${d.rms_db} dBFS at ${sec(d.timestamp_ms)}`);
  setAlarm("low", d.is_low === true && d.is_silent !== true, `RMS ${d.rms_db} dBFS at ${sec(d.timestamp_ms)}`);
}

function meter(key, node, label, db) {
  if (typeof db !== "number") return;
  let m = meters.get(key);
  if (!m) {
    $("no-levels")?.remove();
    m = { node, name: el("span"), bar: el("div", { className: "meter" }), rest: el("span", { className: "rest" }),
      hold: el("span", { className: "hold" }), value: el("output"), peak: -Infinity, peakAt: 0 };
    m.bar.setAttribute("role", "meter");
    m.bar.setAttribute("aria-valuemin", String(-METER_DB));
    m.bar.setAttribute("aria-valuemax", "0");
    m.bar.append(m.rest, m.hold);
    $("meters").append(m.name, m.bar, m.value);
    meters.set(key, m);
  }
  const now = performance.now();
  if (db >= m.peak || now - m.peakAt > HOLD_MS) Object.assign(m, { peak: db, peakAt: now });
  const pct = (v) => Math.min(100, Math.max(0, (100 * (v + METER_DB)) / METER_DB));
  m.name.textContent = label;
  m.rest.style.width = `${100 - pct(db)}%`;
  m.hold.style.left = `calc(${pct(m.peak)}% - 1px)`;
  m.value.textContent = `${db.toFixed(1)} dBFS`;
  m.bar.setAttribute("aria-label", `${label} level`);
  m.bar.setAttribute("aria-valuenow", String(Math.max(-METER_DB, db)));
  m.bar.setAttribute("aria-valuetext", `${db.toFixed(1)} dBFS`);
  rm.levels[label] = db;
}

// Health alarms: a badge appears when its node first speaks, lights up while the alarm holds
// and clears when the node says so, or, for reports that repeat while the fault lasts
// (clipping) or come once (dropouts), when they stop for a while.
const ALARMS = {
  low: "Low level", silent: "Silent", silence: "Sustained silence", dropouts: "Dropouts",
  clipping: "Clipping", imbalance: "Channel imbalance", dead: "Dead channel",
};
const CLEARS_AFTER_MS = { clipping: 1500, dropouts: 5000 };
rm.alarms = {};
for (const [name, text] of Object.entries(ALARMS)) {
  const badge = el("li", { className: "badge", hidden: true }, text, el("span", { className: "visually-hidden" }));
  badge.dataset.alarm = name;
  $("alarms").append(badge);
}

function setAlarm(name, on, detail = "") {
  const badge = document.querySelector(`#alarms [data-alarm="${name}"]`);
  const was = rm.alarms[name];
  rm.alarms[name] = { on, detail, since: on && was?.on ? was.since : performance.now(), last: performance.now() };
  badge.hidden = false;
  badge.classList.toggle("on", on);
  badge.title = detail;
  badge.lastChild.textContent = on ? " (active)" : " (clear)";
  if (on !== Boolean(was?.on) && name !== "low" && name !== "silent") log("alarm", `${ALARMS[name]} ${on ? "on" : "off"}: ${detail}`);
}

// The channel balance node reports its alarms once per window, with the window's time, and
// `balance_ok` when they are over: an alarm missing from a newer window is over too.
let balanceAt = null;
function balance(name, t, detail) {
  if (t !== balanceAt) {
    balanceAt = t;
    for (const other of ["imbalance", "dead"]) if (other !== name && rm.alarms[other]?.on) setAlarm(other, false, `over at ${sec(t)}`);
  }
  if (name) setAlarm(name, true, detail);
}

setInterval(() => {
  const now = performance.now();
  for (const [name, after] of Object.entries(CLEARS_AFTER_MS)) {
    const a = rm.alarms[name];
    if (a?.on && now - a.last > after) setAlarm(name, false, `last ${a.detail}`);
  }
}, 250);

renderPeers();
plot.draw();

// Audio only (a server's run, a sink without video): the player shrinks to its controls.
$("video").addEventListener("resize", () => $("video").classList.toggle("no-video", !$("video").videoWidth));

$("unmute").onclick = () => { $("video").muted = false; };
$("send").onclick = () => { if (channel && channel.readyState === "open") channel.send($("msg").value); };

// What tests read: decoded frames and audio energy, from getStats.
rm.stats = async () => {
  const out = { framesDecoded: 0, audioEnergy: 0, audioSamples: 0, bytesReceived: 0 };
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp") return;
    out.bytesReceived += s.bytesReceived || 0;
    if (s.kind === "video") out.framesDecoded += s.framesDecoded || 0;
    if (s.kind === "audio") {
      out.audioEnergy += s.totalAudioEnergy || 0;
      out.audioSamples += s.totalSamplesReceived || 0;
    }
  });
  return out;
};

ws.onopen = async () => {
  setState("announcing");
  const session = query.get("session");
  const reply = await call("peer.announce", {
    peer_id: me,
    capabilities: { browser: true, audio: true, video: true },
    user_data: session ? { session } : {},
  });
  rm.peers = reply.other_peers;
  renderPeers();
  setState("waiting for the element");
  const element = rm.peers.find(isElement);
  if (element) start(element.peer_id);
};
