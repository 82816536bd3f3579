'use strict';
// B16, the Node.js side: `executePipelineWithInput(vad.json, 20 ms inputs)` on 60 s of the
// shipped speech (looped). Driven by benches/node_unary_vad.py: each line on stdin asks for
// one run; the answer is its wall time in ns and the number of outputs.

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const rm = require('../nodejs');

const LAUNCH = path.join(__dirname, '..', 'examples', 'launch');

const { speech } = require('../examples/launch/speech_wav');

async function main() {
  const manifest = fs.readFileSync(path.join(LAUNCH, 'vad.json'), 'utf8');
  const { samples, rate } = speech();
  const audio = new Float32Array(rate * 60);
  for (let i = 0; i < audio.length; i += samples.length) audio.set(samples.subarray(0, audio.length - i), i);
  const step = rate / 50;
  const inputs = [];
  for (let i = 0; i + step <= audio.length; i += step) {
    const pts = (i / step) * 20_000_000;
    inputs.push({ type: 'audio', samples: audio.subarray(i, i + step), sampleRate: rate, channels: 1, pts });
  }
  const run = async () => {
    const start = process.hrtime.bigint();
    const outputs = await rm.executePipelineWithInput(manifest, inputs);
    return `${process.hrtime.bigint() - start} ${outputs.length}`;
  };
  await run(); // warm-up
  process.stdout.write('ready\n');
  // Each line asks for one run.
  for await (const _ of readline.createInterface({ input: process.stdin })) {
    process.stdout.write(`${await run()}\n`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
