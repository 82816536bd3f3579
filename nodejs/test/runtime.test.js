'use strict';
// The runtime API as a Node.js user calls it: `node --test nodejs/test/` (scripts/test.sh).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');

const rm = require('..');

const ROOT = path.resolve(__dirname, '..', '..');
const LAUNCH = path.join(ROOT, 'examples', 'launch');
const FIXTURE_NODES = path.join(ROOT, 'runtime-bridge', 'tests', 'fixtures', 'test_nodes.py');
const PASS = { version: 'v1', nodes: [{ id: 'pass', node_type: 'PassThrough' }] };
const RESAMPLE = {
  version: 'v1',
  nodes: [{ id: 'r', node_type: 'FastResampleNode', params: { target_rate: 16000, channels: 1 } }],
};
const PYTHON = (nodeType) => ({
  version: 'v1',
  nodes: [{ id: 'py', node_type: nodeType, executor: 'python', python_module: FIXTURE_NODES }],
});

function audio(samples, sampleRate, channels = 1, pts) {
  return { type: 'audio', samples, sampleRate, channels, ...(pts === undefined ? {} : { pts }) };
}

const { speech } = require('../../examples/launch/speech_wav');

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail('expected a rejection');
}

test('version and availability', () => {
  assert.equal(rm.getRuntimeVersion(), '0.1.0');
  assert.equal(rm.isAvailable(), true);
});

test('every input kind comes out in order, in the shape the Python API gives', async () => {
  const items = [
    'hello',
    { answer: 42, nested: [1, 2.5, null, true, 'x'] },
    [1, 2, 3],
    7,
    false,
    null,
    Buffer.from([0, 1, 255]),
    { type: 'text', text: 'bye' },
    { type: 'json', data: { type: 'not a tag inside data' } },
    { type: 'binary', data: new Uint8Array([9, 8]) },
    new Float32Array([0.5, -0.5]),
    new Float64Array([1.25]),
    new Int32Array([1, -2, 3]),
    new BigInt64Array([2n ** 40n]),
    new Uint8Array([7]),
    { type: 'tensor', data: new Int32Array([1, 2, 3, 4, 5, 6]), shape: [2, 3] },
  ];
  const out = await rm.executePipelineWithInput(PASS, items);
  assert.deepEqual(
    out.map((o) => o.type),
    ['text', 'json', 'json', 'json', 'json', 'json', 'binary', 'text', 'json', 'binary',
      'tensor', 'tensor', 'tensor', 'tensor', 'tensor', 'tensor'],
  );
  assert.ok(out.every((o) => o.nodeId === 'pass' && o.pts === null));
  assert.deepEqual(out[0], { type: 'text', nodeId: 'pass', pts: null, text: 'hello' });
  assert.deepEqual(out[1].data, items[1]);
  assert.deepEqual([out[2].data, out[3].data, out[4].data, out[5].data], [[1, 2, 3], 7, false, null]);
  assert.ok(Buffer.isBuffer(out[6].data) && out[6].data.equals(Buffer.from([0, 1, 255])));
  assert.equal(out[7].text, 'bye');
  assert.deepEqual(out[8].data, { type: 'not a tag inside data' });
  assert.deepEqual([...out[9].data], [9, 8]);
  const tensors = out.slice(10).map((o) => [o.dtype, o.shape, o.data]);
  assert.deepEqual(tensors, [
    ['float32', [2], new Float32Array([0.5, -0.5])],
    ['float64', [1], new Float64Array([1.25])],
    ['int32', [3], new Int32Array([1, -2, 3])],
    ['int64', [1], new BigInt64Array([2n ** 40n])],
    ['uint8', [1], new Uint8Array([7])],
    ['int32', [2, 3], new Int32Array([1, 2, 3, 4, 5, 6])],
  ]);
  assert.deepEqual(await rm.executePipeline(PASS), []);
  // Any iterable of inputs.
  const fromSet = await rm.executePipelineWithInput(PASS, new Set(['a', 'b']));
  assert.deepEqual(fromSet.map((o) => o.text), ['a', 'b']);
});

test('the manifest may be JSON text, an object or a file path', async () => {
  const text = await rm.executePipelineWithInput(JSON.stringify(PASS), ['x']);
  const file = await rm.executePipelineWithInput(path.join(LAUNCH, 'passthrough.json'), ['x']);
  assert.equal(text[0].text, 'x');
  assert.equal(file[0].text, 'x');
});

test('audio crosses without a copy: a node passing it through gives back the same memory', async () => {
  const samples = new Float32Array(960).map((_, i) => i / 960);
  const [out] = await rm.executePipelineWithInput(PASS, [audio(samples, 48000, 2, 20_000_000)]);
  assert.equal(out.samples, samples, 'the very Float32Array that went in');
  assert.deepEqual([out.sampleRate, out.channels, out.pts], [48000, 2, 20_000_000]);
  samples[0] = 42; // written after the call: seen through the output, the same memory
  assert.equal(out.samples[0], 42);

  // Parts of the input (a chunker's chunks) are views of the caller's ArrayBuffer.
  const chunker = { version: 'v1', nodes: [{ id: 'c', node_type: 'AudioChunkerNode', params: { chunk_size: 4 } }] };
  const backing = new Float32Array(16).map((_, i) => i);
  const input = backing.subarray(2, 14);
  const chunks = await rm.executePipelineWithInput(chunker, [audio(input, 16000)]);
  assert.deepEqual(chunks.map((c) => [...c.samples]), [[2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 12, 13]]);
  for (const [i, c] of chunks.entries()) {
    assert.equal(c.samples.buffer, backing.buffer);
    assert.equal(c.samples.byteOffset, (2 + 4 * i) * 4);
  }

  // A node's own samples: small ones (under 64 KiB) are copied into one ArrayBuffer that the
  // outputs handed over together share; large ones are moved into an ArrayBuffer of their own.
  const tone = new Float32Array(4800).map((_, i) => Math.sin(i / 10));
  const resampled = await rm.executePipelineWithInput(RESAMPLE, [1, 2, 3].map(() => audio(tone, 48000)));
  assert.equal(resampled.reduce((n, o) => n + o.samples.length, 0), 4800);
  assert.ok(resampled.every((o) => o.sampleRate === 16000 && o.samples.byteLength < 65536));
  assert.equal(new Set(resampled.map((o) => o.samples.buffer)).size, 1);
  assert.notEqual(resampled[0].samples.buffer, tone.buffer);
  const chunked = {
    version: 'v1',
    nodes: [...RESAMPLE.nodes, { id: 'c', node_type: 'AudioChunkerNode', params: { chunk_size: 32000 } }],
    connections: [{ from: 'r', to: 'c' }],
  };
  const long = new Float32Array(48000 * 10).map((_, i) => Math.sin(i / 10));
  const large = await rm.executePipelineWithInput(chunked, [audio(long, 48000)]);
  assert.equal(large.length, 5);
  for (const { samples } of large) {
    assert.equal(samples.length, 32000);
    assert.equal(samples.byteOffset, 0);
    assert.equal(samples.buffer.byteLength, samples.byteLength, 'a buffer of its own');
  }

  // A resizable ArrayBuffer could shrink under the pipeline: its samples are copied.
  const resizable = new Float32Array(new ArrayBuffer(16, { maxByteLength: 64 }));
  resizable.set([1, 2, 3, 4]);
  const [copied] = await rm.executePipelineWithInput(PASS, [audio(resizable, 16000)]);
  assert.notEqual(copied.samples.buffer, resizable.buffer);
  assert.deepEqual([...copied.samples], [1, 2, 3, 4]);
});

test('audio through a Python node comes back as the caller\'s array too', async () => {
  const samples = new Float32Array(320).fill(0.25);
  const [out] = await rm.executePipelineWithInput(PYTHON('Echo'), [audio(samples, 16000)]);
  assert.equal(out.samples, samples);
});

test('metrics: per node, with what each node counts', async () => {
  const { samples, rate } = speech();
  const manifest = {
    version: 'v1',
    nodes: [
      { id: 'resample', node_type: 'FastResampleNode', params: { target_rate: 16000, channels: 1 } },
      { id: 'gate', node_type: 'SpeculativeVADGate' },
    ],
    connections: [{ from: 'resample', to: 'gate' }],
  };
  const step = rate / 50;
  const pieces = [];
  for (let i = 0; i + step <= samples.length; i += step) pieces.push(audio(samples.subarray(i, i + step), rate));
  const result = await rm.executePipelineWithInput(manifest, pieces, { enableMetrics: true });
  assert.ok(Array.isArray(result.outputs) && result.outputs.length > 0);
  const [resample, gate] = result.metrics;
  assert.equal(resample.nodeId, 'resample');
  assert.equal(resample.processed, pieces.length);
  assert.ok(resample.busyMs > 0 && resample.errors === 0);
  assert.equal(gate.nodeId, 'gate');
  assert.ok(gate.counters.speculations >= 2 && gate.counters.confirmed >= 2, JSON.stringify(gate));
});

test('VAD on the shipped speech finds its sentences', async () => {
  const { samples, rate } = speech();
  const manifest = fs.readFileSync(path.join(LAUNCH, 'vad.json'), 'utf8');
  const step = Math.floor(rate / 100);
  const chunks = [];
  for (let i = 0; i < samples.length; i += step) {
    chunks.push(audio(samples.subarray(i, i + step), rate, 1, Math.round((i * 1e9) / rate)));
  }
  const out = await rm.executePipelineWithInput(manifest, chunks);
  const events = out.filter((o) => o.type === 'json').map((o) => o.data);
  const starts = events.filter((e) => e.is_speech_start).map((e) => e.timestamp_ms);
  const ends = events.filter((e) => e.is_speech_end).map((e) => e.timestamp_ms);
  const known = JSON.parse(fs.readFileSync(path.join(LAUNCH, 'speech.segments.json'), 'utf8')).segments_ms;
  assert.equal(starts.length, known.length);
  assert.equal(ends.length, known.length);
  known.forEach(([start, end], i) => {
    assert.ok(Math.abs(starts[i] - start) <= 150, `start ${starts[i]} vs ${start}`);
    assert.ok(Math.abs(ends[i] - end) <= 250, `end ${ends[i]} vs ${end}`);
  });
});

test('a stream session: send, recv, for await, and close drains', async () => {
  const session = await rm.createStreamSession(RESAMPLE);
  for (let i = 0; i < 10; i++) await session.send(audio(new Float32Array(4800), 48000));
  const first = await session.recv();
  assert.equal(first.type, 'audio');
  assert.equal(first.sampleRate, 16000);
  let total = first.samples.length;
  const rest = await session.close(); // the resampler's tail comes out here
  assert.ok(rest.length > 0);
  const iterated = [];
  for await (const out of session) iterated.push(out);
  assert.deepEqual(iterated, rest, 'what close returned is also yielded');
  total += iterated.reduce((n, o) => n + o.samples.length, 0);
  assert.equal(total, 16000);
  assert.equal(await session.recv(), null);
  assert.equal(session.metrics()[0].processed, 10);
  const closed = await rejection(session.send('late'));
  assert.equal(closed.code, 'ERR_INVALID_STATE');
});

test('a consumer iterating while the producer sends and closes gets every output in order', async () => {
  const session = await rm.createStreamSession(PASS);
  const seen = [];
  const consumer = (async () => {
    for await (const out of session) seen.push(out.text);
  })();
  const sent = Array.from({ length: 200 }, (_, i) => `item ${i}`);
  for (const [i, item] of sent.entries()) {
    await session.send(item);
    if (i % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await session.close();
  await consumer;
  assert.deepEqual(seen, sent);
});

test('waiting for an output does not poll: recv sleeps until a late output wakes it', async () => {
  const session = await rm.createStreamSession(PYTHON('Faulty'));
  await session.send('sleep:1.0');
  const cpu = process.cpuUsage();
  const started = performance.now();
  const out = await session.recv();
  const waited = performance.now() - started;
  const used = process.cpuUsage(cpu);
  assert.match(out.text, /^ok:sleep:1.0:/);
  assert.ok(waited > 500, `waited ${waited} ms`);
  // A busy loop or a poll would spend CPU here; a wait spends next to none.
  assert.ok((used.user + used.system) / 1000 < 100, `${JSON.stringify(used)} us of CPU over ${waited} ms`);
  await session.close();
});

test('the event loop stays free while a slow pipeline runs', async () => {
  let ticks = 0;
  const ticker = setInterval(() => { ticks += 1; }, 10);
  try {
    // A unary run whose Python node takes 1 s.
    const before = ticks;
    const [out] = await rm.executePipelineWithInput(PYTHON('Faulty'), ['sleep:1.0']);
    assert.match(out.text, /^ok:sleep:1.0:/);
    assert.ok(ticks - before >= 30, `${ticks - before} ticks during a 1 s run`);

    // A session: its Python node is started off the loop, and inputs for it are handed to
    // the session's sending thread, so the loop keeps ticking while the node sleeps.
    const session = await rm.createStreamSession(PYTHON('Faulty'));
    const during = ticks;
    await session.send('sleep:0.6');
    await session.send('sleep:0.6');
    const sent = ticks - during;
    const outs = [await session.recv(), await session.recv()];
    assert.ok(outs.every((o) => o.text.startsWith('ok:sleep:0.6:')));
    assert.ok(ticks - during >= 60, `${ticks - during} ticks during 1.2 s of node time (${sent} while sending)`);
    await session.close();
  } finally {
    clearInterval(ticker);
  }
});

test('an invalid manifest rejects with MANIFEST_ERROR and the full report', async () => {
  const bad = { version: 'v1', nodes: [{ id: 'v', node_type: 'SileroVad' }, { id: 'v', node_type: 'PassThrough' }] };
  const error = await rejection(rm.executePipelineWithInput(bad, []));
  assert.ok(error instanceof Error);
  assert.equal(error.code, 'MANIFEST_ERROR');
  assert.match(error.message, /unknown node_type "SileroVad" \(did you mean .*"SileroVADNode"/);
  assert.equal(error.errors.length, 2, error.message);
  assert.deepEqual(Object.keys(error.errors[0]), ['place', 'message']);
  assert.equal(error.errors[0].place, 'nodes[0] "v"');

  const missing = path.join(os.tmpdir(), 'no-such-manifest.json');
  const unread = await rejection(rm.executePipeline(missing));
  assert.equal(unread.code, 'MANIFEST_ERROR');
  assert.ok(unread.message.includes(missing));

  const session = await rejection(rm.createStreamSession(bad));
  assert.equal(session.code, 'MANIFEST_ERROR');

  const notAManifest = await rejection(rm.executePipeline(42));
  assert.equal(notAManifest.code, 'ERR_INVALID_ARG_TYPE');
});

test('a failing node rejects with PIPELINE_ERROR naming it', async () => {
  const vad = { version: 'v1', nodes: [{ id: 'vad', node_type: 'SileroVADNode' }] };
  const samples = new Float32Array(1600);
  samples[3] = NaN;
  const error = await rejection(rm.executePipelineWithInput(vad, [audio(samples, 16000)]));
  assert.equal(error.code, 'PIPELINE_ERROR');
  assert.equal(error.nodeId, 'vad');
  assert.match(error.message, /node "vad".*not a finite number/);

  const raised = await rejection(rm.executePipelineWithInput(PYTHON('Faulty'), ['raise']));
  assert.equal(raised.code, 'PIPELINE_ERROR');
  assert.equal(raised.nodeId, 'py');
  assert.match(raised.message, /bad input on purpose/);
});

test('in a session a failure arrives in its place among the outputs and the stream goes on', async () => {
  const vad = { version: 'v1', nodes: [{ id: 'vad', node_type: 'SileroVADNode' }] };
  const good = audio(new Float32Array(1600), 16000);
  const bad = audio(new Float32Array(1600).fill(NaN), 16000);
  const session = await rm.createStreamSession(vad);
  // Whether the node runs on the sender or on its own thread, its failure reaches the
  // outputs, never the sender.
  for (const item of [good, bad, good]) await session.send(item);
  const seen = [];
  while (seen.filter((s) => s === 'audio').length < 2) {
    try {
      const out = await session.recv();
      assert.ok(out !== null, `outputs stopped after ${seen}`);
      seen.push(out.type);
    } catch (error) {
      seen.push(error);
    }
  }
  await session.close();
  const at = seen.findIndex((s) => s instanceof Error);
  assert.equal(seen[at].code, 'PIPELINE_ERROR');
  assert.equal(seen[at].nodeId, 'vad');
  assert.deepEqual(seen.filter((s) => s === 'audio').length, 2);
  assert.equal(seen.slice(0, at).filter((s) => s === 'audio').length, 1, String(seen));
});

test('bad inputs reject with TypeErrors naming the problem', async () => {
  const cases = [
    [undefined, 'ERR_INVALID_ARG_TYPE', /cannot send undefined/],
    [() => 1, 'ERR_INVALID_ARG_TYPE', /cannot send function/],
    [new ArrayBuffer(4), 'ERR_INVALID_ARG_TYPE', /must be a typed array: wrap an ArrayBuffer/],
    [new DataView(new ArrayBuffer(4)), 'ERR_INVALID_ARG_TYPE', /must be a typed array/],
    [audio(new Float32Array(3), 8000, 2), 'ERR_INVALID_ARG_VALUE', /audio of 3 samples cannot be 2 channel/],
    [audio([1, 2], 8000), 'ERR_INVALID_ARG_VALUE', /samples must be a Float32Array/],
    [{ type: 'audio', samples: new Float32Array(2) }, 'ERR_INVALID_ARG_VALUE', /needs its sampleRate/],
    [audio(new Float32Array(2), 8000, 1, -5), 'ERR_INVALID_ARG_VALUE', /pts must be an integer/],
    [new Int16Array(2), 'ERR_INVALID_ARG_VALUE', /Int16Array is not supported/],
    [{ type: 'tensor', data: new Float32Array(5), shape: [2, 2] }, 'ERR_INVALID_ARG_VALUE', /needs 4 elements, not 5/],
    [{ type: 'text', text: 5 }, 'ERR_INVALID_ARG_VALUE', /text must be a string/],
    [{ type: 'binary', data: 'xy' }, 'ERR_INVALID_ARG_VALUE', /Buffer or Uint8Array/],
  ];
  for (const [item, code, message] of cases) {
    const error = await rejection(rm.executePipelineWithInput(PASS, ['fine', item]));
    assert.ok(error instanceof TypeError, `${error} for ${String(item)}`);
    assert.equal(error.code, code, error.message);
    assert.match(error.message, message);
  }
  const session = await rm.createStreamSession(PASS);
  const error = await rejection(session.send(Symbol('x')));
  assert.equal(error.code, 'ERR_INVALID_ARG_TYPE');
  await session.close();
});
