//! The worker's end of the shared-memory channel (`python -m remotemedia.worker`). Inputs
//! arrive as tagged tuples whose audio, video, binary and tensor payloads are offsets into a
//! `SharedBytes` object: the iceoryx2 message itself, exported with the buffer protocol, so
//! `numpy.frombuffer` views it without a copy. The message returns to the host's pool once
//! the last array over it is gone.

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyBufferError, PyRuntimeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use remotemedia_runtime::Packet;
use remotemedia_runtime::data::ControlMessage;
use remotemedia_runtime::python::channel::{self, Channel, Kind, Received, Side};
use remotemedia_runtime::sync::lock;
use remotemedia_runtime::wire::{self, DataView, Region};

use crate::{dtype_name, to_data};

fn runtime_error(message: impl std::fmt::Display) -> PyErr {
    PyRuntimeError::new_err(message.to_string())
}

/// A received message, readable through the buffer protocol (read-only).
#[pyclass(frozen)]
struct SharedBytes {
    sample: SharedSample,
}

struct SharedSample(Received);

// SAFETY: a received sample is immutable; through a shared reference only `payload()` is
// called, which reads memory nobody writes while the sample is held. Dropping it (returning
// it to the publisher) needs ownership, which one thread has at a time.
unsafe impl Sync for SharedSample {}

#[pymethods]
impl SharedBytes {
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("no view to fill"));
        }
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("shared-memory input is read-only"));
        }
        let (ptr, len) = {
            let bytes = slf.get().sample.0.payload();
            (bytes.as_ptr(), bytes.len())
        };
        // SAFETY: `view` is the non-null Py_buffer the interpreter passed in; it keeps a
        // reference to `slf` (obj), so the sample it points into outlives the view.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = ptr as *mut c_void;
            (*view).len = len as ffi::Py_ssize_t;
            (*view).readonly = 1;
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"B".as_ptr() as *mut _
            } else {
                std::ptr::null_mut()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                &mut (*view).len
            } else {
                std::ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &mut (*view).itemsize
            } else {
                std::ptr::null_mut()
            };
            (*view).suboffsets = std::ptr::null_mut();
            (*view).internal = std::ptr::null_mut();
        }
        Ok(())
    }

    unsafe fn __releasebuffer__(&self, _view: *mut ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.sample.0.payload().len()
    }
}

/// Wakes a worker blocked in `recv` and makes it return ("stop", None): the stdin watcher
/// uses it when the host is gone. It holds no shared memory of its own.
#[pyclass(frozen)]
struct Waker {
    name: String,
    prefix: String,
    stop: Arc<AtomicBool>,
}

#[pymethods]
impl Waker {
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.stop.store(true, Ordering::Release);
        py.detach(|| channel::wake(&self.name, &self.prefix, Side::Worker))
            .map_err(runtime_error)
    }
}

#[pyclass(frozen)]
pub struct WorkerChannel {
    channel: Channel,
    name: String,
    prefix: String,
    stop: Arc<AtomicBool>,
    /// Where the payload of the request being processed lies (in shared memory): an output
    /// whose array is exactly that payload is sent as a reference to it, not copied back.
    input: Mutex<Option<Region>>,
}

/// The offset of `part` inside the message `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}

/// An input as the tagged tuple `remotemedia._codec` turns into Python objects, and where
/// its payload lies if Python gets it in place (audio, video, tensor).
fn input_tuple<'py>(
    py: Python<'py>,
    sample: Received,
) -> PyResult<(Bound<'py, PyTuple>, Option<Region>)> {
    let whole = sample.payload();
    let view = wire::decode_view(channel::body(&sample))
        .map_err(|e| runtime_error(format!("the host sent {e}")))?;
    let pts = view.pts;
    let region = match &view.data {
        DataView::Audio { samples: bytes, .. }
        | DataView::Video { data: bytes, .. }
        | DataView::Tensor { data: bytes, .. } => Some(Region::of(bytes)),
        _ => None,
    };
    let json_text = |v: &serde_json::Value| v.to_string();
    // Offsets are computed before the sample moves into its Python owner.
    let tuple = match view.data {
        DataView::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            duration,
            metadata,
        } => {
            let (off, n) = (offset_in(whole, samples), samples.len() / 4);
            let meta = metadata.as_ref().map(json_text);
            let id = stream_id.as_deref().map(str::to_string);
            let holder = Bound::new(
                py,
                SharedBytes {
                    sample: SharedSample(sample),
                },
            )?;
            (
                "audio",
                holder,
                off,
                n,
                sample_rate,
                channels,
                pts,
                id,
                duration,
                meta,
            )
                .into_pyobject(py)?
        }
        DataView::Video {
            data,
            width,
            height,
            format,
            stream_id,
            keyframe,
        } => {
            let (off, n) = (offset_in(whole, data), data.len());
            let id = stream_id.as_deref().map(str::to_string);
            let fmt = format!("{format:?}").to_uppercase();
            let holder = Bound::new(
                py,
                SharedBytes {
                    sample: SharedSample(sample),
                },
            )?;
            (
                "video", holder, off, n, width, height, fmt, pts, keyframe, id,
            )
                .into_pyobject(py)?
        }
        DataView::Binary(b) => ("binary", PyBytes::new(py, b), pts).into_pyobject(py)?,
        DataView::Tensor { shape, dtype, data } => {
            let (off, n) = (offset_in(whole, data), data.len());
            let holder = Bound::new(
                py,
                SharedBytes {
                    sample: SharedSample(sample),
                },
            )?;
            ("tensor", holder, off, n, shape, dtype_name(dtype), pts).into_pyobject(py)?
        }
        DataView::Text(t) => ("text", t, pts).into_pyobject(py)?,
        DataView::Json(j) => ("json", j.to_string(), pts).into_pyobject(py)?,
        DataView::Control(c) => {
            let (kind, from, to) = match c {
                ControlMessage::EndOfStream => ("eos", 0.0, 0.0),
                ControlMessage::Flush => ("flush", 0.0, 0.0),
                ControlMessage::CancelSpeculation { from_ms, to_ms } => {
                    ("cancel_speculation", from_ms, to_ms)
                }
            };
            ("control", kind, from, to, pts).into_pyobject(py)?
        }
    };
    Ok((tuple, region))
}

#[pymethods]
impl WorkerChannel {
    #[new]
    fn new(name: &str, prefix: &str) -> PyResult<Self> {
        Ok(Self {
            channel: Channel::open(name, prefix, Side::Worker).map_err(runtime_error)?,
            name: name.to_string(),
            prefix: prefix.to_string(),
            stop: Arc::new(AtomicBool::new(false)),
            input: Mutex::new(None),
        })
    }

    /// The next request, waiting without the GIL and without polling: ("process", input),
    /// ("finish", None), ("reset", None) or ("stop", None).
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<(&'static str, Option<Bound<'py, PyTuple>>)> {
        loop {
            if self.stop.load(Ordering::Acquire) {
                return Ok(("stop", None));
            }
            if let Some((kind, sample)) = self.channel.try_recv().map_err(runtime_error)? {
                *lock(&self.input) = None;
                return Ok(match kind {
                    Kind::Process => {
                        let (tuple, region) = input_tuple(py, sample)?;
                        *lock(&self.input) = region;
                        ("process", Some(tuple))
                    }
                    Kind::Finish => ("finish", None),
                    Kind::Reset => ("reset", None),
                    Kind::Stop => ("stop", None),
                    other => {
                        return Err(runtime_error(format!(
                            "unexpected {other:?} message from the host"
                        )));
                    }
                });
            }
            py.detach(|| self.channel.wait(None))
                .map_err(runtime_error)?;
        }
    }

    /// Sends one output (a tagged tuple, as the runtime API takes inputs) with its timestamp;
    /// `last` also completes the request.
    #[pyo3(signature = (item, pts=None, last=false))]
    fn send_output(&self, item: &Bound<'_, PyAny>, pts: Option<u64>, last: bool) -> PyResult<()> {
        let data = to_data(item)?;
        let pts = data.pts().or(pts);
        let packet = Packet::at(data, pts);
        let kind = if last { Kind::Done } else { Kind::Output };
        let input = *lock(&self.input);
        self.channel
            .send_packet(kind, &packet, input)
            .map_err(runtime_error)
    }

    fn send_done(&self) -> PyResult<()> {
        self.channel
            .send_bytes(Kind::Done, &[])
            .map_err(runtime_error)
    }

    fn send_ready(&self, info_json: &str) -> PyResult<()> {
        self.channel
            .send_bytes(Kind::Ready, info_json.as_bytes())
            .map_err(runtime_error)
    }

    /// Reports that the current request (or the start) failed; `report_json` holds
    /// "message" and "traceback".
    fn send_error(&self, report_json: &str) -> PyResult<()> {
        self.channel
            .send_bytes(Kind::Error, report_json.as_bytes())
            .map_err(runtime_error)
    }

    fn waker(&self) -> Waker {
        Waker {
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            stop: Arc::clone(&self.stop),
        }
    }
}

/// Removes the shared memory that dead processes left under `prefix`.
#[pyfunction]
pub fn cleanup_dead(prefix: &str) -> PyResult<()> {
    channel::cleanup_dead(prefix).map_err(runtime_error)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<WorkerChannel>()?;
    m.add_class::<SharedBytes>()?;
    m.add_class::<Waker>()?;
    m.add_function(wrap_pyfunction!(cleanup_dead, m)?)?;
    Ok(())
}
