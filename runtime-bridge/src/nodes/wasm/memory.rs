//! Module memory the host maps itself, so the audio a module writes goes downstream without a
//! copy.
//!
//! wasmtime owns a module's memory and frees it with the store; audio handed downstream may
//! outlive both. So the engine creates every linear memory through `HostMemories`: one
//! anonymous mapping per memory (guard, reservation, guard, as wasmtime's own memories are
//! laid out, so compiled code still needs no bounds checks), kept in an `Arc` that the memory
//! and every `Lent` view of it share. The mapping goes away when the last of them does.
//!
//! Which bytes may be lent is the guest's business (`guest.rs`): it lends only its own output
//! buffers and does not give a lent buffer to the module again until every view of it is
//! dropped. A module can still write anywhere in its memory, lent bytes included; it then
//! changes audio it already produced, as a Node.js or Python caller can change the array it
//! lent (`LentSamples`, `NumpyView`). Its memory is never freed under a reader, and memory
//! outside the mapping is out of its reach.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};

use wasmtime::{AsContext, LinearMemory, Memory, MemoryCreator, MemoryType};

use crate::data::SampleStorage;
use crate::sync::lock;

/// One mapping: a guard, the memory's reservation, then a guard. Only the memory's current
/// size is readable and writable; the rest faults.
pub struct Mapping {
    start: *mut u8,
    total: usize,
    /// Where the memory starts: after the front guard.
    base: *mut u8,
}

// SAFETY: the pointers name a mapping this value owns until it is dropped; the bytes behind
// them are read and written by wasm code and read through `Lent` views, never through `&mut`.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `start`/`total` are the mapping made in `map`, unmapped once, here.
        unsafe { libc::munmap(self.start.cast(), self.total) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page).unwrap_or(4096).max(1)
}

fn round_up(n: usize, page: usize) -> Option<usize> {
    n.checked_next_multiple_of(page)
}

impl Mapping {
    /// Copies `bytes` to byte `at` of the memory.
    ///
    /// # Safety
    /// `at..at + bytes.len()` lies in the memory's open part, and no Rust reference to those
    /// bytes is alive.
    pub unsafe fn write(&self, at: usize, bytes: &[u8]) {
        // SAFETY: as the caller promises; `bytes` is host memory, apart from the module's.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.add(at), bytes.len()) }
    }

    /// The `len` bytes at byte `at` of the memory.
    ///
    /// # Safety
    /// They lie in the memory's open part, and no module code runs while the slice lives.
    pub unsafe fn read(&self, at: usize, len: usize) -> &[u8] {
        // SAFETY: as the caller promises.
        unsafe { std::slice::from_raw_parts(self.base.add(at), len) }
    }

    /// Reserves `reserved` bytes between two guards of `guard` bytes, the first `size`
    /// readable and writable (and zero).
    fn map(reserved: usize, guard: usize, size: usize) -> Result<Self, String> {
        let page = page_size();
        let too_large =
            || format!("a memory of {reserved} bytes and {guard} of guard is too large");
        let reserved = round_up(reserved, page).ok_or_else(too_large)?;
        let guard = round_up(guard, page).ok_or_else(too_large)?;
        let total = guard
            .checked_mul(2)
            .and_then(|g| g.checked_add(reserved))
            .ok_or_else(too_large)?;
        // SAFETY: a new private anonymous mapping; nothing else refers to its addresses.
        let start = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if start == libc::MAP_FAILED {
            return Err(format!(
                "cannot reserve {total} bytes for a module's memory: {}",
                std::io::Error::last_os_error()
            ));
        }
        let start = start.cast::<u8>();
        let mapping = Self {
            start,
            total,
            // SAFETY: `guard` < `total`, inside the mapping.
            base: unsafe { start.add(guard) },
        };
        mapping.open(0, size, reserved)?;
        Ok(mapping)
    }

    /// Makes bytes `from..to` of the memory readable and writable (whole pages).
    fn open(&self, from: usize, to: usize, reserved: usize) -> Result<(), String> {
        let page = page_size();
        let from = round_up(from, page).unwrap_or(usize::MAX);
        let to = round_up(to, page).unwrap_or(usize::MAX);
        if to > reserved {
            return Err(format!(
                "a module's memory cannot grow to {to} bytes: {reserved} are reserved"
            ));
        }
        if to <= from {
            return Ok(());
        }
        // SAFETY: `from..to` lies in the reservation, inside the mapping.
        let rc = unsafe {
            libc::mprotect(
                self.base.add(from).cast(),
                to - from,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(format!(
                "cannot grow a module's memory to {to} bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

/// A linear memory in a `Mapping`.
struct HostMemory {
    mapping: Arc<Mapping>,
    size: usize,
    reserved: usize,
}

// SAFETY: the base never moves (growth stays inside the reservation), `size` bytes from it
// are readable and writable and zero when first opened, and the guards fault.
unsafe impl LinearMemory for HostMemory {
    fn byte_size(&self) -> usize {
        self.size
    }

    fn byte_capacity(&self) -> usize {
        self.reserved
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.mapping
            .open(self.size, new_size, self.reserved)
            .map_err(wasmtime::Error::msg)?;
        self.size = new_size;
        Ok(())
    }

    fn as_ptr(&self) -> *mut u8 {
        self.mapping.base
    }
}

/// Creates the engine's linear memories, and finds a memory's mapping again by its base.
#[derive(Default)]
pub struct HostMemories {
    by_base: Mutex<HashMap<usize, Weak<Mapping>>>,
}

/// The engine's memory creator.
pub static MEMORIES: LazyLock<Arc<HostMemories>> = LazyLock::new(Arc::default);

impl HostMemories {
    /// The mapping of the memory whose first byte is at `base`.
    pub fn mapping(&self, base: *const u8) -> Option<Arc<Mapping>> {
        lock(&self.by_base).get(&(base as usize))?.upgrade()
    }
}

// SAFETY: see `HostMemory`; a memory is its own mapping, shared with nothing but `Lent` views.
unsafe impl MemoryCreator for HostMemories {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        // A 32-bit memory cannot pass 4 GiB; wasmtime asks for that reservation on 64-bit hosts.
        let reserved = reserved_size_in_bytes
            .or(maximum)
            .unwrap_or_else(|| usize::try_from(1u64 << 32).unwrap_or(usize::MAX))
            .max(minimum);
        let mapping = Arc::new(Mapping::map(reserved, guard_size_in_bytes, minimum)?);
        let mut by_base = lock(&self.by_base);
        by_base.retain(|_, m| m.strong_count() > 0);
        by_base.insert(mapping.base as usize, Arc::downgrade(&mapping));
        drop(by_base);
        Ok(Box::new(HostMemory {
            reserved: round_up(reserved, page_size()).unwrap_or(reserved),
            mapping,
            size: minimum,
        }))
    }
}

/// Copies `bytes` into `memory` at byte `at`; `false` when they would not lie inside it. Through
/// a raw pointer: a `&mut` over the whole memory (`Memory::data_mut`) would alias the samples
/// lent out of it to other threads.
pub fn write_at(memory: &Memory, store: impl AsContext, at: usize, bytes: &[u8]) -> bool {
    let store = store.as_context();
    let inside = at
        .checked_add(bytes.len())
        .is_some_and(|end| end <= memory.data_size(&store));
    if inside {
        // SAFETY: `at..at + len` lies in the memory's open part; no Rust reference to those
        // bytes is alive here (lent views are never of buffers the host writes), and `bytes`
        // is host memory, apart from the module's.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                memory.data_ptr(&store).add(at),
                bytes.len(),
            );
        }
    }
    inside
}

/// An output buffer of a module, read in place. While a view of it is alive downstream, the
/// guest does not give the buffer to the module again.
pub struct Lent {
    mapping: Arc<Mapping>,
    offset: usize,
    len: usize,
}

impl Lent {
    /// `len` samples at byte `offset` of `mapping`'s memory. The caller checked that they lie
    /// inside the memory and that `offset` is 4-aligned.
    pub fn new(mapping: Arc<Mapping>, offset: usize, len: usize) -> Self {
        Self {
            mapping,
            offset,
            len,
        }
    }
}

impl SampleStorage for Lent {
    fn samples(&self) -> &[f32] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the bytes lie in the memory's open part (checked by the caller; memory never
        // shrinks), the mapping lives as long as `self`, and the offset is 4-aligned in a
        // page-aligned mapping. Any bit pattern is an f32. See the module comment for writes
        // by the module itself.
        unsafe { std::slice::from_raw_parts(self.mapping.base.add(self.offset).cast(), self.len) }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}
