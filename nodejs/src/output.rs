//! Outputs and metrics as JavaScript values, handed to an `emit` function of index.js that turns
//! them into the Python API's shapes in camelCase (`fromNative`, `unpack`). A value made or a
//! field set through Node-API costs far more than one made in JavaScript, so outputs cross as
//! numbers and few values:
//!
//! One output at a time (deliveries under `BATCH_FROM` outputs), positional:
//! - `('audio', nodeId, pts, samples: Float32Array, sampleRate, channels)`
//! - `('text', nodeId, pts, text)`, `('json', nodeId, pts, JSON text)`,
//!   `('binary', nodeId, pts, Buffer)`
//! - `('tensor', nodeId, pts, typed array of its dtype, shape, dtype)`
//! - `('video', nodeId, pts, Buffer, width, height, format, keyframe)`
//! - `('control', nodeId, pts, what)`
//! - `('error', nodeId, undefined, Error)`: a node's failure, in its place among the outputs
//!
//! pts is in ns, or null. Larger deliveries go in one call, as columns (B16):
//! `emit(table, strings, values, json, shared)`:
//! - `table`: a `Float64Array` of `COLUMNS` numbers per output: kind (`Kind`), the index of its
//!   node id in `strings`, pts in ns (NaN: none), then by kind:
//!   audio `(byte offset in shared or -1, samples, sampleRate, channels)` (at -1 the
//!   `Float32Array` is `values[i]`); json `(index in json)`; tensor `(index of its shape in json,
//!   index of its dtype in strings)`; video `(width, height, index of its format in strings,
//!   keyframe)`;
//! - `strings`: the distinct node ids, formats and dtypes;
//! - `values`: by output index, what has no place in the table: text, binary and video data (a
//!   `Buffer`), a tensor's typed array, a control's name, audio of its own, a node's failure (an
//!   `Error`);
//! - `json`: the JSON outputs and tensor shapes as one JSON array text, or undefined;
//! - `shared`: the `ArrayBuffer` small node-made audio shares (`samples_out.rs`), or undefined.
//!
//! JSON crosses as its text, which `JSON.parse` turns into objects several times faster than
//! Node-API builds them. Metrics are objects: `{nodeId, processed, busyMs, errors, counters}`.

use napi::bindgen_prelude::{
    Array, BigInt64Array, Buffer, Float32Array, Float64Array, Float64ArraySlice, FunctionRef,
    Int32Array, Object, ToNapiValue, TypeName, Uint8Array, Unknown,
};
use napi::{Env, JsValue, ValueType, sys};
use remotemedia_runtime::data::{Bytes, DType, TensorData};
use remotemedia_runtime::{NodeMetrics, Output, RuntimeData, RuntimeError};

use crate::error::{Failure, guarded};
use crate::js_value::to_unknown;
use crate::samples_out::{Handed, SamplesOut};

/// index.js's `emit`, called with raw arguments (`deliver`).
pub type Emit = FunctionRef<(), ()>;

/// Numbers per output in the table.
const COLUMNS: usize = 7;

/// Deliveries of fewer outputs go one call per output, with positional arguments: for one output
/// (a stream session's usual delivery) that costs less than making a batch's arrays (B15).
const BATCH_FROM: usize = 4;

/// An output's kind in the table; index.js's `KINDS` lists them in this order.
#[derive(Clone, Copy)]
enum Kind {
    Audio,
    Text,
    Json,
    Binary,
    Tensor,
    Video,
    Control,
    Error,
}

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

/// One output or failure as `emit`'s positional arguments.
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
            payload[0] = samples.array(env, a.samples)?;
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

/// One delivery's columns, filled output by output.
struct Batch<'env> {
    table: Vec<f64>,
    strings: Vec<String>,
    values: Array<'env>,
    /// The JSON array text, without its closing bracket.
    json: String,
    json_items: usize,
}

impl<'env> Batch<'env> {
    fn new(env: &'env Env, outputs: usize) -> napi::Result<Self> {
        Ok(Self {
            table: Vec::with_capacity(outputs * COLUMNS),
            strings: Vec::new(),
            values: env.create_array(outputs as u32)?,
            json: String::from("["),
            json_items: 0,
        })
    }

    /// The index of `s` in the strings (a delivery has few distinct ones).
    fn string(&mut self, s: &str) -> f64 {
        let at = match self.strings.iter().position(|t| t == s) {
            Some(at) => at,
            None => {
                self.strings.push(s.to_owned());
                self.strings.len() - 1
            }
        };
        at as f64
    }

    /// The index of `value` in the JSON array.
    fn json(&mut self, value: &impl serde::Serialize) -> napi::Result<f64> {
        if self.json_items > 0 {
            self.json.push(',');
        }
        let text = serde_json::to_string(value)
            .map_err(|e| napi::Error::from_reason(format!("an output's JSON: {e}")))?;
        self.json.push_str(&text);
        self.json_items += 1;
        Ok((self.json_items - 1) as f64)
    }

    /// Adds output `index` (an output, or a node's failure).
    fn add(
        &mut self,
        env: &'env Env,
        index: u32,
        item: Result<Output, RuntimeError>,
        samples: &mut SamplesOut<'env>,
    ) -> napi::Result<()> {
        let out = match item {
            Ok(out) => out,
            Err(e) => {
                let node = self.string(&e.node_id);
                self.values.set(index, Failure::from(e).to_js(env)?)?;
                self.row(Kind::Error, node, None, [0.0; 4]);
                return Ok(());
            }
        };
        let node = self.string(&out.node_id);
        let (kind, fields) = match out.data {
            RuntimeData::Audio(a) => {
                let (offset, len) = match samples.hand_over(env, a.samples)? {
                    Handed::Shared { offset, len } => (offset as f64, len as f64),
                    Handed::Array(array) => {
                        self.values.set(index, array)?;
                        (-1.0, 0.0)
                    }
                };
                let format = [f64::from(a.sample_rate), f64::from(a.channels)];
                (Kind::Audio, [offset, len, format[0], format[1]])
            }
            RuntimeData::Video(v) => {
                let format = self.string(&format!("{:?}", v.format).to_uppercase());
                let fields = [
                    f64::from(v.width),
                    f64::from(v.height),
                    format,
                    f64::from(u8::from(v.keyframe)),
                ];
                self.values.set(index, buffer(env, v.data)?)?;
                (Kind::Video, fields)
            }
            RuntimeData::Text(text) => {
                self.values.set(index, text)?;
                (Kind::Text, [0.0; 4])
            }
            RuntimeData::Json(j) => (Kind::Json, [self.json(&j)?, 0.0, 0.0, 0.0]),
            RuntimeData::Binary(b) => {
                self.values.set(index, buffer(env, b)?)?;
                (Kind::Binary, [0.0; 4])
            }
            RuntimeData::Tensor(tensor) => {
                let shape = self.json(&tensor.shape)?;
                let dtype = self.string(dtype_name(tensor.dtype));
                self.values.set(index, tensor_data(env, tensor)?)?;
                (Kind::Tensor, [shape, dtype, 0.0, 0.0])
            }
            RuntimeData::Control(c) => {
                self.values.set(index, format!("{c:?}"))?;
                (Kind::Control, [0.0; 4])
            }
        };
        self.row(kind, node, out.pts, fields);
        Ok(())
    }

    fn row(&mut self, kind: Kind, node: f64, pts: Option<u64>, fields: [f64; 4]) {
        let pts = pts.map_or(f64::NAN, |p| p as f64);
        self.table
            .extend_from_slice(&[kind as u8 as f64, node, pts]);
        self.table.extend_from_slice(&fields);
    }

    /// `emit`'s arguments.
    fn finish(
        mut self,
        env: &'env Env,
        samples: &SamplesOut<'env>,
    ) -> napi::Result<[sys::napi_value; 5]> {
        let undefined = to_unknown(env, ())?;
        let json = if self.json_items == 0 {
            undefined
        } else {
            self.json.push(']');
            to_unknown(env, self.json)?
        };
        let shared = match samples.shared() {
            Some(shared) => shared.to_unknown(),
            None => undefined,
        };
        Ok([
            to_unknown(env, Float64ArraySlice::copy_from(env, &self.table)?)?.raw(),
            to_unknown(env, self.strings)?.raw(),
            self.values.raw(),
            json.raw(),
            shared.raw(),
        ])
    }
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
    if items.len() < BATCH_FROM {
        for item in items {
            let args = emit_args(env, item, &mut samples)?.map(|a| a.raw());
            call(env, this, emit, &args)?;
        }
        return Ok(());
    }
    let mut batch = Batch::new(env, items.len())?;
    for (index, item) in items.into_iter().enumerate() {
        batch.add(env, index as u32, item, &mut samples)?;
    }
    let args = batch.finish(env, &samples)?;
    call(env, this, emit, &args)
}

/// Calls JavaScript function `f` with `args`.
fn call(
    env: &Env,
    this: sys::napi_value,
    f: sys::napi_value,
    args: &[sys::napi_value],
) -> napi::Result<()> {
    let mut returned = std::ptr::null_mut();
    // SAFETY: every value is alive in the current call's scope.
    let status = unsafe {
        sys::napi_call_function(env.raw(), this, f, args.len(), args.as_ptr(), &mut returned)
    };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            napi::Status::from(status),
            "emit failed (it threw?)",
        ));
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
