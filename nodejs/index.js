'use strict';
// RemoteMedia for Node.js: the runtime API over the native module (index.node, built by
// scripts/setup.sh). Types: index.d.ts; guide: README.md, "From Node.js".
//
// As the Python package's runtime.py does over its native module, this file tags each input
// (`toNative`), names each output's fields (`fromNative`, `unpack`), makes every call a promise and
// keeps the stream session's receiving side (what is ready, who waits); the native module
// converts the values (lending JavaScript memory to pipelines) and runs the pipelines off the
// JavaScript thread.

const { internal, ...native } = require('./index.node');

/** An input as `[tag, ...fields]`, the fields the native module converts (the Python
 * package's `_to_native`). */
function toNative(item) {
  if (typeof item === 'string') return ['text', item];
  if (Buffer.isBuffer(item)) return ['binary', item];
  if (ArrayBuffer.isView(item) || item instanceof ArrayBuffer || item instanceof SharedArrayBuffer) {
    return ['tensor', item, undefined];
  }
  if (item !== null && typeof item === 'object' && !Array.isArray(item)) {
    switch (item.type) {
      case 'audio':
        return ['audio', item.samples, item.sampleRate, item.channels, item.pts];
      case 'text':
        return ['text', item.text];
      case 'json':
        return ['json', item.data];
      case 'binary':
        return ['binary', item.data];
      case 'tensor':
        return ['tensor', item.data, item.shape];
      default:
        break;
    }
  }
  return ['json', item];
}

/** An output as the object the API gives, from the positional arguments the native module
 * hands to `emit` for one output (a node's failure comes as `('error', nodeId, undefined,
 * Error)`). */
function fromNative(type, nodeId, pts, a, b, c, d, e) {
  switch (type) {
    case 'audio':
      return { type, nodeId, pts, samples: a, sampleRate: b, channels: c };
    case 'text':
      return { type, nodeId, pts, text: a };
    case 'tensor':
      return { type, nodeId, pts, data: a, shape: b, dtype: c };
    case 'video':
      return { type, nodeId, pts, data: a, width: b, height: c, format: d, keyframe: e };
    case 'control':
      return { type, nodeId, pts, control: a };
    case 'json':
      return { type, nodeId, pts, data: JSON.parse(a) };
    case 'error':
      return a;
    default: // binary
      return { type, nodeId, pts, data: a };
  }
}

/** Output kinds by their number in the native module's table (nodejs/src/output.rs). */
const KINDS = ['audio', 'text', 'json', 'binary', 'tensor', 'video', 'control', 'error'];
/** Numbers per output in the table. */
const COLUMNS = 7;

/** Appends the outputs of one native delivery to `list`, as the objects the API gives (a
 * node's failure as its Error). The columns are described in nodejs/src/output.rs. */
function unpack(list, table, strings, values, json, shared) {
  const parsed = json === undefined ? undefined : JSON.parse(json);
  for (let i = 0, r = 0; r < table.length; i += 1, r += COLUMNS) {
    const type = KINDS[table[r]];
    const nodeId = strings[table[r + 1]];
    const pts = Number.isNaN(table[r + 2]) ? null : table[r + 2];
    const a = table[r + 3];
    switch (type) {
      case 'audio': {
        const samples = a < 0 ? values[i] : new Float32Array(shared, a, table[r + 4]);
        list.push({ type, nodeId, pts, samples, sampleRate: table[r + 5], channels: table[r + 6] });
        break;
      }
      case 'json':
        list.push({ type, nodeId, pts, data: parsed[a] });
        break;
      case 'tensor':
        list.push({ type, nodeId, pts, data: values[i], shape: parsed[a], dtype: strings[table[r + 4]] });
        break;
      case 'video':
        list.push({
          type, nodeId, pts, data: values[i], width: a, height: table[r + 4],
          format: strings[table[r + 5]], keyframe: table[r + 6] === 1,
        });
        break;
      case 'text':
        list.push({ type, nodeId, pts, text: values[i] });
        break;
      case 'control':
        list.push({ type, nodeId, pts, control: values[i] });
        break;
      case 'error':
        list.push(values[i]);
        break;
      default: // binary
        list.push({ type, nodeId, pts, data: values[i] });
    }
  }
}

/** An `emit` for the native module that appends each output to `list`: one output's positional
 * arguments, or a delivery's columns. */
function collector(list) {
  return (a0, a1, a2, a3, a4, a5, a6, a7) => {
    if (typeof a0 === 'string') list.push(fromNative(a0, a1, a2, a3, a4, a5, a6, a7));
    else unpack(list, a0, a1, a2, a3, a4);
  };
}

/** Runs a manifest with no input (its nodes drain) and resolves with its outputs. */
async function executePipeline(manifest, options) {
  return executePipelineWithInput(manifest, [], options);
}

/** Runs every input, in order, through a fresh run of the manifest, drains it and resolves
 * with every output in order; with `enableMetrics`, `{outputs, metrics}`. */
async function executePipelineWithInput(manifest, inputs, options) {
  const outputs = [];
  const metrics = await internal.run(manifest, Array.from(inputs, toNative), collector(outputs));
  return options?.enableMetrics ? { outputs, metrics } : outputs;
}

/** Lets only `createStreamSession` construct a StreamSession. */
const OPENED = Symbol('opened');

/** A live run of a manifest; made by `createStreamSession`. */
class StreamSession {
  /** The native session (an external the `internal.session*` functions take). */
  #native;
  /** Outputs (and node failures, as Errors) the native session handed over and nobody
   * received yet. */
  #ready;
  #closing = null;
  #closed = false;
  #metrics = null;

  constructor(opened, session, ready) {
    if (opened !== OPENED) throw new TypeError('use createStreamSession(manifest) to start a session');
    this.#native = session;
    this.#ready = ready;
  }

  /** Sends one input; resolves once it went in (waits while the pipeline is full). After
   * `close`, rejects with ERR_INVALID_STATE. */
  async send(item) {
    const [kind, a, b, c, d] = toNative(item);
    const queued = internal.sessionSend(this.#native, kind, a, b, c, d);
    if (queued) await queued;
  }

  /** The next output, or `null` once the session is closed and everything was received.
   * Rejects with a node's failure in its place among the outputs. */
  async recv() {
    for (;;) {
      if (this.#ready.length > 0) {
        const next = this.#ready.shift();
        if (next instanceof Error) throw next;
        return next;
      }
      if (this.#closed) return null;
      internal.sessionTakeReady(this.#native);
      if (this.#ready.length > 0) continue;
      // Armed before the last look, so an output queued from here on settles `woken`.
      const woken = internal.sessionArm(this.#native);
      internal.sessionTakeReady(this.#native);
      if (this.#ready.length > 0) {
        internal.sessionDisarm(this.#native);
        continue;
      }
      await woken;
    }
  }

  /** Ends the input: drains the pipeline (after the inputs sent before). Resolves with the
   * outputs not received yet, which `recv` and iteration also still yield. */
  close() {
    if (!this.#closing) {
      this.#closing = internal.sessionClose(this.#native).then(
        (metrics) => {
          this.#metrics = metrics;
          this.#finish();
        },
        (error) => {
          this.#finish();
          throw error;
        },
      );
    }
    return this.#closing.then(() => this.#ready.filter((item) => !(item instanceof Error)));
  }

  #finish() {
    this.#closed = true;
    internal.sessionDisarm(this.#native);
  }

  /** Each node's counters: `{nodeId, processed, busyMs, errors, counters}`. */
  metrics() {
    return this.#metrics ?? internal.sessionMetrics(this.#native);
  }

  /** Yields every output until the session is closed and drained. */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const out = await this.recv();
      if (out === null) return;
      yield out;
    }
  }
}

/** Starts a session of the manifest (its nodes, Python workers too, start off the event loop). */
async function createStreamSession(manifest) {
  const ready = [];
  return new StreamSession(OPENED, await internal.openSession(manifest, collector(ready)), ready);
}

module.exports = {
  ...native,
  executePipeline,
  executePipelineWithInput,
  createStreamSession,
  StreamSession,
};
