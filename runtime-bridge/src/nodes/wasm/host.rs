//! What a module's store holds, and the host functions it may import from `env`: the only way
//! out of the sandbox.
//!
//! - `call_remote_service(name_ptr, name_len, data_ptr, data_len, result_ptr, result_len_ptr)
//!   -> i32` runs the named service once on the data and writes the JSON of its outputs at
//!   `result_ptr` (capacity at `result_len_ptr`, as for the node's function: -2 and the size
//!   needed when it is too small; the result is kept for that retry, so the service runs once).
//! - `stream_to_remote(name_ptr, name_len, data_ptr, data_len) -> i32` feeds the service's
//!   streaming session (one per node instance and service); its outputs join the node's.
//! - `get_remote_session(name_ptr, name_len, out_ptr, out_len_ptr) -> i32` writes the id of
//!   that session (-1 while none is open).
//!
//! The data is of the node's `input` kind (audio in the format of the input being processed).
//! A service not in the node's `services`, or one that fails, makes the call return -1 and
//! posts a warning naming it; the pipeline goes on.

use std::time::{Duration, Instant};

use wasmtime::{Caller, Linker, ResourceLimiter};

use super::memory::write_at;
use super::payload::{Kind, service_input};
use super::services::Services;
use crate::data::RuntimeData;
use crate::executor::Output;

/// Caps the memory a module may grow to, and remembers that it refused (a growth past the
/// cap traps: a module that grows forever stops at once, with a clear error).
#[derive(Default)]
pub struct MemoryCap {
    pub limit: usize,
    pub refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.refused = true;
            return Err(wasmtime::Error::msg(format!(
                "memory_limit ({} bytes) reached",
                self.limit
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

pub struct HostState {
    pub memory: MemoryCap,
    /// The time limit of the call in progress (`None` outside calls).
    limit: Option<Duration>,
    /// When the limit's clock started: at the first epoch tick or host call of the call, read
    /// then and not at the call's start, which keeps the clock off the path of short calls.
    since: Option<Instant>,
    pub services: Services,
    /// The node's `input` kind, and the input being processed (for audio sent to services).
    pub input_kind: Kind,
    pub input: RuntimeData,
    /// Outputs of streaming services, to join the node's outputs after the call.
    pub joined: Vec<Output>,
    pub warnings: Vec<String>,
}

impl HostState {
    pub fn new(services: Services, input_kind: Kind) -> Self {
        Self {
            memory: MemoryCap::default(),
            limit: None,
            since: None,
            services,
            input_kind,
            input: RuntimeData::Binary(Default::default()),
            joined: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A call starts that may run for `limit`.
    pub fn start_call(&mut self, limit: Duration) {
        self.limit = Some(limit);
        self.since = None;
    }

    /// When the call in progress must end. The clock starts on the first question, which
    /// comes after the call started and at most one watchdog tick later (the tick runs the
    /// epoch callback): a call is never stopped early, and at most that tick late.
    pub fn deadline(&mut self) -> Option<Instant> {
        let limit = self.limit?;
        Some(*self.since.get_or_insert_with(Instant::now) + limit)
    }

    pub fn deadline_passed(&mut self) -> bool {
        self.deadline().is_some_and(|d| Instant::now() >= d)
    }
}

/// Defines the host functions in `linker`.
pub fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "call_remote_service",
        |mut caller: Caller<'_, HostState>,
         name_ptr: i32,
         name_len: i32,
         data_ptr: i32,
         data_len: i32,
         result_ptr: i32,
         result_len_ptr: i32|
         -> i32 {
            let Some((name, data)) = args(&mut caller, (name_ptr, name_len), (data_ptr, data_len))
            else {
                return -1;
            };
            let state = caller.data_mut();
            let sent = service_input(state.input_kind, &data, &state.input);
            let result = match sent {
                Ok(sent) => {
                    let deadline = state.deadline();
                    state
                        .services
                        .call(&name, &data, sent, deadline, &mut state.warnings)
                }
                Err(e) => {
                    state.warnings.push(format!(
                        "service \"{name}\": the data sent is not valid: {e}"
                    ));
                    None
                }
            };
            match result {
                Some(json) => write_sized(&mut caller, &json, result_ptr, result_len_ptr),
                None => -1,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "stream_to_remote",
        |mut caller: Caller<'_, HostState>,
         name_ptr: i32,
         name_len: i32,
         data_ptr: i32,
         data_len: i32|
         -> i32 {
            let Some((name, data)) = args(&mut caller, (name_ptr, name_len), (data_ptr, data_len))
            else {
                return -1;
            };
            let state = caller.data_mut();
            let sent = match service_input(state.input_kind, &data, &state.input) {
                Ok(sent) => sent,
                Err(e) => {
                    state.warnings.push(format!(
                        "service \"{name}\": the data sent is not valid: {e}"
                    ));
                    return -1;
                }
            };
            let deadline = state.deadline();
            match state
                .services
                .stream(&name, sent, deadline, &mut state.warnings)
            {
                Some(outputs) => {
                    state.joined.extend(outputs);
                    0
                }
                None => -1,
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "get_remote_session",
        |mut caller: Caller<'_, HostState>,
         name_ptr: i32,
         name_len: i32,
         out_ptr: i32,
         out_len_ptr: i32|
         -> i32 {
            let Some(name) =
                bytes(&mut caller, name_ptr, name_len).and_then(|b| String::from_utf8(b).ok())
            else {
                return -1;
            };
            let id = caller.data().services.session_id(&name).map(str::to_owned);
            match id {
                Some(id) => write_sized(&mut caller, id.as_bytes(), out_ptr, out_len_ptr),
                None => -1,
            }
        },
    )?;
    Ok(())
}

/// A service name and the data, read from the module's memory.
fn args(
    caller: &mut Caller<'_, HostState>,
    name: (i32, i32),
    data: (i32, i32),
) -> Option<(String, Vec<u8>)> {
    let name_bytes = bytes(caller, name.0, name.1)?;
    let Ok(name) = String::from_utf8(name_bytes) else {
        caller
            .data_mut()
            .warnings
            .push("a service name that is not UTF-8".into());
        return None;
    };
    Some((name, bytes(caller, data.0, data.1)?))
}

fn memory(caller: &mut Caller<'_, HostState>) -> Option<wasmtime::Memory> {
    caller.get_export("memory").and_then(|e| e.into_memory())
}

/// `len` bytes at `ptr` of the module's memory; `None` (and a warning) when they lie outside.
fn bytes(caller: &mut Caller<'_, HostState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let mem = memory(caller)?;
    let range = (ptr as u32 as usize)..(ptr as u32 as usize + len as u32 as usize);
    let found = mem.data(&*caller).get(range).map(<[u8]>::to_vec);
    if found.is_none() {
        caller.data_mut().warnings.push(format!(
            "a host call passed memory ({ptr}, {len} bytes) outside the module's memory"
        ));
    }
    found
}

/// Writes `value` at `ptr` if the capacity at `len_ptr` holds it (0), else the size needed
/// there (-2); -1 when the pointers lie outside memory.
fn write_sized(caller: &mut Caller<'_, HostState>, value: &[u8], ptr: i32, len_ptr: i32) -> i32 {
    let Some(mem) = memory(caller) else {
        return -1;
    };
    let len_at = len_ptr as u32 as usize;
    let Some(capacity) = mem
        .data(&*caller)
        .get(len_at..len_at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    else {
        return -1;
    };
    let needed = (value.len() as u32).to_le_bytes();
    if value.len() > capacity {
        write_at(&mem, &*caller, len_at, &needed);
        return -2;
    }
    if !write_at(&mem, &*caller, ptr as u32 as usize, value) {
        return -1;
    }
    write_at(&mem, &*caller, len_at, &needed);
    0
}
