'use strict';
// WebRtcServer.connect to remotemedia-server over ws:// and grpc://: an aiortc peer on the
// server's WebSocket reaches it, the server is killed and started again, the element
// reconnects (RECONNECT_ATTEMPT on the way) and a new peer reaches it again.

const assert = require('node:assert/strict');
const { test } = require('node:test');

const {
  AiortcPeer, PASSTHROUGH, SignalingServer, freePort, loadNative, record, waitFor,
} = require('./webrtc_helpers');

const { WebRtcServer } = loadNative();

for (const scheme of ['ws', 'grpc']) {
  test(`connect over ${scheme}:// reaches peers and survives a server restart`, { timeout: 180000 }, async (t) => {
    const grpc = `127.0.0.1:${await freePort()}`;
    const ws = `127.0.0.1:${await freePort()}`;
    const signaling = await new SignalingServer({ grpc, ws }).start();
    const peerId = `node-${scheme}`;
    const server = await WebRtcServer.connect({
      manifest: PASSTHROUGH,
      signalingUrl: scheme === 'ws' ? `ws://${ws}/ws` : `grpc://${grpc}`,
      peerId,
      iceLoopbackOnly: true,
      reconnect: { maxAttempts: 50, initialBackoffMs: 100, maxBackoffMs: 300 },
    });
    const seen = record(server, ['peer_connected', 'error', 'data']);
    const [first, second] = [new AiortcPeer(), new AiortcPeer()];
    t.after(async () => {
      await Promise.all([first.close(), second.close()]);
      await server.shutdown();
      await signaling.stop();
    });
    assert.equal(server.port, null);
    await server.start();

    const reach = async (peer, id) => {
      const called = await peer.call({ port: signaling.wsPort, peerId: id, target: peerId, retryForS: 30 });
      assert.equal(called.event, 'called', JSON.stringify(called));
      await waitFor(() => seen.peer_connected.find((e) => e.peerId === id), `${id} connected`);
      await peer.event((e) => e.event === 'channel_open', `${id}'s data channel`);
      peer.sendText(`hello from ${id}`);
      await waitFor(() => seen.data.find((e) => e.peerId === id && e.data.toString() === `hello from ${id}`), `${id}'s message`);
    };
    await reach(first, 'first');

    await signaling.kill();
    const attempt = await waitFor(() => seen.error.find((e) => e.code === 'RECONNECT_ATTEMPT'), 'a reconnect attempt');
    assert.equal(attempt.peerId, null);
    await signaling.start();
    await reach(second, 'second');
    assert.ok(!seen.error.some((e) => e.code === 'RECONNECT_FAILED'), JSON.stringify(seen.error));
  });
}
