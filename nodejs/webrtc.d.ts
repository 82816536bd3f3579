// Types of RemoteMedia's WebRTC server for Node.js (native: nodejs/src/webrtc/); index.d.ts
// re-exports them. README.md, "WebRtcServer from Node.js", is the guide.
/// <reference types="node" />

import type { JsonValue, ManifestObject } from './index';

/** The codes of RemoteMedia's table (docs/ARCHITECTURE.md, "Errors") a server reports. */
export type WebRtcErrorCode =
  | 'CONFIG_ERROR'
  | 'PIPELINE_ERROR'
  | 'INTERNAL_ERROR'
  | 'SIGNALING_ERROR'
  | 'PEER_ERROR'
  | 'PEER_NOT_FOUND'
  | 'PEER_ID_TAKEN'
  | 'NOT_ANNOUNCED'
  | 'MAX_PEERS_REACHED'
  | 'SESSION_NOT_FOUND'
  | 'RATE_LIMITED'
  | 'MESSAGE_TOO_LARGE'
  | 'RECONNECT_ATTEMPT'
  | 'RECONNECT_FAILED';

/** What a server's promises reject with (and `on` throws for an unknown event). */
export interface WebRtcError extends Error {
  code: WebRtcErrorCode;
  /** The peer the failure concerns, when there is one. */
  peerId?: string;
}

export interface TurnServer {
  /** turn:host:port or turns:host:port */
  url: string;
  username: string;
  credential: string;
}

/** How an external signaling server is reconnected when it goes away. */
export interface ReconnectPolicy {
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  backoffMultiplier?: number;
}

/** `WebRtcServer.create` and `connect`'s config; another key is a CONFIG_ERROR. */
export interface WebRtcServerConfig {
  /** Every peer's run: the manifest object, its JSON text or a path (required). */
  manifest: ManifestObject | string;
  /** Embedded signaling port (default 8080); 0 or null picks a free one (read `port`). */
  port?: number | null;
  /** External signaling server instead: ws://host:port/path, grpc://host:port, grpcs://... */
  signalingUrl?: string;
  /** stun:host:port URLs (none by default). */
  stunServers?: string[];
  /** TURN servers; a string is a URL with the credentials in it (turn:user:pass@host:port). */
  turnServers?: Array<TurnServer | string>;
  /** Peers served at once, 1..1000 (default 10); the next one gets MAX_PEERS_REACHED. */
  maxPeers?: number;
  /** 'opus' (the only one). */
  audioCodec?: 'opus';
  /** Default 'vp9'; 'vp8' or 'h264' for peers without VP9 (e.g. aiortc). */
  videoCodec?: 'vp8' | 'vp9' | 'h264';
  /** Address the embedded signaling listens on (default 127.0.0.1; 0.0.0.0 for every interface). */
  host?: string;
  /** The id the server announces (default 'remotemedia'); peers send their offers to it. */
  peerId?: string;
  /** Gather and accept loopback ICE candidates only (same-host peers, tests). */
  iceLoopbackOnly?: boolean;
  /** With `signalingUrl`. */
  reconnect?: ReconnectPolicy;
  /** Peer ids the server calls as soon as each is announced. */
  connectTo?: string[];
  /** Token every door of the embedded signaling port needs. */
  authToken?: string;
}

/** What a peer announced: its `capabilities` (the page sends `{audio, video, ...}`). */
export interface PeerCapabilities {
  audio?: boolean;
  video?: boolean;
  data?: boolean;
  [key: string]: JsonValue | undefined;
}

export interface PeerConnectedEvent {
  peerId: string;
  capabilities: PeerCapabilities;
  /** The `user_data` the peer announced. */
  metadata: { [key: string]: JsonValue };
}

export interface PeerDisconnectedEvent {
  peerId: string;
  reason: string;
}

/** A result of the peer's run of the manifest. */
export interface PipelineOutputEvent {
  peerId: string;
  nodeId: string;
  /** 'json', 'text', ... */
  kind: string;
  /** The parsed JSON (the text for a text result). */
  data: JsonValue;
  /** Stream time in nanoseconds; null when unknown. */
  timestamp: number | null;
}

/** A data-channel message from a peer (text arrives UTF-8 encoded; `binary` says which kind). */
export interface DataEvent {
  peerId: string;
  data: Buffer;
  binary: boolean;
  /** Arrival, Unix milliseconds. */
  timestamp: number;
}

export interface ErrorEvent {
  code: WebRtcErrorCode;
  message: string;
  /** null: the server's own failure, not a peer's. */
  peerId: string | null;
}

export interface SessionEvent {
  sessionId: string;
  eventType: 'created' | 'deleted' | 'peer_joined' | 'peer_left';
  /** null for created and deleted. */
  peerId: string | null;
}

export interface WebRtcServerEvents {
  peer_connected: PeerConnectedEvent;
  peer_disconnected: PeerDisconnectedEvent;
  pipeline_output: PipelineOutputEvent;
  data: DataEvent;
  error: ErrorEvent;
  session: SessionEvent;
}

export interface PeerInfo {
  peerId: string;
  state: 'connected';
  capabilities: PeerCapabilities;
  metadata: { [key: string]: JsonValue };
  /** Unix milliseconds. */
  connectedAt: number;
}

export interface SessionInfo {
  sessionId: string;
  peerIds: string[];
  /** Unix milliseconds. */
  createdAt: number;
  metadata: { [key: string]: JsonValue };
}

export type WebRtcServerState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

/** RemoteMedia's WebRTC server: every connected peer gets its own run of the manifest (its
 * first track goes through it, media results come back on its tracks, text/JSON results on
 * its data channel and to `pipeline_output`). Calls run in the order they are made, off the
 * event loop. A running server keeps Node alive until `shutdown`. */
export class WebRtcServer {
  private constructor();
  /** Embedded signaling on `port` (or `signalingUrl` when given). */
  static create(config: WebRtcServerConfig): Promise<WebRtcServer>;
  /** Announces itself on an external signaling server (`signalingUrl` required). */
  static connect(config: WebRtcServerConfig & { signalingUrl: string }): Promise<WebRtcServer>;
  readonly state: WebRtcServerState;
  /** The embedded signaling port (the bound one once started); null with `signalingUrl`. */
  readonly port: number | null;
  /** Calls `listener` on the event loop for each event, in the order the server posted them.
   * A listener that throws is an uncaught exception; the other listeners still run. */
  on<E extends keyof WebRtcServerEvents>(event: E, listener: (event: WebRtcServerEvents[E]) => unknown): this;
  start(): Promise<void>;
  /** Tells every peer goodbye, stops every run, frees the port; the last events are
   * delivered before it resolves. */
  shutdown(): Promise<void>;
  /** A string goes as a text message, a Buffer as binary. */
  sendToPeer(peerId: string, data: Buffer | string): Promise<void>;
  /** To every peer with an open data channel; resolves with how many. */
  broadcast(data: Buffer | string): Promise<number>;
  /** Hangs up; the peer hears `reason` first. */
  disconnectPeer(peerId: string, reason?: string): Promise<void>;
  getPeers(): Promise<PeerInfo[]>;
  /** A session (room); `metadata` must be an object. */
  createSession(sessionId: string, metadata?: { [key: string]: JsonValue }): Promise<WebRtcSession>;
  getSessions(): Promise<SessionInfo[]>;
  getSession(sessionId: string): Promise<SessionInfo | null>;
  deleteSession(sessionId: string): Promise<void>;
}

export interface WebRtcSessionEvents {
  peer_joined: string;
  peer_left: string;
}

/** A named group of peers; peers join with `addPeer` or by announcing `user_data.session`. */
export class WebRtcSession {
  private constructor();
  readonly sessionId: string;
  /** Calls `listener` with the peer id. */
  on<E extends keyof WebRtcSessionEvents>(event: E, listener: (peerId: WebRtcSessionEvents[E]) => unknown): this;
  addPeer(peerId: string): Promise<void>;
  removePeer(peerId: string): Promise<void>;
  getPeers(): Promise<string[]>;
  getInfo(): Promise<SessionInfo>;
  /** To every member with an open data channel, as text (a Buffer must hold UTF-8); resolves
   * with how many. */
  broadcast(data: Buffer | string): Promise<number>;
  /** PEER_NOT_FOUND for a peer not in the session. */
  sendToPeer(peerId: string, data: Buffer | string): Promise<void>;
}
