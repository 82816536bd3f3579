//! Outputs and metrics as JavaScript values. Each output is handed to an `emit` function of
//! index.js as positional arguments, which it names (`fromNative`) into the Python API's
//! shapes in camelCase; a field set through Node-API costs far more than one in JavaScript:
//!
//! - `('audio', nodeId, pts, samples: Float32Array, sampleRate, channels)`
//! - `('text', nodeId, pts, text)`, `('json', nodeId, pts, JSON text)`,
//!   `('binary', nodeId, pts, Buffer)`
//! - `('tensor', nodeId, pts, typed array of its dtype, shape, dtype)`
//! - `('video', nodeId, pts, Buffer, width, height, format, keyframe)`
//! - `('control', nodeId, pts, what)`
//! - `('error', nodeId, undefined, Error)`: a node's failure, in its place among the outputs
//!
//! pts is in ns, or null. JSON crosses as its text, which `JSON.parse` turns into objects faster
//! than Node-API builds them. Metrics are objects: `{nodeId, processed, busyMs, errors,
//! counters}`.

use napi::bindgen_prelude::{
    BigInt64Array, Buffer, Float32Array, Float64Array, FunctionRef, Int32Array, Object,
    ToNapiValue, TypeName, Uint8Array, Unknown,
};
use napi::{Env, JsValue, ValueType, sys};
use remotemedia_runtime::data::{Bytes, DType, TensorData};
use remotemedia_runtime::{NodeMetrics, Output, RuntimeData, RuntimeError};

use crate::error::{Failure, guarded};
use crate::js_value::to_unknown;
use crate::samples_out::SamplesOut;

/// index.js's `emit(kind, nodeId, pts, a, b, c, d, e)`, called with raw arguments (`deliver`).
pub type Emit = FunctionRef<(), ()>;

/// The name of a dtype, as numpy and the Python API spell it.
fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::U8 => "uint8",
    }
}

/// A tensor's data as a typed array of its dtype (copied: `Bytes` need not be aligned for
/// it; uint8 data the pipeline holds alone is moved).
fn tensor_data<'env>(env: &'env Env, tensor: TensorData) -> napi::Result<Unknown<'env>> {
    let bytes = &tensor.data;
    match tensor.dtype {
        DType::U8 => to_unknown(env, Uint8Array::new(Vec::from(tensor.data))),
        DType::F32 => to_unknown(env, Float32Array::new(bytemuck::pod_collect_to_vec(bytes))),
        DType::F64 => to_unknown(env, Float64Array::new(bytemuck::pod_collect_to_vec(bytes))),
        DType::I32 => to_unknown(env, Int32Array::new(bytemuck::pod_collect_to_vec(bytes))),
        DType::I64 => to_unknown(env, BigInt64Array::new(bytemuck::pod_collect_to_vec(bytes))),
    }
}

fn buffer<'env>(env: &'env Env, bytes: Bytes) -> napi::Result<Unknown<'env>> {
    to_unknown(env, Buffer::from(Vec::from(bytes)))
}

/// One output or failure as `emit`'s arguments.
fn emit_args<'env>(
    env: &'env Env,
    item: Result<Output, RuntimeError>,
    samples: &mut SamplesOut<'env>,
) -> napi::Result<[Unknown<'env>; 8]> {
    let undefined = to_unknown(env, ())?;
    let mut args = [undefined; 8];
    let out = match item {
        Ok(out) => out,
        Err(e) => {
            args[0] = to_unknown(env, "error")?;
            args[1] = to_unknown(env, e.node_id.as_str())?;
            args[3] = Failure::from(e).to_js(env)?.to_unknown();
            return Ok(args);
        }
    };
    args[0] = to_unknown(env, out.data.kind())?;
    args[1] = to_unknown(env, &*out.node_id)?;
    args[2] = to_unknown(env, out.pts.map(|p| p as f64))?;
    let payload = &mut args[3..];
    match out.data {
        RuntimeData::Audio(a) => {
            payload[0] = samples.hand_over(env, a.samples)?;
            payload[1] = to_unknown(env, a.sample_rate)?;
            payload[2] = to_unknown(env, u32::from(a.channels))?;
        }
        RuntimeData::Video(v) => {
            payload[0] = buffer(env, v.data)?;
            payload[1] = to_unknown(env, v.width)?;
            payload[2] = to_unknown(env, v.height)?;
            payload[3] = to_unknown(env, format!("{:?}", v.format).to_uppercase())?;
            payload[4] = to_unknown(env, v.keyframe)?;
        }
        RuntimeData::Text(text) => payload[0] = to_unknown(env, text)?,
        RuntimeData::Json(j) => payload[0] = to_unknown(env, j.to_string())?,
        RuntimeData::Binary(b) => payload[0] = buffer(env, b)?,
        RuntimeData::Tensor(tensor) => {
            let shape: Vec<f64> = tensor.shape.iter().map(|&d| d as f64).collect();
            payload[2] = to_unknown(env, dtype_name(tensor.dtype))?;
            payload[0] = tensor_data(env, tensor)?;
            payload[1] = to_unknown(env, shape)?;
        }
        RuntimeData::Control(c) => payload[0] = to_unknown(env, format!("{c:?}"))?,
    }
    Ok(args)
}

/// Hands every item to `emit`, in order. `emit` is JavaScript: no lock may be held here.
pub fn deliver(
    env: &Env,
    emit: &Emit,
    items: Vec<Result<Output, RuntimeError>>,
) -> napi::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let emit = emit.borrow_back(env)?.raw();
    let this = to_unknown(env, ())?.raw();
    let mut samples = SamplesOut::new(env, &items)?;
    for item in items {
        let args = emit_args(env, item, &mut samples)?.map(|a| a.raw());
        let mut returned = std::ptr::null_mut();
        // SAFETY: every value is alive in the current call's scope; `args` has 8 values.
        let status = unsafe {
            sys::napi_call_function(
                env.raw(),
                this,
                emit,
                args.len(),
                args.as_ptr(),
                &mut returned,
            )
        };
        if status != sys::Status::napi_ok {
            return Err(napi::Error::new(
                napi::Status::from(status),
                "emit failed (it threw?)",
            ));
        }
    }
    Ok(())
}

/// `deliver` where a panic would abort Node (a promise's settling, a task's completion).
pub fn deliver_guarded(
    env: &Env,
    emit: &Emit,
    items: Vec<Result<Output, RuntimeError>>,
) -> napi::Result<()> {
    guarded(|| Ok(deliver(env, emit, items)?)).map_err(|f| f.into_js(env))
}

fn metrics_to_js<'env>(env: &'env Env, metrics: &[NodeMetrics]) -> napi::Result<Object<'env>> {
    let mut array = env.create_array(0)?;
    for m in metrics {
        let mut o = Object::new(env)?;
        o.set("nodeId", m.node_id.as_str())?;
        o.set("processed", m.processed as f64)?;
        o.set("busyMs", m.busy_ns as f64 / 1e6)?;
        o.set("errors", m.errors as f64)?;
        let mut counters = Object::new(env)?;
        for (name, n) in &m.counters {
            counters.set(name, *n as f64)?;
        }
        o.set("counters", counters)?;
        array.insert(o)?;
    }
    array.coerce_to_object()
}

/// A session's or a run's counters, one object per node.
pub struct Metrics(pub Vec<NodeMetrics>);

impl TypeName for Metrics {
    fn type_name() -> &'static str {
        "Metrics"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ToNapiValue for Metrics {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(env);
        guarded(|| Ok(metrics_to_js(&env, &val.0)?.raw())).map_err(|f| f.into_js(&env))
    }
}
