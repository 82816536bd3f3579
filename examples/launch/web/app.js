// The RemoteMedia demo page: JSON-RPC 2.0 signaling over WebSocket (peer.announce, peer.offer,
// peer.ice_candidate ...), one RTCPeerConnection to the element, its media and its data channel.
// Query parameters: ?peer=<element peer id>&id=<my id>&send=1 (send microphone and camera)
// &session=<room> (join that session) &token=<auth-token> (passed on to the WebSocket). Server mode shows the manifest's results as they come.
// `window.rm` exposes state for tests and the console.
"use strict";

const query = new URLSearchParams(location.search);
const me = query.get("id") || "browser-" + Math.random().toString(36).slice(2, 8);
const rm = { me, state: "starting", peers: [], events: [], data: [], results: [], error: null, tracks: 0 };
const KEEP = 2000; // messages kept in rm.data / rm.results
window.rm = rm;

const $ = (id) => document.getElementById(id);
$("me").textContent = me;

function log(kind, detail) {
  const entry = { t: Date.now(), kind, detail };
  rm.events.push(entry);
  $("log").textContent += `${new Date().toLocaleTimeString()} ${kind} ${JSON.stringify(detail)}\n`;
}

function setState(state) {
  rm.state = state;
  $("state").textContent = state;
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
function renderPeers() {
  $("peers").innerHTML = "";
  for (const p of rm.peers) {
    const li = document.createElement("li");
    li.textContent = `${p.peer_id} ${JSON.stringify(p.capabilities || {})}`;
    $("peers").appendChild(li);
  }
}

let pc = null;
let channel = null;
let target = null;

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
}

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
