//! `remotemedia._native`: RemoteMedia's runtime for Python. The pure-Python layer
//! (`remotemedia.runtime`) normalises inputs into tagged tuples and wraps these calls for
//! asyncio; this module converts between them and `RuntimeData`, and runs pipelines with
//! the GIL released. Audio samples cross in both directions without a copy where the memory
//! allows it.

use std::any::Any;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use numpy::prelude::*;
use numpy::{PyArray1, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};
use remotemedia_runtime::data::{
    Bytes, ControlMessage, DType, PixelFormat, TensorData, VideoFrame,
};
use remotemedia_runtime::sync::lock;
use remotemedia_runtime::{
    AudioFrame, AudioSamples, Graph, NodeMetrics, Output, RuntimeData, RuntimeError, SampleStorage,
    StreamSession,
};

mod worker;

create_exception!(
    _native,
    ManifestError,
    PyValueError,
    "The manifest is invalid; the message lists every problem."
);
create_exception!(
    _native,
    PipelineError,
    PyRuntimeError,
    "A node failed while the pipeline ran."
);
create_exception!(
    _native,
    RemoteError,
    PyRuntimeError,
    "A remote pipeline call failed: the server refused it, could not be reached, or a node \
     failed there; the message names which."
);

/// A C-contiguous 1-D numpy array lent to the pipeline: f32 audio samples or the u8 bytes of a
/// tensor.
struct NumpyView<T: numpy::Element> {
    array: Py<PyArray1<T>>,
    ptr: *const T,
    len: usize,
}

// SAFETY: the array object is kept alive by `array`; numpy does not move or free the data of
// an array that has other references (resizing is refused), and the Python layer documents
// that arrays handed to a pipeline are not to be modified while it runs.
unsafe impl<T: numpy::Element> Send for NumpyView<T> {}
unsafe impl<T: numpy::Element> Sync for NumpyView<T> {}

impl<T: numpy::Element> NumpyView<T> {
    fn new(array: Bound<'_, PyArray1<T>>) -> PyResult<Self> {
        if !array.is_c_contiguous() {
            return Err(PyValueError::new_err("arrays must be C-contiguous"));
        }
        let (ptr, len) = (array.data() as *const T, array.len());
        Ok(Self {
            array: array.unbind(),
            ptr,
            len,
        })
    }

    fn slice(&self) -> &[T] {
        // SAFETY: see the Send/Sync note; ptr and len were read from the live array.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl SampleStorage for NumpyView<f32> {
    fn samples(&self) -> &[f32] {
        self.slice()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl AsRef<[u8]> for NumpyView<u8> {
    fn as_ref(&self) -> &[u8] {
        self.slice()
    }
}

fn dtype_of(name: &str) -> PyResult<DType> {
    Ok(match name {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "int32" => DType::I32,
        "int64" => DType::I64,
        "uint8" => DType::U8,
        other => {
            return Err(PyValueError::new_err(format!(
                "tensor dtype {other} is not supported"
            )));
        }
    })
}

pub(crate) fn dtype_name(d: DType) -> &'static str {
    match d {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::U8 => "uint8",
    }
}

fn json_arg(text: &Option<String>) -> PyResult<Option<serde_json::Value>> {
    text.as_deref()
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| PyValueError::new_err(format!("not JSON: {e}")))
}

/// A tagged tuple from `remotemedia.runtime` (or a worker's output) as RuntimeData.
pub(crate) fn to_data(item: &Bound<'_, PyAny>) -> PyResult<RuntimeData> {
    let tuple = item.cast::<PyTuple>()?;
    let kind: String = tuple.get_item(0)?.extract()?;
    match kind.as_str() {
        "audio" => {
            let view = NumpyView::new(tuple.get_item(1)?.cast_into::<PyArray1<f32>>()?)?;
            let len = view.len;
            let samples = AudioSamples::from_storage(Arc::new(view));
            let rate: u32 = tuple.get_item(2)?.extract()?;
            let channels: u16 = tuple.get_item(3)?.extract()?;
            if rate == 0 || channels == 0 || len % usize::from(channels) != 0 {
                return Err(PyValueError::new_err(format!(
                    "audio of {len} samples cannot be {channels} channel(s) at {rate} Hz"
                )));
            }
            let mut frame = AudioFrame::new(samples, rate, channels);
            frame.pts = tuple.get_item(4)?.extract()?;
            if tuple.len() > 5 {
                frame.stream_id = tuple
                    .get_item(5)?
                    .extract::<Option<String>>()?
                    .map(Arc::from);
                frame.duration = tuple.get_item(6)?.extract()?;
                frame.metadata = json_arg(&tuple.get_item(7)?.extract::<Option<String>>()?)?;
            }
            Ok(RuntimeData::Audio(frame))
        }
        "video" => {
            let raw = tuple.get_item(1)?.cast_into::<PyArray1<u8>>()?;
            let format = match tuple
                .get_item(4)?
                .extract::<String>()?
                .to_uppercase()
                .as_str()
            {
                "I420" => PixelFormat::I420,
                "NV12" => PixelFormat::Nv12,
                "RGB" => PixelFormat::Rgb,
                "RGBA" => PixelFormat::Rgba,
                "ENCODED" => PixelFormat::Encoded,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "video format {other:?} is not one of I420, NV12, RGB, RGBA, ENCODED"
                    )));
                }
            };
            Ok(RuntimeData::Video(VideoFrame {
                data: Bytes::from_owner(NumpyView::new(raw)?),
                width: tuple.get_item(2)?.extract()?,
                height: tuple.get_item(3)?.extract()?,
                format,
                pts: tuple.get_item(5)?.extract()?,
                keyframe: tuple.get_item(6)?.extract()?,
                stream_id: tuple
                    .get_item(7)?
                    .extract::<Option<String>>()?
                    .map(Arc::from),
            }))
        }
        "control" => {
            let name: String = tuple.get_item(1)?.extract()?;
            Ok(RuntimeData::Control(match name.as_str() {
                "eos" => ControlMessage::EndOfStream,
                "flush" => ControlMessage::Flush,
                "cancel_speculation" => ControlMessage::CancelSpeculation {
                    from_ms: tuple.get_item(2)?.extract()?,
                    to_ms: tuple.get_item(3)?.extract()?,
                },
                other => {
                    return Err(PyValueError::new_err(format!(
                        "control {other:?} is not one of eos, flush, cancel_speculation"
                    )));
                }
            }))
        }
        "text" => Ok(RuntimeData::Text(tuple.get_item(1)?.extract()?)),
        "json" => {
            let text: String = tuple.get_item(1)?.extract()?;
            serde_json::from_str(&text)
                .map(RuntimeData::Json)
                .map_err(|e| PyValueError::new_err(format!("not JSON: {e}")))
        }
        "binary" => Ok(RuntimeData::Binary(Bytes::from(
            tuple.get_item(1)?.extract::<Vec<u8>>()?,
        ))),
        "tensor" => {
            let raw = tuple.get_item(1)?.cast_into::<PyArray1<u8>>()?;
            let data = Bytes::from_owner(NumpyView::new(raw)?);
            Ok(RuntimeData::Tensor(TensorData {
                shape: tuple.get_item(2)?.extract()?,
                dtype: dtype_of(&tuple.get_item(3)?.extract::<String>()?)?,
                data,
            }))
        }
        other => Err(PyValueError::new_err(format!(
            "unknown input kind {other:?}"
        ))),
    }
}

/// Samples as a numpy array: the caller's own array when they are still its memory, the
/// node's Vec when the pipeline holds it alone, a copy otherwise.
fn samples_to_numpy<'py>(py: Python<'py>, samples: AudioSamples) -> Bound<'py, PyAny> {
    if samples.is_whole()
        && let Some(n) = samples.storage().as_any().downcast_ref::<NumpyView<f32>>()
    {
        return n.array.bind(py).clone().into_any();
    }
    PyArray1::from_vec(py, samples.into_vec()).into_any()
}

/// A JSON value as the object `json.loads` gives, built directly (no text round trip).
fn json_to_py<'py>(py: Python<'py>, value: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    use serde_json::Value;
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u), _) => u.into_pyobject(py)?.into_any(),
            (None, None, f) => f.unwrap_or(f64::NAN).into_pyobject(py)?.into_any(),
        },
        Value::String(s) => s.into_pyobject(py)?.into_any(),
        Value::Array(items) => {
            let items = items
                .iter()
                .map(|v| json_to_py(py, v))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any()
        }
        Value::Object(map) => {
            let d = PyDict::new(py);
            for (k, v) in map {
                d.set_item(k, json_to_py(py, v)?)?;
            }
            d.into_any()
        }
    })
}

fn output_to_py<'py>(py: Python<'py>, out: Output) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("node_id", &*out.node_id)?;
    d.set_item("pts", out.pts)?;
    match out.data {
        RuntimeData::Audio(a) => {
            d.set_item("type", "audio")?;
            d.set_item("sample_rate", a.sample_rate)?;
            d.set_item("channels", a.channels)?;
            d.set_item("samples", samples_to_numpy(py, a.samples))?;
        }
        RuntimeData::Video(v) => {
            d.set_item("type", "video")?;
            d.set_item("width", v.width)?;
            d.set_item("height", v.height)?;
            d.set_item("format", format!("{:?}", v.format))?;
            d.set_item("keyframe", v.keyframe)?;
            d.set_item("data", PyBytes::new(py, &v.data))?;
        }
        RuntimeData::Text(t) => {
            d.set_item("type", "text")?;
            d.set_item("text", t)?;
        }
        RuntimeData::Json(j) => {
            d.set_item("type", "json")?;
            d.set_item("data", json_to_py(py, &j)?)?;
        }
        RuntimeData::Binary(b) => {
            d.set_item("type", "binary")?;
            d.set_item("data", PyBytes::new(py, &b))?;
        }
        RuntimeData::Tensor(t) => {
            d.set_item("type", "tensor")?;
            d.set_item("shape", t.shape)?;
            d.set_item("dtype", dtype_name(t.dtype))?;
            d.set_item("data", PyBytes::new(py, &t.data))?;
        }
        RuntimeData::Control(c) => {
            d.set_item("type", "control")?;
            d.set_item("control", format!("{c:?}"))?;
        }
    }
    Ok(d)
}

fn metrics_to_py<'py>(py: Python<'py>, metrics: &[NodeMetrics]) -> PyResult<Bound<'py, PyList>> {
    let items = metrics
        .iter()
        .map(|m| {
            let d = PyDict::new(py);
            d.set_item("node_id", &m.node_id)?;
            d.set_item("processed", m.processed)?;
            d.set_item("busy_ms", m.busy_ns as f64 / 1e6)?;
            d.set_item("errors", m.errors)?;
            let counters = PyDict::new(py);
            for (name, n) in &m.counters {
                counters.set_item(name, n)?;
            }
            d.set_item("counters", counters)?;
            Ok(d)
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// A `PipelineError` whose `.code` names the failure ("PIPELINE_ERROR", "CONFIG_ERROR", ...).
fn pipeline_error(e: RuntimeError) -> PyErr {
    let err = PipelineError::new_err(e.to_string());
    Python::attach(|py| {
        // An exception instance takes any attribute.
        let _ = err.value(py).setattr("code", e.code.as_str());
    });
    err
}

fn load(manifest_json: &str) -> PyResult<Arc<Graph>> {
    remotemedia_runtime::load_graph(manifest_json, "manifest_json")
        .map_err(|r| ManifestError::new_err(r.to_string()))
}

/// The runtime's version.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Checks a manifest; raises ManifestError with every problem.
#[pyfunction]
fn validate(manifest_json: &str) -> PyResult<()> {
    load(manifest_json).map(|_| ())
}

/// Runs every input through a fresh session and returns (outputs, metrics).
#[pyfunction]
fn execute<'py>(
    py: Python<'py>,
    manifest_json: &str,
    inputs: Vec<Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
    let graph = load(manifest_json)?;
    let data = inputs.iter().map(to_data).collect::<PyResult<Vec<_>>>()?;
    let (outputs, metrics) = py
        .detach(move || remotemedia_runtime::execute_unary_with_metrics(graph, data))
        .map_err(pipeline_error)?;
    let outputs = outputs
        .into_iter()
        .map(|o| output_to_py(py, o))
        .collect::<PyResult<Vec<_>>>()?;
    Ok((PyList::new(py, outputs)?, metrics_to_py(py, &metrics)?))
}

/// Runs a manifest once on a remotemedia-server (ExecutePipeline) and returns its outputs.
/// Failures that may pass (server away or overloaded) are retried `max_attempts` times with
/// backoff; the rest raise RemoteError at once.
#[pyfunction]
#[pyo3(signature = (url, manifest_json, inputs, timeout_ms, auth_token=None, max_attempts=3))]
fn remote_execute<'py>(
    py: Python<'py>,
    url: &str,
    manifest_json: &str,
    inputs: Vec<Bound<'py, PyAny>>,
    timeout_ms: u64,
    auth_token: Option<String>,
    max_attempts: u32,
) -> PyResult<Bound<'py, PyList>> {
    use remotemedia_runtime::remote::{RemoteCall, RemoteTransport};
    static TRANSPORT: std::sync::LazyLock<remotemedia_signaling::grpc::remote::GrpcTransport> =
        std::sync::LazyLock::new(Default::default);
    let data = inputs.iter().map(to_data).collect::<PyResult<Vec<_>>>()?;
    let call = RemoteCall {
        endpoint: url.to_owned(),
        manifest_json: manifest_json.to_owned(),
        timeout: Duration::from_millis(timeout_ms.max(1)),
        auth_token,
    };
    let backoff = remotemedia_runtime::Backoff {
        max_attempts,
        initial: Duration::from_millis(100),
        max: Duration::from_secs(2),
        multiplier: 2.0,
    };
    let outputs = py
        .detach(move || {
            let mut n = 0;
            loop {
                match TRANSPORT.execute(&call, data.clone()) {
                    Err(f) if f.retryable => {
                        n += 1;
                        match backoff.delay(n) {
                            Some(d) => std::thread::sleep(d),
                            None => {
                                break Err(format!(
                                    "{url}: {} (gave up after {n} attempts)",
                                    f.message
                                ));
                            }
                        }
                    }
                    Err(f) => break Err(format!("{url}: {}", f.message)),
                    Ok(outputs) => break Ok(outputs),
                }
            }
        })
        .map_err(RemoteError::new_err)?;
    let outputs = outputs
        .into_iter()
        .map(|o| output_to_py(py, o))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, outputs)
}

/// A streaming session: send inputs, receive outputs as they come, close to drain.
#[pyclass]
struct Session {
    inner: Arc<StreamSession>,
    /// Becomes readable when an output is queued while the reader is armed (`arm_wakeup`): an
    /// event loop watches it (`add_reader`) instead of polling. The pipeline's threads write
    /// to the other end without the GIL and never block (a full socket is already readable).
    wakeup: UnixStream,
    /// Set by `arm_wakeup`, taken by the first output after it: one wake-up per wait, not
    /// one per output.
    armed: Arc<AtomicBool>,
    /// An error met by `take_ready` after outputs it returned; raised by the next call.
    pending_error: Mutex<Option<RuntimeError>>,
}

fn wakeup_pair() -> std::io::Result<(UnixStream, UnixStream)> {
    let (reader, writer) = UnixStream::pair()?;
    reader.set_nonblocking(true)?;
    writer.set_nonblocking(true)?;
    Ok((reader, writer))
}

#[pymethods]
impl Session {
    /// Loads the manifest and starts the session; Python workers start and report ready
    /// without the GIL, so other Python threads (an asyncio loop) go on meanwhile.
    #[new]
    fn new(py: Python<'_>, manifest_json: &str) -> PyResult<Self> {
        let graph = load(manifest_json)?;
        let (wakeup, writer) = wakeup_pair().map_err(|e| {
            PyRuntimeError::new_err(format!("cannot make the session's wakeup socket: {e}"))
        })?;
        let armed = Arc::new(AtomicBool::new(false));
        let notify_armed = Arc::clone(&armed);
        let notify = Box::new(move || {
            if notify_armed.swap(false, Ordering::AcqRel) {
                let _ = (&writer).write(&[1]);
            }
        });
        let inner = py
            .detach(move || StreamSession::create_notifying(graph, Some(notify)))
            .map_err(pipeline_error)?;
        Ok(Self {
            inner: Arc::new(inner),
            wakeup,
            armed,
            pending_error: Mutex::new(None),
        })
    }

    /// Empties the wakeup socket and arms it: the next output queued makes it readable. Look
    /// for outputs (`take_ready`) after arming and before waiting, so none is missed.
    fn arm_wakeup(&self) {
        self.clear_wakeups();
        self.armed.store(true, Ordering::Release);
    }

    /// Disarms the wakeup socket: the caller looks for outputs itself (`take_ready`) and
    /// re-arms it (`arm_wakeup`) before anyone waits.
    fn disarm_wakeup(&self) {
        self.armed.store(false, Ordering::Release);
    }

    /// Every output queued now, in order, without waiting (an empty list if none). An error
    /// queued after some outputs is raised by the next call.
    fn take_ready<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let pending = lock(&self.pending_error).take();
        if let Some(e) = pending {
            return Err(pipeline_error(e));
        }
        let mut outputs = Vec::new();
        while let Some(item) = self.inner.try_recv() {
            match item {
                Ok(out) => outputs.push(output_to_py(py, out)?),
                Err(e) if outputs.is_empty() => return Err(pipeline_error(e)),
                Err(e) => {
                    *lock(&self.pending_error) = Some(e);
                    break;
                }
            }
        }
        PyList::new(py, outputs)
    }

    /// The file descriptor that becomes readable when an output is queued.
    fn wakeup_fd(&self) -> i32 {
        self.wakeup.as_raw_fd()
    }

    /// Empties the wakeup socket (an event loop's reader callback calls it, so the socket is
    /// not seen readable again until the next armed output).
    fn clear_wakeups(&self) {
        let mut sink = [0u8; 256];
        loop {
            match (&self.wakeup).read(&mut sink) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    /// Sends one input (a tagged tuple); blocks, without the GIL, while the pipeline is full.
    fn send(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let data = to_data(item)?;
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.send(data)).map_err(pipeline_error)
    }

    /// Whether `send` returns quickly now (room in every queue, no node of learnt cost to
    /// run on the caller): an event loop then calls it directly instead of from a thread.
    fn send_is_quick(&self) -> bool {
        self.inner.send_is_quick()
    }

    /// The next output, waiting up to `timeout` seconds (None if nothing came).
    #[pyo3(signature = (timeout=0.0))]
    fn recv<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Option<Bound<'py, PyDict>>> {
        let pending = lock(&self.pending_error).take();
        if let Some(e) = pending {
            return Err(pipeline_error(e));
        }
        let inner = Arc::clone(&self.inner);
        let wait = Duration::from_secs_f64(timeout.max(0.0));
        match py.detach(move || inner.recv_timeout(wait)) {
            None => Ok(None),
            Some(Ok(out)) => output_to_py(py, out).map(Some),
            Some(Err(e)) => Err(pipeline_error(e)),
        }
    }

    /// Ends the stream: drains the pipeline and returns the outputs not received yet.
    fn close<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let inner = Arc::clone(&self.inner);
        let outputs = py.detach(move || inner.close()).map_err(pipeline_error)?;
        let pending = lock(&self.pending_error).take();
        if let Some(e) = pending {
            return Err(pipeline_error(e));
        }
        let outputs = outputs
            .into_iter()
            .map(|o| output_to_py(py, o))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, outputs)
    }

    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        metrics_to_py(py, &self.inner.metrics())
    }
}

/// The runtime's log (worker starts and restarts, sessions) to stderr, at the level RUST_LOG
/// sets (`RUST_LOG=remotemedia_runtime=debug`); warnings only by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_logging();
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(validate, m)?)?;
    m.add_function(wrap_pyfunction!(execute, m)?)?;
    m.add_function(wrap_pyfunction!(remote_execute, m)?)?;
    // Manifests run from Python may hold a RemotePipelineNode.
    // The module has no runtime of its own otherwise; the transport's is made on first use.
    remotemedia_signaling::grpc::remote::install(remotemedia_signaling::grpc::remote::own_runtime);
    m.add_class::<Session>()?;
    m.add("ManifestError", m.py().get_type::<ManifestError>())?;
    m.add("PipelineError", m.py().get_type::<PipelineError>())?;
    m.add("RemoteError", m.py().get_type::<RemoteError>())?;
    worker::register(m)
}
