// Types of RemoteMedia for Node.js (index.js). README.md, "From Node.js", is the guide.
/// <reference types="node" />

export * from './webrtc';

/** A manifest: its JSON text (a string starting with `{`), the manifest object, or a path. */
export type Manifest = string | ManifestObject;

/** RemoteMedia's manifest v1 (README.md, "Manifests"). */
export interface ManifestObject {
  version: string;
  metadata?: Record<string, unknown>;
  nodes: Array<{
    id: string;
    node_type: string;
    params?: Record<string, unknown>;
    is_streaming?: boolean;
    is_output_node?: boolean;
    executor?: string | Record<string, unknown>;
    python_module?: string;
    [field: string]: unknown;
  }>;
  connections?: Array<{ from: string; to: string }>;
  [field: string]: unknown;
}

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** Interleaved f32 audio. `samples` is lent to the pipeline, not copied: do not detach,
 * transfer or write it while a pipeline holds it. */
export interface AudioInput {
  type: 'audio';
  samples: Float32Array;
  sampleRate: number;
  /** Default 1. */
  channels?: number;
  /** Nanoseconds. */
  pts?: number;
}

/** The typed arrays a tensor may be (their dtypes: float32, float64, int32, int64, uint8). */
export type TensorArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

/** A JSON value sent as is. An object with a `type` key goes in as `{type: 'json', data}`: a
 * `type` RemoteMedia knows makes the object that kind of input. */
export type JsonInput =
  | null
  | boolean
  | number
  | JsonValue[]
  | ({ type?: never } & { [key: string]: JsonValue });

export type Input =
  | AudioInput
  | string
  | Buffer
  | TensorArray
  | { type: 'text'; text: string }
  | { type: 'json'; data: JsonValue }
  | { type: 'binary'; data: Buffer | Uint8Array }
  | { type: 'tensor'; data: TensorArray; shape?: number[] }
  | JsonInput;

interface OutputBase {
  /** The node that delivered it. */
  nodeId: string;
  /** Nanoseconds, or null when the data has no time. */
  pts: number | null;
}

export interface AudioOutput extends OutputBase {
  type: 'audio';
  /** The caller's own Float32Array (or a view of its buffer) when a node passed the input
   * through; otherwise the node's samples. */
  samples: Float32Array;
  sampleRate: number;
  channels: number;
}

export interface TextOutput extends OutputBase {
  type: 'text';
  text: string;
}

export interface JsonOutput extends OutputBase {
  type: 'json';
  data: JsonValue;
}

export interface BinaryOutput extends OutputBase {
  type: 'binary';
  data: Buffer;
}

export interface TensorOutput extends OutputBase {
  type: 'tensor';
  dtype: 'float32' | 'float64' | 'int32' | 'int64' | 'uint8';
  shape: number[];
  data: TensorArray;
}

export interface VideoOutput extends OutputBase {
  type: 'video';
  data: Buffer;
  width: number;
  height: number;
  format: 'I420' | 'NV12' | 'RGB' | 'RGBA' | 'ENCODED';
  keyframe: boolean;
}

export interface ControlOutput extends OutputBase {
  type: 'control';
  control: string;
}

export type Output =
  | AudioOutput
  | TextOutput
  | JsonOutput
  | BinaryOutput
  | TensorOutput
  | VideoOutput
  | ControlOutput;

/** One node's counters. */
export interface NodeMetrics {
  nodeId: string;
  processed: number;
  busyMs: number;
  errors: number;
  /** What the node counts itself, by name (e.g. a SpeculativeVADGate's `speculations`). */
  counters: Record<string, number>;
}

export interface RunOptions {
  /** Resolve with `{outputs, metrics}` instead of the outputs alone. */
  enableMetrics?: boolean;
}

export interface RunWithMetrics {
  outputs: Output[];
  metrics: NodeMetrics[];
}

/** The `code` of every error the API rejects with (`error.code`). */
export type ErrorCode =
  | 'MANIFEST_ERROR'
  | 'PIPELINE_ERROR'
  | 'CONFIG_ERROR'
  | 'INTERNAL_ERROR'
  | 'ERR_INVALID_ARG_TYPE'
  | 'ERR_INVALID_ARG_VALUE'
  | 'ERR_INVALID_STATE';

/** An invalid manifest: the message is the full report, `errors` its problems. */
export interface ManifestError extends Error {
  code: 'MANIFEST_ERROR';
  errors: Array<{ place: string; message: string }>;
}

/** A node that failed while the pipeline ran. */
export interface PipelineError extends Error {
  code: 'PIPELINE_ERROR' | 'CONFIG_ERROR' | 'INTERNAL_ERROR';
  nodeId: string;
}

/** Runs a manifest with no input (its nodes drain) and resolves with its outputs. */
export function executePipeline(manifest: Manifest, options?: RunOptions & { enableMetrics?: false }): Promise<Output[]>;
export function executePipeline(manifest: Manifest, options: RunOptions & { enableMetrics: true }): Promise<RunWithMetrics>;
export function executePipeline(manifest: Manifest, options?: RunOptions): Promise<Output[] | RunWithMetrics>;

/** Runs every input, in order, through a fresh run of the manifest, drains it and resolves
 * with every output in order. The pipeline runs off the event loop. */
export function executePipelineWithInput(
  manifest: Manifest,
  inputs: Iterable<Input>,
  options?: RunOptions & { enableMetrics?: false },
): Promise<Output[]>;
export function executePipelineWithInput(
  manifest: Manifest,
  inputs: Iterable<Input>,
  options: RunOptions & { enableMetrics: true },
): Promise<RunWithMetrics>;
export function executePipelineWithInput(
  manifest: Manifest,
  inputs: Iterable<Input>,
  options?: RunOptions,
): Promise<Output[] | RunWithMetrics>;

/** A live run of a manifest: send inputs, receive outputs as they come, close to drain. */
export class StreamSession implements AsyncIterable<Output> {
  private constructor(session: never);
  /** Sends one input; resolves once it went in (waits while the pipeline is full). */
  send(item: Input): Promise<void>;
  /** The next output; `null` once the session is closed and everything was received.
   * Rejects with a node's failure in its place among the outputs. */
  recv(): Promise<Output | null>;
  /** Ends the input and drains the pipeline; resolves with the outputs not received yet,
   * which `recv` and iteration also still yield. */
  close(): Promise<Output[]>;
  /** Each node's counters. */
  metrics(): NodeMetrics[];
  [Symbol.asyncIterator](): AsyncIterator<Output>;
}

/** Starts a session of the manifest; its nodes (Python workers too) start off the event loop. */
export function createStreamSession(manifest: Manifest): Promise<StreamSession>;

/** The runtime's version. */
export function getRuntimeVersion(): string;

/** Whether the native runtime is loaded (it is, once this module loads). */
export function isAvailable(): boolean;
