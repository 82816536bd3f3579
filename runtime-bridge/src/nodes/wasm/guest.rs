//! One instance of a module and the ABI of a call into it.
//!
//! The module exports `memory`, `alloc(len: i32) -> i32` and the node's function
//! `(input_ptr, input_len, output_ptr, output_len_ptr) -> i32`. The host writes the input into
//! memory it `alloc`ed, and the output buffer's capacity as a little-endian u32 at
//! `output_len_ptr`; the function writes its output and its length there and returns 0
//! (success), -1 (error) or -2 (the output buffer is too small and the size it needs is at
//! `output_len_ptr`: the host gives it that much and calls once more). The host's buffers are
//! `alloc`ed once and kept, and `alloc` is called again only for a larger one, so a module may
//! use a bump allocator.

use std::path::Path;
use std::time::{Duration, Instant};

use wasmtime::{Linker, Memory, Module, Store, Trap, TypedFunc, UpdateDeadline};

use super::host::HostState;
use super::watchdog::{engine, expect_timeout, watch_call};

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
#[derive(Clone, Copy, Default)]
struct Region {
    ptr: u32,
    capacity: u32,
}

pub struct Guest {
    path: String,
    function_name: String,
    store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    function: TypedFunc<(i32, i32, i32, i32), i32>,
    input: Region,
    output: Region,
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
        store.epoch_deadline_callback(|ctx| {
            if ctx.data().deadline_passed() {
                Err(Trap::Interrupt.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        // Start functions run under the limit too.
        let now = Instant::now();
        store.data_mut().deadline = Some(now + limits.timeout);
        store.set_epoch_deadline(1);
        let instance = {
            let _watch = watch_call(now);
            linker
                .instantiate(&mut store, module)
                .map_err(|e| WasmError::Instantiate {
                    path: path.to_owned(),
                    message: format!("{e:#}"),
                })?
        };
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
        let mut guest = Self {
            path: path.to_owned(),
            function_name: function_name.to_owned(),
            store,
            memory,
            alloc,
            function,
            input: Region::default(),
            output: Region::default(),
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
    /// returns what it wrote, where it wrote it (valid until the next call).
    pub fn call(&mut self, input: &[u8], capacity: usize) -> Result<&[u8], WasmError> {
        self.input = self.region(self.input, input.len())?;
        self.write(self.input.ptr, input)?;
        self.output = self.region(self.output, capacity.max(1))?;
        let first = self.invoke(input.len())?;
        let code = match first {
            -2 => {
                let needed = self.read_len()?;
                let given = self.output.capacity;
                self.output = self.region(self.output, needed as usize)?;
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
                if len > self.output.capacity {
                    return Err(self.out_of_bounds("its output length", self.output.ptr, len));
                }
                self.read(self.output.ptr, len, "its output")
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

    /// One call of the function with the buffers as they are; its return code.
    fn invoke(&mut self, input_len: usize) -> Result<i32, WasmError> {
        let capacity = self.output.capacity;
        self.write(self.len_slot, &capacity.to_le_bytes())?;
        let args = (
            self.input.ptr as i32,
            input_len as i32,
            self.output.ptr as i32,
            self.len_slot as i32,
        );
        let function = self.function.clone();
        self.run(None, |store| function.call(store, args))
    }

    /// Runs `f` under the time limit; a trap becomes a `WasmError` naming `what`, the node's
    /// function when `None`.
    fn run<T>(
        &mut self,
        what: Option<&str>,
        f: impl FnOnce(&mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, WasmError> {
        let now = Instant::now();
        self.store.data_mut().deadline = Some(now + self.timeout);
        self.store.set_epoch_deadline(1);
        let result = {
            let _watch = watch_call(now);
            f(&mut self.store)
        };
        result.map_err(|e| {
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
        })
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
        let alloc = self.alloc.clone();
        let ptr = self.run(Some("alloc"), |store| alloc.call(store, len as i32))? as u32;
        // The block must lie in memory: checked once here, so later writes cannot fail.
        self.read(ptr, len, "memory from alloc")?;
        Ok(ptr)
    }

    fn read_len(&self) -> Result<u32, WasmError> {
        let b = self.read(self.len_slot, 4, "the output length")?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn read(&self, ptr: u32, len: u32, what: &'static str) -> Result<&[u8], WasmError> {
        let data = self.memory.data(&self.store);
        let end = ptr as usize + len as usize;
        data.get(ptr as usize..end)
            .ok_or_else(|| self.out_of_bounds(what, ptr, len))
    }

    fn write(&mut self, ptr: u32, bytes: &[u8]) -> Result<(), WasmError> {
        let end = ptr as usize + bytes.len();
        let data = self.memory.data_mut(&mut self.store);
        match data.get_mut(ptr as usize..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(self.out_of_bounds("a host buffer", ptr, bytes.len() as u32)),
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

fn signature(path: &str, name: &str, expected: &'static str, e: &wasmtime::Error) -> WasmError {
    WasmError::Signature {
        path: path.to_owned(),
        name: name.to_owned(),
        expected,
        message: format!("{e:#}"),
    }
}
