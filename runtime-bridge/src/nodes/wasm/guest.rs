//! One instance of a module and the ABI of a call into it.
//!
//! The module exports `memory`, `alloc(len: i32) -> i32` and the node's function
//! `(input_ptr, input_len, output_ptr, output_len_ptr) -> i32`. The host writes the input into
//! memory it `alloc`ed, and the output buffer's capacity as a little-endian u32 at
//! `output_len_ptr`; the function writes its output and its length there and returns 0
//! (success), -1 (error) or -2 (the output buffer is too small and the size it needs is at
//! `output_len_ptr`: the host gives it that much and calls once more). The host's buffers are
//! `alloc`ed once and kept, and `alloc` is called again only for a larger one, or for another
//! output buffer while the audio in the earlier ones is still in use downstream (at most
//! `LENDABLE` of them, and one more for when all are), so a module may use a bump allocator.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::{Linker, Memory, Module, Store, Trap, TypedFunc, UpdateDeadline};

use super::host::HostState;
use super::memory::{Lent, MEMORIES, Mapping, write_at};
use super::watchdog::{engine, expect_timeout, watch_call};
use crate::data::{AudioSamples, SampleStorage};

/// Output buffers whose audio may be in use downstream at once; past them, the output is copied.
const LENDABLE: usize = 8;

/// What can go wrong with a module; the module's file names it in the message.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    #[error("cannot read WASM module {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("WASM module {path} does not compile: {message}")]
    Compile { path: String, message: String },
    #[error("WASM module {path} cannot be instantiated: {message}")]
    Instantiate { path: String, message: String },
    #[error("WASM module {path} exports no {what} \"{name}\"")]
    MissingExport {
        path: String,
        name: String,
        what: &'static str,
    },
    #[error("WASM module {path}: export \"{name}\" must be {expected}: {message}")]
    Signature {
        path: String,
        name: String,
        expected: &'static str,
        message: String,
    },
    #[error("WASM module {path} trapped in \"{function}\": {trap}")]
    Trap {
        path: String,
        function: String,
        trap: String,
    },
    #[error(
        "WASM module {path}: \"{function}\" took longer than timeout_ms ({ms} ms) and was stopped"
    )]
    Timeout {
        path: String,
        function: String,
        ms: u128,
    },
    #[error(
        "WASM module {path}: \"{function}\" grew its memory past memory_limit ({limit} bytes) and was stopped"
    )]
    MemoryLimit {
        path: String,
        function: String,
        limit: usize,
    },
    #[error("WASM module {path}: \"{function}\" returned -1 (error)")]
    Failed { path: String, function: String },
    #[error(
        "WASM module {path}: \"{function}\" asked for a larger output buffer twice ({needed} bytes after {given})"
    )]
    TooSmallTwice {
        path: String,
        function: String,
        needed: u32,
        given: u32,
    },
    #[error("WASM module {path}: \"{function}\" returned {code} (0, -1 or -2 expected)")]
    BadReturn {
        path: String,
        function: String,
        code: i32,
    },
    #[error("WASM module {path}: {what} ({ptr}, {len} bytes) lies outside its memory")]
    OutOfBounds {
        path: String,
        what: &'static str,
        ptr: u32,
        len: u32,
    },
}

/// How an instance is set up.
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout: Duration,
}

/// A buffer the host `alloc`ed in module memory.
#[derive(Clone, Copy, Default, PartialEq)]
struct Region {
    ptr: u32,
    capacity: u32,
}

/// An output buffer whose samples can be lent downstream: every view shares `lent`, so the
/// buffer is free again when the guest holds the only reference (`None`: the buffer is not
/// 4-aligned, its audio is copied).
struct Lendable {
    region: Region,
    lent: Option<Arc<Lent>>,
}

impl Lendable {
    fn is_free(&mut self) -> bool {
        self.lent.as_mut().is_none_or(|l| Arc::get_mut(l).is_some())
    }
}

/// The output buffer of a call.
#[derive(Clone, Copy)]
enum Target {
    Lendable(usize),
    /// Used while all lendable buffers are lent; never lent itself.
    Spare,
}

/// What a call wrote, where.
#[derive(Clone, Copy)]
pub struct Written {
    ptr: u32,
    len: u32,
    target: Target,
}

pub struct Guest {
    path: String,
    function_name: String,
    store: Store<HostState>,
    memory: Memory,
    /// The memory's mapping, to lend from (`None`: outputs are copied).
    mapping: Option<Arc<Mapping>>,
    alloc: TypedFunc<i32, i32>,
    function: TypedFunc<(i32, i32, i32, i32), i32>,
    input: Region,
    lendable: Vec<Lendable>,
    spare: Region,
    target: Target,
    /// Where the output length goes: 4 bytes, `alloc`ed once.
    len_slot: u32,
    timeout: Duration,
}

/// Compiles the module at `path` (`.wasm` or `.wat`).
pub fn compile(path: &Path) -> Result<Module, WasmError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| WasmError::Read {
        path: name.clone(),
        source,
    })?;
    Module::new(engine(), bytes).map_err(|e| WasmError::Compile {
        path: name,
        message: format!("{e:#}"),
    })
}

impl Guest {
    /// Instantiates `module` with the host functions of `linker`, checks its exports.
    pub fn new(
        path: &str,
        module: &Module,
        linker: &Linker<HostState>,
        function_name: &str,
        limits: &Limits,
        mut state: HostState,
    ) -> Result<Self, WasmError> {
        state.memory.limit = limits.memory_bytes;
        expect_timeout(limits.timeout);
        let mut store = Store::new(engine(), state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_callback(|mut ctx| {
            if ctx.data_mut().deadline_passed() {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        // Start functions run under the limit too.
        let instance = timed(&mut store, limits.timeout, |store| {
            linker.instantiate(store, module)
        })
        .map_err(|e| WasmError::Instantiate {
            path: path.to_owned(),
            message: format!("{e:#}"),
        })?;
        let memory =
            instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| WasmError::MissingExport {
                    path: path.to_owned(),
                    name: "memory".into(),
                    what: "memory",
                })?;
        let typed = |store: &mut Store<HostState>, name: &str, expected: &'static str| {
            let func =
                instance
                    .get_func(&mut *store, name)
                    .ok_or_else(|| WasmError::MissingExport {
                        path: path.to_owned(),
                        name: name.to_owned(),
                        what: "function",
                    })?;
            Ok::<_, WasmError>((func, expected))
        };
        let (alloc, expected) = typed(&mut store, "alloc", "(i32) -> i32")?;
        let alloc = alloc
            .typed::<i32, i32>(&store)
            .map_err(|e| signature(path, "alloc", expected, &e))?;
        let (function, expected) = typed(&mut store, function_name, "(i32, i32, i32, i32) -> i32")?;
        let function = function
            .typed::<(i32, i32, i32, i32), i32>(&store)
            .map_err(|e| signature(path, function_name, expected, &e))?;
        let mapping = MEMORIES.mapping(memory.data_ptr(&store));
        let mut guest = Self {
            path: path.to_owned(),
            function_name: function_name.to_owned(),
            store,
            memory,
            mapping,
            alloc,
            function,
            input: Region::default(),
            lendable: Vec::new(),
            spare: Region::default(),
            target: Target::Spare,
            len_slot: 0,
            timeout: limits.timeout,
        };
        guest.len_slot = guest.allocate(4)?;
        Ok(guest)
    }

    pub fn state(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// Calls the function on `input`, with an output buffer of at least `capacity` bytes;
    /// returns where it wrote its output (`bytes` or `lend` it before the next call).
    pub fn call(&mut self, input: &[u8], capacity: usize) -> Result<Written, WasmError> {
        self.input = self.region(self.input, input.len())?;
        self.write_block(self.input.ptr, input)?;
        self.target = self.free_output();
        self.fit_output(capacity.max(1))?;
        let first = self.invoke(input.len())?;
        let code = match first {
            -2 => {
                let needed = self.read_len()?;
                let given = self.output().capacity;
                self.fit_output(needed as usize)?;
                match self.invoke(input.len())? {
                    -2 => {
                        return Err(WasmError::TooSmallTwice {
                            path: self.path.clone(),
                            function: self.function_name.clone(),
                            needed: self.read_len()?,
                            given: given.max(needed),
                        });
                    }
                    code => code,
                }
            }
            code => code,
        };
        match code {
            0 => {
                let len = self.read_len()?;
                let output = self.output();
                if len > output.capacity {
                    return Err(self.out_of_bounds("its output length", output.ptr, len));
                }
                Ok(Written {
                    ptr: output.ptr,
                    len,
                    target: self.target,
                })
            }
            -1 => Err(WasmError::Failed {
                path: self.path.clone(),
                function: self.function_name.clone(),
            }),
            code => Err(WasmError::BadReturn {
                path: self.path.clone(),
                function: self.function_name.clone(),
                code,
            }),
        }
    }

    /// The bytes a call wrote (in module memory, until the next call).
    pub fn bytes(&self, written: Written) -> Result<&[u8], WasmError> {
        self.read_block(written.ptr, written.len, "its output")
    }

    /// The samples a call wrote, lent in place: their buffer is not given to the module again
    /// until the samples are dropped. `None` when they cannot be lent (not whole f32 samples,
    /// or every lendable buffer already is): copy `bytes` then.
    pub fn lend(&self, written: Written) -> Option<AudioSamples> {
        let Target::Lendable(i) = written.target else {
            return None;
        };
        let lent = self.lendable[i].lent.as_ref()?;
        if !written.len.is_multiple_of(4) {
            return None;
        }
        // The buffer's view, shared, over what the call wrote (the buffer starts at `ptr`).
        let storage: Arc<dyn SampleStorage> = Arc::clone(lent) as _;
        Some(AudioSamples::from_storage_range(
            storage,
            0..written.len as usize / 4,
        ))
    }

    /// An output buffer with no views left downstream: a lendable one (the first has usually
    /// come back by the next call), a new one while there are fewer than `LENDABLE`, else the
    /// spare.
    fn free_output(&mut self) -> Target {
        if self.mapping.is_none() {
            return Target::Spare;
        }
        if let Some(i) = self.lendable.iter_mut().position(Lendable::is_free) {
            return Target::Lendable(i);
        }
        if self.lendable.len() < LENDABLE {
            self.lendable.push(Lendable {
                region: Region::default(),
                lent: None,
            });
            return Target::Lendable(self.lendable.len() - 1);
        }
        Target::Spare
    }

    fn output(&self) -> Region {
        match self.target {
            Target::Lendable(i) => self.lendable[i].region,
            Target::Spare => self.spare,
        }
    }

    /// Makes the call's output buffer hold at least `len` bytes.
    fn fit_output(&mut self, len: usize) -> Result<(), WasmError> {
        let current = self.output();
        let region = self.region(current, len)?;
        match self.target {
            Target::Lendable(i) if region != current || self.lendable[i].lent.is_none() => {
                // A new buffer (or the first): its view, when it can have one. The buffer is
                // free, so no view of the old one is alive.
                let lent = self
                    .mapping
                    .as_ref()
                    .filter(|_| region.ptr.is_multiple_of(4));
                self.lendable[i] = Lendable {
                    region,
                    lent: lent.map(|m| {
                        Arc::new(Lent::new(
                            Arc::clone(m),
                            region.ptr as usize,
                            region.capacity as usize / 4,
                        ))
                    }),
                };
            }
            Target::Lendable(_) => {}
            Target::Spare => self.spare = region,
        }
        Ok(())
    }

    /// One call of the function with the buffers as they are; its return code.
    fn invoke(&mut self, input_len: usize) -> Result<i32, WasmError> {
        let output = self.output();
        self.write_block(self.len_slot, &output.capacity.to_le_bytes())?;
        let args = (
            self.input.ptr as i32,
            input_len as i32,
            output.ptr as i32,
            self.len_slot as i32,
        );
        timed(&mut self.store, self.timeout, |store| {
            self.function.call(store, args)
        })
        .map_err(|e| self.stopped(None, &e))
    }

    /// What stopped a call to `what` (the node's function when `None`).
    fn stopped(&mut self, what: Option<&str>, e: &wasmtime::Error) -> WasmError {
        let what = what.unwrap_or(&self.function_name).to_owned();
        let memory = &mut self.store.data_mut().memory;
        if std::mem::take(&mut memory.refused) {
            WasmError::MemoryLimit {
                path: self.path.clone(),
                function: what,
                limit: memory.limit,
            }
        } else if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
            WasmError::Timeout {
                path: self.path.clone(),
                function: what,
                ms: self.timeout.as_millis(),
            }
        } else {
            WasmError::Trap {
                path: self.path.clone(),
                function: what,
                trap: format!("{e:#}"),
            }
        }
    }

    /// `current` if it holds `len` bytes, else a new buffer from `alloc`.
    fn region(&mut self, current: Region, len: usize) -> Result<Region, WasmError> {
        if current.capacity as usize >= len && current.capacity > 0 {
            return Ok(current);
        }
        let capacity = len.max(1) as u32;
        Ok(Region {
            ptr: self.allocate(capacity)?,
            capacity,
        })
    }

    fn allocate(&mut self, len: u32) -> Result<u32, WasmError> {
        let ptr = timed(&mut self.store, self.timeout, |store| {
            self.alloc.call(store, len as i32)
        })
        .map_err(|e| self.stopped(Some("alloc"), &e))? as u32;
        // The block must lie in memory: checked once here, so later writes cannot fail.
        self.read(ptr, len, "memory from alloc")?;
        Ok(ptr)
    }

    fn read_len(&self) -> Result<u32, WasmError> {
        let b = self.read_block(self.len_slot, 4, "the output length")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn read(&self, ptr: u32, len: u32, what: &'static str) -> Result<&[u8], WasmError> {
        let data = self.memory.data(&self.store);
        let end = ptr as usize + len as usize;
        data.get(ptr as usize..end)
            .ok_or_else(|| self.out_of_bounds(what, ptr, len))
    }

    /// Writes `bytes` at `ptr`, inside a block `alloc` gave the host: checked when it was
    /// given (`allocate`), and memory never shrinks, so a host-mapped memory is written
    /// without asking the store for its bounds again.
    fn write_block(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), WasmError> {
        match &self.mapping {
            Some(mapping) => {
                // SAFETY: inside an allocated block (above); lent views are never of the
                // input or the length slot, nor of an output buffer the module is given.
                unsafe { mapping.write(ptr as usize, bytes) };
                Ok(())
            }
            None => self.write(ptr, bytes),
        }
    }

    /// Reads `len` bytes at `ptr`, inside a block `alloc` gave the host (see `write_block`).
    fn read_block(&self, ptr: u32, len: u32, what: &'static str) -> Result<&[u8], WasmError> {
        match &self.mapping {
            // SAFETY: inside an allocated block; no module code runs while `self` is borrowed.
            Some(mapping) => Ok(unsafe { mapping.read(ptr as usize, len as usize) }),
            None => self.read(ptr, len, what),
        }
    }

    fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), WasmError> {
        if write_at(&self.memory, &self.store, ptr as usize, bytes) {
            Ok(())
        } else {
            Err(self.out_of_bounds("a host buffer", ptr, bytes.len() as u32))
        }
    }

    fn out_of_bounds(&self, what: &'static str, ptr: u32, len: u32) -> WasmError {
        WasmError::OutOfBounds {
            path: self.path.clone(),
            what,
            ptr,
            len,
        }
    }
}

/// Runs `f` on `store` under the time limit (a function, not a method: `f` borrows the
/// guest's typed functions while the store is borrowed mutably, and cloning them costs).
fn timed<T>(
    store: &mut Store<HostState>,
    timeout: Duration,
    f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
) -> wasmtime::Result<T> {
    store.data_mut().start_call(timeout);
    store.set_epoch_deadline(1);
    let _watch = watch_call();
    f(store)
}

fn signature(path: &str, name: &str, expected: &'static str, e: &wasmtime::Error) -> WasmError {
    WasmError::Signature {
        path: path.to_owned(),
        name: name.to_owned(),
        expected,
        message: format!("{e:#}"),
    }
}
