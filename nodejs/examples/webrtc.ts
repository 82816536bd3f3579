// RemoteMedia's WebRTC server from TypeScript: every browser that opens http://127.0.0.1:8080/
// gets its own run of the VAD manifest; its results arrive here and go back on its data
// channel. Run it from the repository root after compiling it (or with Node 22.6+'s type
// stripping); Ctrl+C shuts it down.

import { WebRtcServer, type PipelineOutputEvent, type WebRtcError } from '..';

async function main(): Promise<void> {
  const server = await WebRtcServer.create({
    port: 8080,
    manifest: 'examples/launch/vad.json',
    stunServers: [],
    maxPeers: 5,
    videoCodec: 'vp9',
  });

  server
    .on('peer_connected', (e) => {
      console.log(`${e.peerId} joined (audio: ${e.capabilities.audio ?? false})`, e.metadata);
      void server.sendToPeer(e.peerId, 'welcome');
    })
    .on('pipeline_output', (e: PipelineOutputEvent) => {
      const vad = e.data as { is_speech_start?: boolean; is_speech_end?: boolean };
      if (vad.is_speech_start) console.log(`${e.peerId} speaks (at ${e.timestamp} ns)`);
      if (vad.is_speech_end) console.log(`${e.peerId} is silent`);
    })
    .on('data', (e) => console.log(`${e.peerId} sent ${e.binary ? `${e.data.length} bytes` : e.data.toString()}`))
    .on('peer_disconnected', (e) => console.log(`${e.peerId} left: ${e.reason}`))
    .on('error', (e) => console.warn(e.code, e.peerId ?? 'server', e.message))
    .on('session', (e) => console.log(`session ${e.sessionId}: ${e.eventType} ${e.peerId ?? ''}`));

  try {
    await server.start();
  } catch (e) {
    const error = e as WebRtcError;
    console.error(`cannot start: ${error.code}: ${error.message}`);
    process.exit(1);
  }
  console.log(`open http://127.0.0.1:${server.port}/ and speak`);

  // A room: peers join it when they announce user_data.session (the page's ?session=lobby).
  const lobby = await server.createSession('lobby', { topic: 'demo' });
  lobby.on('peer_joined', (peerId) => void lobby.sendToPeer(peerId, 'welcome to the lobby'));

  process.once('SIGINT', () => {
    void (async () => {
      console.log(`${await server.broadcast(Buffer.from('bye'))} peers told goodbye`);
      for (const peer of await server.getPeers()) await server.disconnectPeer(peer.peerId, 'server closing');
      await server.shutdown(); // the event loop may end once the server has stopped
    })();
  });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
