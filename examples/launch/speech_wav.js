'use strict';
// The shipped speech sample (speech.wav, 16-bit mono PCM) as Float32Array samples in [-1, 1),
// for the Node.js examples, tests and benchmarks.

const fs = require('node:fs');
const path = require('node:path');

function speech() {
  const wav = fs.readFileSync(path.join(__dirname, 'speech.wav'));
  let at = 12;
  let rate = 0;
  while (at < wav.length) {
    const id = wav.toString('ascii', at, at + 4);
    const size = wav.readUInt32LE(at + 4);
    if (id === 'fmt ') rate = wav.readUInt32LE(at + 12);
    if (id === 'data') {
      const samples = new Float32Array(size / 2);
      for (let i = 0; i < samples.length; i++) samples[i] = wav.readInt16LE(at + 8 + 2 * i) / 32768;
      return { samples, rate };
    }
    at += 8 + size;
  }
  throw new Error('speech.wav has no data chunk');
}

module.exports = { speech };
