'use strict';
// The seeds' example manifests (examples/seeds) from Node.js: RemoteMedia's own shape (`type`,
// no `version`) runs, Echo gives the audio back, and the empty manifest is refused by the
// runtime API but taken by WebRtcServer as "signaling and data channels only".

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const rm = require('..');

const SEEDS = path.resolve(__dirname, '..', '..', 'examples', 'seeds');
const read = (name) => fs.readFileSync(path.join(SEEDS, name), 'utf8');

test('echo.json gives the audio back, the same memory', async () => {
  const samples = new Float32Array([0.25, -0.5, 0.75]);
  const [out] = await rm.executePipelineWithInput(read('echo.json'),
    [{ type: 'audio', samples, sampleRate: 16000, channels: 1 }]);
  assert.equal(out.type, 'audio');
  assert.equal(out.nodeId, 'echo');
  assert.equal(out.samples, samples);
});

test('empty.json is refused by the runtime API with the reason', async () => {
  await assert.rejects(rm.executePipelineWithInput(read('empty.json'), ['x']), (e) => {
    assert.equal(e.code, 'MANIFEST_ERROR');
    assert.match(e.message, /no nodes/);
    return true;
  });
});

test('empty.json makes a WebRtcServer for signaling and data channels only', async () => {
  const server = await rm.WebRtcServer.create({ port: 0, manifest: read('empty.json'), stunServers: [] });
  await server.start();
  assert.ok(server.port > 0);
  assert.deepEqual(await server.getPeers(), []);
  await server.shutdown();
});
