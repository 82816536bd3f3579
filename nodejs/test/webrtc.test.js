'use strict';
// WebRtcServer from Node.js with an aiortc peer (tests/webrtc_peer.py, driven by
// webrtc_peer_driver.py): its microphone (the shipped speech) through the VAD manifest,
// events, data both ways, sessions, disconnect with a reason, max peers, listeners that throw,
// and configurations that are refused.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { test } = require('node:test');

const {
  AiortcPeer, PASSTHROUGH, SPEECH, VAD, loadNative, record, waitFor,
} = require('./webrtc_helpers');

const { WebRtcServer } = loadNative();
const EVENTS = ['peer_connected', 'peer_disconnected', 'pipeline_output', 'data', 'error', 'session'];

const bytes = (...b) => Buffer.from(b);

test('an aiortc peer speaks through the VAD; events, data, sessions and a disconnect', { timeout: 240000 }, async (t) => {
  const server = await WebRtcServer.create({
    port: 0, manifest: VAD, iceLoopbackOnly: true, maxPeers: 4, videoCodec: 'vp8', stunServers: [],
  });
  const seen = record(server, EVENTS);
  const peer = new AiortcPeer();
  t.after(async () => {
    await peer.close();
    await server.shutdown();
  });
  assert.equal(server.state, 'created');
  await server.start();
  assert.equal(server.state, 'running');
  const { port } = server;
  assert.ok(port > 0, `port ${port}`);

  const called = await peer.call({ port, peerId: 'node-peer', wav: SPEECH, userData: { name: 'Ada' } });
  assert.equal(called.event, 'called', JSON.stringify(called));
  await waitFor(() => seen.peer_connected.length, 'peer_connected');
  assert.deepEqual(seen.peer_connected[0], {
    peerId: 'node-peer', capabilities: { aiortc: true }, metadata: { name: 'Ada' },
  });
  const peers = await server.getPeers();
  assert.deepEqual(peers.map((p) => [p.peerId, p.state]), [['node-peer', 'connected']]);
  assert.deepEqual(peers[0].metadata, { name: 'Ada' });
  assert.ok(peers[0].connectedAt > 1.7e12);

  // The speech through the peer's own run of the VAD: results reach Node with the peer's id.
  await waitFor(() => seen.pipeline_output.some((e) => e.data.is_speech_start), 'a speech start', 90000);
  const first = seen.pipeline_output[0];
  assert.deepEqual([first.peerId, first.nodeId, first.kind], ['node-peer', 'vad', 'json']);
  assert.ok(first.timestamp === null || first.timestamp >= 0, `timestamp ${first.timestamp}`);

  // Data both ways: a Buffer goes as binary, a string as text.
  await peer.event((e) => e.event === 'channel_open', 'the data channel');
  const hasMessage = (binary, data) => peer.messages().some((m) => m.binary === binary && m.data.equals(data));
  await server.sendToPeer('node-peer', bytes(0, 1, 2, 255));
  await waitFor(() => hasMessage(true, bytes(0, 1, 2, 255)), 'sendToPeer with a Buffer');
  await server.sendToPeer('node-peer', '{"hello": 1}');
  await waitFor(() => hasMessage(false, Buffer.from('{"hello": 1}')), 'sendToPeer with a string');
  assert.equal(await server.broadcast(bytes(0xff)), 1);
  await waitFor(() => hasMessage(true, bytes(0xff)), 'broadcast');
  peer.sendBinary(bytes(0, 0x72, 0x61, 0x77));
  const binary = await waitFor(() => seen.data.find((e) => e.binary), 'a binary data event');
  assert.ok(Buffer.isBuffer(binary.data));
  assert.deepEqual([binary.peerId, binary.data], ['node-peer', bytes(0, 0x72, 0x61, 0x77)]);
  peer.sendText('from aiortc');
  const text = await waitFor(() => seen.data.find((e) => !e.binary), 'a text data event');
  assert.equal(text.data.toString('utf8'), 'from aiortc');
  assert.ok(seen.data.every((e) => e.timestamp > 1.7e12));
  await assert.rejects(server.sendToPeer('nobody', bytes(1)), { code: 'PEER_NOT_FOUND', peerId: 'nobody' });

  // Sessions.
  const room = await server.createSession('room-1', { topic: 'vad' });
  assert.equal(room.sessionId, 'room-1');
  const joined = [];
  room.on('peer_joined', (peerId) => joined.push(peerId));
  await room.addPeer('node-peer');
  await waitFor(() => joined.length, 'peer_joined');
  assert.deepEqual(joined, ['node-peer']);
  assert.deepEqual(await room.getPeers(), ['node-peer']);
  const info = await room.getInfo();
  assert.deepEqual(info.metadata, { topic: 'vad' });
  assert.ok(info.createdAt > 1.7e12);
  assert.equal(await room.broadcast('to the room'), 1);
  await waitFor(() => hasMessage(false, Buffer.from('to the room')), 'the session broadcast');
  assert.deepEqual((await server.getSession('room-1')).peerIds, ['node-peer']);
  assert.deepEqual((await server.getSessions()).map((s) => s.sessionId), ['room-1']);
  await assert.rejects(server.createSession('room-1'), (e) => e.code === 'CONFIG_ERROR' && /already exists/.test(e.message));
  await server.deleteSession('room-1');
  assert.equal(await server.getSession('room-1'), null);
  await assert.rejects(server.deleteSession('room-1'), { code: 'SESSION_NOT_FOUND' });
  await assert.rejects(room.getInfo(), { code: 'SESSION_NOT_FOUND' });
  await waitFor(() => seen.session.map((e) => e.eventType).join() === 'created,peer_joined,deleted', 'the session events');
  assert.deepEqual(seen.session[1], { sessionId: 'room-1', eventType: 'peer_joined', peerId: 'node-peer' });
  assert.deepEqual(seen.session[0].peerId, null);

  // The application hangs up; the peer hears why.
  await server.disconnectPeer('node-peer', 'test over');
  await peer.event((e) => e.event === 'notification' && e.method === 'peer.state_change'
    && e.params.state === 'disconnected: test over', 'the reason at the peer');
  await waitFor(() => seen.peer_disconnected.length, 'peer_disconnected');
  assert.deepEqual(seen.peer_disconnected[0], { peerId: 'node-peer', reason: 'test over' });
  assert.deepEqual(await server.getPeers(), []);
  await assert.rejects(server.disconnectPeer('node-peer'), { code: 'PEER_NOT_FOUND' });

  await peer.close();
  await server.shutdown();
  assert.equal(server.state, 'stopped');
  // The port is free again: a new server binds it at once.
  const again = await WebRtcServer.create({ port, manifest: VAD });
  await again.start();
  assert.equal(again.port, port);
  await again.shutdown();
});

test('maxPeers: the next peer is refused with MAX_PEERS_REACHED', { timeout: 120000 }, async (t) => {
  const server = await WebRtcServer.create({ port: 0, manifest: PASSTHROUGH, iceLoopbackOnly: true, maxPeers: 1 });
  const seen = record(server, ['peer_connected', 'peer_disconnected', 'error']);
  const [first, late] = [new AiortcPeer(), new AiortcPeer()];
  t.after(async () => {
    await Promise.all([first.close(), late.close()]);
    await server.shutdown();
  });
  await server.start();
  assert.equal((await first.call({ port: server.port, peerId: 'first' })).event, 'called');
  await waitFor(() => seen.peer_connected.length, 'the first peer');
  const refused = await late.call({ port: server.port, peerId: 'late' });
  assert.equal(refused.event, 'refused');
  assert.equal(refused.error.data.code, 'MAX_PEERS_REACHED', JSON.stringify(refused));
  const error = await waitFor(() => seen.error.find((e) => e.code === 'MAX_PEERS_REACHED'), 'the error event');
  assert.equal(error.peerId, 'late');
  assert.deepEqual((await server.getPeers()).map((p) => p.peerId), ['first']);
  // The events of the stop reach the listeners before shutdown() resolves.
  await server.shutdown();
  assert.deepEqual(seen.peer_disconnected.map((e) => e.peerId), ['first']);
});

test('a listener that throws is an uncaught exception; the other listeners still run', { timeout: 60000 }, async () => {
  const script = `
    const { WebRtcServer } = require(${JSON.stringify(path.join(__dirname, 'webrtc_helpers.js'))}).loadNative();
    const got = [];
    process.on('uncaughtException', (e) => got.push('uncaught: ' + e.message));
    (async () => {
      const server = await WebRtcServer.create({ port: 0, manifest: ${JSON.stringify(PASSTHROUGH)} });
      server.on('session', () => { throw new Error('listener failed'); })
        .on('session', (e) => got.push(e.eventType));
      await server.start();
      await server.createSession('room');
      await server.shutdown();
      console.log(JSON.stringify(got));
    })();
  `;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (chunk) => { out += chunk; });
  const code = await new Promise((resolve) => child.once('exit', resolve));
  assert.equal(code, 0);
  assert.deepEqual(JSON.parse(out), ['uncaught: listener failed', 'created']);
});

test('bad configuration is refused before or at start, with codes', { timeout: 60000 }, async () => {
  const refused = async (config, pattern, factory = 'create') => {
    await assert.rejects(WebRtcServer[factory](config), (e) => {
      assert.equal(e.code, 'CONFIG_ERROR');
      assert.match(e.message, pattern);
      return true;
    });
  };
  await refused({ prot: 1, manifest: VAD }, /unknown field `prot`/);
  await refused({ port: 0 }, /'manifest' is required/);
  await refused({ port: 0, manifest: '/no/such/manifest.json' }, /does not exist/);
  await refused({ port: 0, manifest: VAD, videoCodec: 'av1' }, /videoCodec 'av1'/);
  await refused({ port: 0, manifest: VAD, audioCodec: 'aac' }, /audioCodec 'aac'/);
  await refused({ port: 0, manifest: VAD, maxPeers: 0 }, /maxPeers must be 1..1000/);
  await refused({ manifest: VAD }, /needs 'signalingUrl'/, 'connect');
  await refused({ manifest: VAD, signalingUrl: 'ws://127.0.0.1:1/ws', reconnect: { tries: 3 } }, /unknown field `tries`/, 'connect');
  await refused({ manifest: VAD, signalingUrl: 'ws://127.0.0.1:1/ws', reconnect: { maxAttempts: 'many' } }, /invalid type/, 'connect');

  const bad = await WebRtcServer.create({ port: 0, manifest: { version: 'v1', nodes: [{ id: 'x', node_type: 'NoSuchNode' }] } });
  assert.throws(() => bad.on('peer_joined', () => {}), { code: 'CONFIG_ERROR' });
  assert.throws(() => bad.on('data', 42), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  await assert.rejects(bad.sendToPeer('p', 'x'), (e) => e.code === 'CONFIG_ERROR' && /call start\(\) first/.test(e.message));
  await assert.rejects(bad.start(), (e) => e.code === 'CONFIG_ERROR' && e.message.includes('NoSuchNode'));
  assert.equal(bad.state, 'stopped');

  const turn = await WebRtcServer.create({
    port: 0,
    manifest: VAD,
    turnServers: [{ url: 'turn:127.0.0.1:3478', username: 'u', credential: 'secret' }],
    stunServers: ['nonsense'],
  });
  await assert.rejects(turn.start(), (e) => {
    assert.equal(e.code, 'CONFIG_ERROR');
    assert.match(e.message, /nonsense/);
    assert.doesNotMatch(e.message, /secret/);
    return true;
  });

  const twice = await WebRtcServer.create({ port: 0, manifest: PASSTHROUGH });
  await twice.start();
  await assert.rejects(twice.start(), (e) => e.code === 'CONFIG_ERROR' && /running/.test(e.message));
  await twice.shutdown();
});
