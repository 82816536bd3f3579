//! `WasmNode`: runs a sandboxed WebAssembly module (wasmtime) on every input. The module sees
//! nothing of the host but its input, its output buffer and three host functions that call
//! the remote services its node whitelists (`host.rs`); its memory is capped, each call is
//! time-limited, and a trap is an error of the node, never a crash of the process. The ABI is
//! in `guest.rs`, the payloads in `payload.rs`.

mod guest;
mod host;
mod memory;
mod payload;
mod services;
#[cfg(test)]
mod tests;
mod watchdog;

use std::path::Path;
use std::time::Duration;

use wasmtime::Linker;

use crate::data::{Bytes, Packet, RuntimeData};
use crate::node::{Emitter, Node, NodeError, NodeSpec, StreamFormat, Threading, no_latency};
use crate::params::{ParamDefault, ParamSpec, ParamType, Params};

use guest::{Guest, Limits, WasmError, compile};
use host::HostState;
use payload::{Kind, OutputError, decode, encode, lent_audio};

const DEFAULT_FUNCTION: &str = "process_with_remote";
const DEFAULT_MEMORY_LIMIT: i64 = 64 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS: i64 = 100;

static PARAMS: &[ParamSpec] = &[
    ParamSpec::new(
        "wasm_path",
        ParamType::Str,
        ParamDefault::Required,
        "the module: a .wasm file, or a .wat text file",
    ),
    ParamSpec::new(
        "function_name",
        ParamType::Str,
        ParamDefault::Str(DEFAULT_FUNCTION),
        "the exported function called for every input: (input_ptr, input_len, output_ptr, \
         output_len_ptr) -> i32",
    ),
    ParamSpec::new(
        "input",
        ParamType::Enum(Kind::NAMES),
        ParamDefault::Str("audio"),
        "what the module gets: audio (f32 little-endian samples), text, json or binary; other \
         inputs pass by",
    ),
    ParamSpec::new(
        "output",
        ParamType::Enum(Kind::NAMES),
        ParamDefault::Derived,
        "what the module writes (default: as input); audio keeps the input's rate, channels and \
         timestamps; with audio input and another output the audio passes through too",
    ),
    ParamSpec::new(
        "output_capacity",
        ParamType::Int {
            min: 1,
            max: 256 * 1024 * 1024,
        },
        ParamDefault::Derived,
        "bytes of the output buffer the module gets (default: the input's size)",
    ),
    ParamSpec::new(
        "memory_limit",
        ParamType::Int {
            min: 65_536,
            max: 4 * 1024 * 1024 * 1024,
        },
        ParamDefault::Int(DEFAULT_MEMORY_LIMIT),
        "bytes the module's memory may grow to",
    ),
    ParamSpec::new(
        "timeout_ms",
        ParamType::Int {
            min: 1,
            max: 600_000,
        },
        ParamDefault::Int(DEFAULT_TIMEOUT_MS),
        "time limit of one call, host calls included; the call is stopped after it",
    ),
    ParamSpec::new(
        "services",
        ParamType::Json,
        ParamDefault::Derived,
        "the remote services the module may call, by name: {endpoint, node_type and params, or \
         manifest, timeout_ms, retry, auth_token}; default none",
    ),
];

pub static SPEC: NodeSpec = NodeSpec {
    node_type: "WasmNode",
    aliases: &["HybridWasmNode", "WasmEdgeNode"],
    doc: "Runs a sandboxed WebAssembly module (wasmtime) on every input, with host calls to the \
          remote services it whitelists (call_remote_service, stream_to_remote, \
          get_remote_session); memory and time are capped.",
    params: PARAMS,
    // Host calls reach other servers: the node gets a thread when its calls turn slow.
    threading: Threading::Adaptive,
    create: |p| Ok(Box::new(WasmNode::new(p)?)),
    format,
    latency_ns: no_latency,
};

fn kinds(p: &Params) -> (Kind, Kind) {
    let input = p.str("input").and_then(Kind::parse).unwrap_or(Kind::Audio);
    let output = p.str("output").and_then(Kind::parse).unwrap_or(input);
    (input, output)
}

fn format(p: &Params, input: &StreamFormat) -> Result<StreamFormat, NodeError> {
    let (input_kind, output_kind) = kinds(p);
    if output_kind == Kind::Audio && input_kind != Kind::Audio {
        return Err(NodeError::Config(
            "param \"output\": audio output needs \"input\": \"audio\" (it takes the input's \
             rate, channels and timestamps)"
                .into(),
        ));
    }
    Ok(match (input_kind, output_kind) {
        // Audio passes through, or is replaced by audio of its format.
        (Kind::Audio, _) => input.clone(),
        (_, Kind::Text) => StreamFormat::Text,
        (_, Kind::Json) => StreamFormat::Json,
        _ => StreamFormat::Any,
    })
}

impl From<WasmError> for NodeError {
    fn from(e: WasmError) -> Self {
        match e {
            WasmError::Read { .. }
            | WasmError::Compile { .. }
            | WasmError::Instantiate { .. }
            | WasmError::MissingExport { .. }
            | WasmError::Signature { .. } => NodeError::Config(e.to_string()),
            _ => NodeError::Failed(e.to_string()),
        }
    }
}

struct WasmNode {
    path: String,
    guest: Guest,
    input_kind: Kind,
    output_kind: Kind,
    output_capacity: Option<usize>,
}

impl WasmNode {
    fn new(p: &Params) -> Result<Self, NodeError> {
        let path = p.str("wasm_path").unwrap_or_default();
        let (input_kind, output_kind) = kinds(p);
        let label = Path::new(path)
            .file_stem()
            .map_or_else(|| path.to_owned(), |s| s.to_string_lossy().into_owned());
        let services = services::parse(p.get("services"), &label)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let module = compile(Path::new(path))?;
        let mut linker = Linker::new(module.engine());
        host::link(&mut linker)
            .map_err(|e| NodeError::Failed(format!("cannot set up the host functions: {e:#}")))?;
        let limits = Limits {
            memory_bytes: p.i64("memory_limit").unwrap_or(DEFAULT_MEMORY_LIMIT) as usize,
            timeout: Duration::from_millis(p.i64("timeout_ms").unwrap_or(DEFAULT_TIMEOUT_MS) as u64),
        };
        let guest = Guest::new(
            path,
            &module,
            &linker,
            p.str("function_name").unwrap_or(DEFAULT_FUNCTION),
            &limits,
            HostState::new(services, input_kind),
        )?;
        Ok(Self {
            path: path.to_owned(),
            guest,
            input_kind,
            output_kind,
            output_capacity: p.i64("output_capacity").map(|n| n as usize),
        })
    }

    /// Hands what the host functions gathered during a call to the node's outputs.
    fn drain_host(&mut self, out: &mut Emitter) {
        let state = self.guest.state();
        for w in state.warnings.drain(..) {
            out.warn(w);
        }
        for o in state.joined.drain(..) {
            out.emit_at(o.data, o.pts);
        }
    }

    fn bad_output(&self, e: OutputError) -> NodeError {
        NodeError::Failed(format!("WASM module {}: {e}", self.path))
    }
}

impl Node for WasmNode {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let bytes = encode(self.input_kind, &input.data);
        let Some(bytes) = bytes else {
            out.emit_at(input.data, input.pts);
            return Ok(());
        };
        let capacity = self.output_capacity.unwrap_or(bytes.len());
        // Only services get to see the input (audio sent to them takes its format).
        let serving = !self.guest.state().services.is_empty();
        if serving {
            self.guest.state().input = input.data.clone();
        }
        let written = self.guest.call(&bytes, capacity);
        drop(bytes);
        if serving {
            // Nothing keeps the input alive after the call.
            self.guest.state().input = RuntimeData::Binary(Bytes::new());
        }
        self.drain_host(out);
        let written = written?;
        // Audio lent in place: the frame is built where it is emitted (no input passes by).
        if self.output_kind == Kind::Audio
            && let Some(samples) = self.guest.lend(written)
        {
            let pts = input.pts;
            return lent_audio(samples, &input.data, |data| out.emit_at(data, pts))
                .map_err(|e| self.bad_output(e));
        }
        // Else decoded from a copy of the bytes.
        let result = decode(self.output_kind, self.guest.bytes(written)?, &input.data)
            .map_err(|e| self.bad_output(e))?;
        if self.input_kind == Kind::Audio && self.output_kind != Kind::Audio {
            out.emit_at(input.data, input.pts);
        }
        if let Some(data) = result {
            out.emit_at(data, input.pts);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        let state = self.guest.state();
        let rest = state.services.close(&mut state.warnings);
        state.joined.extend(rest);
        self.drain_host(out);
        Ok(())
    }

    fn reset(&mut self) {
        self.guest.state().services.reset();
    }
}
