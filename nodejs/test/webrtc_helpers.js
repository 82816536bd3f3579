'use strict';
// What the WebRtcServer tests share: the module, an aiortc peer in its own process
// (webrtc_peer_driver.py), remotemedia-server as a child process, and waiting. Everything
// stays on 127.0.0.1 with free ports (docs/ARCHITECTURE.md, "Tests and the network").

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const ROOT = path.resolve(__dirname, '..', '..');
const LAUNCH = path.join(ROOT, 'examples', 'launch');
const VAD = path.join(LAUNCH, 'vad.json');
const PASSTHROUGH = path.join(LAUNCH, 'passthrough.json');
const SPEECH = path.join(LAUNCH, 'speech.wav');
const PYTHON = path.join(ROOT, '.venv', 'bin', 'python');
const SERVER_BINARY = path.join(ROOT, 'target', 'debug', 'remotemedia-server');

// The module finds its elements itself: nothing from a GST_PLUGIN_PATH may stand in for them.
delete process.env.GST_PLUGIN_PATH;

/** The native module: through index.js once it exists, else the built library itself. */
function loadNative() {
  const dir = path.resolve(__dirname, '..');
  return fs.existsSync(path.join(dir, 'index.js')) ? require(dir) : require(path.join(dir, 'index.node'));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `check()` is truthy (checked every 50 ms); its value. */
async function waitFor(check, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Collects a server's events by name. */
function record(server, names) {
  const seen = Object.fromEntries(names.map((n) => [n, []]));
  for (const name of names) server.on(name, (event) => seen[name].push(event));
  return seen;
}

/** An aiortc peer in a Python process, commanded over its stdin. */
class AiortcPeer {
  constructor() {
    this.events = [];
    this.stderr = '';
    this.proc = spawn(PYTHON, [path.join(__dirname, 'webrtc_peer_driver.py')], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.proc.stderr.on('data', (chunk) => { this.stderr += chunk; });
    readline.createInterface({ input: this.proc.stdout }).on('line', (line) => {
      this.events.push(JSON.parse(line));
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
  }

  command(cmd) {
    this.proc.stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Announces and offers; resolves with 'called' or 'refused' (with the server's error). */
  async call({ port, peerId, target = 'remotemedia', wav = null, userData = {}, retryForS = 0 }) {
    const from = this.events.length;
    this.command({ op: 'call', port, peerId, target, wav, userData, retryForS });
    return this.event((e) => ['called', 'refused', 'failed'].includes(e.event), 'the call', from, 60000);
  }

  /** The first event from index `from` on that `match`es. */
  event(match, what, from = 0, timeoutMs = 20000) {
    return waitFor(() => this.events.slice(from).find(match), `${what} (peer stderr: ${this.stderr.slice(-2000)})`, timeoutMs);
  }

  /** Data-channel messages received, as Buffers (text ones UTF-8 encoded) with `binary`. */
  messages() {
    return this.events.filter((e) => e.event === 'message').map((e) => ({
      binary: e.binary,
      data: e.binary ? Buffer.from(e.base64, 'base64') : Buffer.from(e.text, 'utf8'),
    }));
  }

  sendText(text) {
    this.command({ op: 'send', text });
  }

  sendBinary(buffer) {
    this.command({ op: 'send', base64: Buffer.from(buffer).toString('base64') });
  }

  async close() {
    if (this.proc.exitCode === null) this.command({ op: 'close' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** remotemedia-server on loopback, as tests/server_process.py starts it. */
class SignalingServer {
  constructor({ grpc, ws }) {
    if (!fs.existsSync(SERVER_BINARY)) {
      throw new Error(`${SERVER_BINARY} missing: run cargo build -p remotemedia-signaling`);
    }
    this.argv = ['--grpc-bind', grpc, '--ws-bind', ws, '--metrics-bind', 'off'];
  }

  async start() {
    this.proc = spawn(SERVER_BINARY, this.argv, {
      stdio: ['ignore', 'pipe', 'ignore'],
      env: { ...process.env, RUST_LOG: 'warn' },
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const lines = readline.createInterface({ input: this.proc.stdout });
    const [line] = await Promise.race([
      new Promise((resolve) => lines.once('line', (l) => resolve([l]))),
      this.exited.then(() => [null]),
    ]);
    const m = line && /grpc=(\S+) ws=(\S+)/.exec(line);
    if (!m) throw new Error(`remotemedia-server did not start: ${line}`);
    this.wsPort = Number(m[2].split(':').pop());
    return this;
  }

  /** Dies at once, as a crashed server would. */
  async kill() {
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop() {
    if (this.proc && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      await this.exited;
    }
  }
}

module.exports = {
  AiortcPeer, PASSTHROUGH, SPEECH, SignalingServer, VAD, freePort, loadNative, record, sleep, waitFor,
};
