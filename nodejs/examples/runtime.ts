// The runtime API from TypeScript; `npx --prefix nodejs tsc -p nodejs` checks it (scripts/test.sh).
// Run it from the repository root after compiling it (or with Node 22.6+'s type stripping).

import {
  createStreamSession,
  executePipelineWithInput,
  getRuntimeVersion,
  type ManifestError,
  type Output,
  type PipelineError,
} from '..';

const vad = 'examples/launch/vad.json'; // a path, JSON text or an object

async function main(): Promise<void> {
  console.log('runtime', getRuntimeVersion());

  // Unary: every input in order, every output back.
  const samples = new Float32Array(22050); // 1 s of silence at 22.05 kHz
  const outputs: Output[] = await executePipelineWithInput(vad, [
    { type: 'audio', samples, sampleRate: 22050, channels: 1 },
  ]);
  let audioSamples = 0;
  const speech: boolean[] = [];
  for (const out of outputs) {
    if (out.type === 'audio') audioSamples += out.samples.length; // 16 kHz after the resampler
    else if (out.type === 'json') speech.push(Boolean((out.data as { has_speech?: boolean }).has_speech));
  }
  console.log(`${audioSamples} samples at 16 kHz, ${speech.length} VAD results, speech in ${speech.filter(Boolean).length}`);

  // With counters.
  const { metrics } = await executePipelineWithInput(vad, [], { enableMetrics: true });
  for (const m of metrics) console.log(m.nodeId, m.processed, m.busyMs.toFixed(3), 'ms', m.counters);

  // Streaming: 20 ms frames in, outputs as they come.
  const session = await createStreamSession({
    version: 'v1',
    nodes: [{ id: 'pass', node_type: 'PassThrough' }],
  });
  const received = (async () => {
    let n = 0;
    for await (const out of session) n += out.type === 'audio' ? 1 : 0;
    return n;
  })();
  for (let i = 0; i < 50; i++) {
    await session.send({ type: 'audio', samples: new Float32Array(320), sampleRate: 16000, pts: i * 20_000_000 });
  }
  await session.close();
  console.log('frames back:', await received);

  // Errors carry a code.
  try {
    await executePipelineWithInput({ version: 'v1', nodes: [{ id: 'v', node_type: 'SileroVad' }] }, []);
  } catch (e) {
    const error = e as ManifestError | PipelineError;
    if (error.code === 'MANIFEST_ERROR') console.log(error.errors.map((p) => `${p.place}: ${p.message}`));
    else console.log(error.code, error.nodeId, error.message);
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
