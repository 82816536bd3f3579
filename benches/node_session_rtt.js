'use strict';
// B15, the Node.js side: round trips of 20 ms audio frames through a PassThrough
// StreamSession (`await session.send(frame); await session.recv()`), timed one by one.
// Driven by benches/node_session_rtt.py: each line on stdin is a frame count; the answer is
// one line of JSON, the round trips in ns.

const readline = require('node:readline');
const rm = require('../nodejs');

const RATE = 16000;
const FRAME = RATE / 50;
const PASS = { version: 'v1', nodes: [{ id: 'pass', node_type: 'PassThrough' }] };

async function main() {
  // 60 s of a tone, sent as 20 ms views of it (the samples are lent, not copied).
  const audio = new Float32Array(RATE * 60).map((_, i) => Math.sin((2 * Math.PI * 440 * i) / RATE));
  const frames = [];
  for (let i = 0; i + FRAME <= audio.length; i += FRAME) {
    frames.push({ type: 'audio', samples: audio.subarray(i, i + FRAME), sampleRate: RATE, channels: 1 });
  }
  const session = await rm.createStreamSession(PASS);
  let next = 0;
  const roundTrips = async (n) => {
    const took = new Array(n);
    for (let i = 0; i < n; i++) {
      const frame = frames[next++ % frames.length];
      const start = process.hrtime.bigint();
      await session.send(frame);
      const out = await session.recv();
      took[i] = Number(process.hrtime.bigint() - start);
      if (i === 0 && out.samples !== frame.samples) throw new Error('the frame did not come back as itself');
    }
    return took;
  };
  await roundTrips(10000); // warm-up
  process.stdout.write('ready\n');
  for await (const line of readline.createInterface({ input: process.stdin })) {
    process.stdout.write(`${JSON.stringify(await roundTrips(Number(line)))}\n`);
  }
  await session.close();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
