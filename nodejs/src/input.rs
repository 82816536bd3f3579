//! Inputs as `RuntimeData`. index.js tags every input (`toNative`, the counterpart of the
//! Python package's `_to_native`) and hands over its fields by position, so no field is looked
//! up by name here (a lookup through Node-API costs far more than one in JavaScript):
//!
//! - `['audio', samples: Float32Array, sampleRate, channels, pts]` (interleaved; pts in ns or
//!   undefined)
//! - `['text', string]`
//! - `['json', value]`
//! - `['binary', Uint8Array]` (a `Buffer` is one)
//! - `['tensor', typed array, shape]` (Float32Array, Float64Array, Int32Array, BigInt64Array or
//!   Uint8Array; shape undefined for 1-D)

use napi::bindgen_prelude::{Array, TypedArrayType, Unknown};
use napi::{Env, JsValue, ValueType};
use remotemedia_runtime::data::{DType, TensorData};
use remotemedia_runtime::{AudioFrame, RuntimeData};

use crate::error::Failure;
use crate::js_value::to_unknown;
use crate::lent::{LentBytes, View, lend_bytes, lend_samples};

/// A value that cannot go into a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not a kind of value the call takes.
    #[error("{0}")]
    WrongType(String),
    /// The right kind, malformed.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(message: impl Into<String>) -> Failure {
    InputError::Invalid(message.into()).into()
}

/// A type's name as JavaScript's `typeof` spells it.
fn js_type(t: ValueType) -> String {
    format!("{t:?}").to_lowercase()
}

/// One tagged input: its tag and up to four fields.
pub fn to_data(
    env: &Env,
    kind: Unknown<'_>,
    fields: [Unknown<'_>; 4],
) -> Result<RuntimeData, Failure> {
    let [a, b, c, d] = fields;
    // SAFETY: a live value of the current call, checked to be a string.
    let kind: String = match kind.get_type()? {
        ValueType::String => unsafe { kind.cast()? },
        other => return Err(invalid(format!("an input's tag is a {}", js_type(other)))),
    };
    match kind.as_str() {
        "audio" => audio(a, b, c, d),
        "text" => text(a),
        "json" => json(env, a),
        "binary" => binary(a),
        "tensor" => tensor(a, b),
        other => Err(invalid(format!("an input's tag is {other:?}"))),
    }
}

/// A tagged input as the array `[tag, ...fields]` (a unary run's inputs); a field past its
/// end reads as undefined, as in JavaScript.
pub fn tuple_to_data(env: &Env, tuple: &Array<'_>) -> Result<RuntimeData, Failure> {
    let undefined = to_unknown(env, ())?;
    let field = |i: u32| -> napi::Result<Unknown<'_>> { Ok(tuple.get(i)?.unwrap_or(undefined)) };
    to_data(env, field(0)?, [field(1)?, field(2)?, field(3)?, field(4)?])
}

fn text(value: Unknown<'_>) -> Result<RuntimeData, Failure> {
    if value.get_type()? != ValueType::String {
        return Err(invalid("a text input's text must be a string"));
    }
    // SAFETY: a live value of the current call, checked to be a string.
    Ok(RuntimeData::Text(unsafe { value.cast()? }))
}

fn json(env: &Env, value: Unknown<'_>) -> Result<RuntimeData, Failure> {
    match value.get_type()? {
        ValueType::Undefined | ValueType::Function | ValueType::Symbol | ValueType::External => {
            Err(InputError::WrongType(format!(
                "cannot send {} into a pipeline",
                js_type(value.get_type()?)
            ))
            .into())
        }
        _ => env
            .from_js_value(value)
            .map(RuntimeData::Json)
            .map_err(|e| invalid(format!("not JSON: {}", e.reason))),
    }
}

/// The typed array `value` is, if its element type is `kind`.
fn view_of(value: Unknown<'_>, kind: TypedArrayType) -> napi::Result<Option<View<'_>>> {
    Ok(View::of(value)?.filter(|v| v.kind == kind))
}

fn binary(data: Unknown<'_>) -> Result<RuntimeData, Failure> {
    let view = view_of(data, TypedArrayType::Uint8)?
        .ok_or_else(|| invalid("a binary input's data must be a Buffer or Uint8Array"))?;
    // SAFETY: a live value of the current call, checked to be a Uint8Array.
    let lent = LentBytes::U8(unsafe { data.cast()? });
    Ok(RuntimeData::Binary(lend_bytes(view, lent)?))
}

/// A non-negative integer up to `max`, if given.
fn integer(value: Unknown<'_>, name: &str, max: f64) -> Result<Option<f64>, Failure> {
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        ValueType::Number => {
            // SAFETY: a live value of the current call, checked to be a number.
            let n: f64 = unsafe { value.cast()? };
            if n.fract() == 0.0 && (0.0..=max).contains(&n) {
                Ok(Some(n))
            } else {
                Err(invalid(format!(
                    "{name} must be an integer from 0 to {max}, not {n}"
                )))
            }
        }
        other => Err(invalid(format!(
            "{name} must be a number, not {}",
            js_type(other)
        ))),
    }
}

/// JavaScript's largest exact integer, 2^53 - 1.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

fn audio(
    samples: Unknown<'_>,
    rate: Unknown<'_>,
    channels: Unknown<'_>,
    pts: Unknown<'_>,
) -> Result<RuntimeData, Failure> {
    let samples = view_of(samples, TypedArrayType::Float32)?
        .ok_or_else(|| invalid("an audio input's samples must be a Float32Array"))?;
    let rate = integer(rate, "sampleRate", f64::from(u32::MAX))?
        .ok_or_else(|| invalid("an audio input needs its sampleRate"))?;
    let channels = integer(channels, "channels", f64::from(u16::MAX))?.unwrap_or(1.0);
    let pts = integer(pts, "pts", MAX_SAFE_INTEGER)?;
    let (rate, channels) = (rate as u32, channels as u16);
    let samples = lend_samples(samples)?;
    if rate == 0 || channels == 0 || samples.len() % usize::from(channels) != 0 {
        return Err(invalid(format!(
            "audio of {} samples cannot be {channels} channel(s) at {rate} Hz",
            samples.len()
        )));
    }
    let mut frame = AudioFrame::new(samples, rate, channels);
    frame.pts = pts.map(|p| p as u64);
    Ok(RuntimeData::Audio(frame))
}

fn shape(value: Unknown<'_>) -> Result<Option<Vec<usize>>, Failure> {
    let bad = || invalid("a tensor's shape must be an array of integers");
    match value.get_type()? {
        ValueType::Undefined | ValueType::Null => Ok(None),
        _ if value.is_array()? => {
            // SAFETY: a live value of the current call, checked to be an array.
            let dims: Vec<f64> = unsafe { value.cast() }.map_err(|_| bad())?;
            dims.iter()
                .map(|&d| {
                    (d.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&d))
                        .then_some(d as usize)
                        .ok_or_else(bad)
                })
                .collect::<Result<_, _>>()
                .map(Some)
        }
        _ => Err(bad()),
    }
}

/// A typed array as a tensor: 1-D unless a shape is given.
fn tensor(array: Unknown<'_>, shape_value: Unknown<'_>) -> Result<RuntimeData, Failure> {
    let Some(view) = View::of(array)? else {
        return Err(InputError::WrongType(
            "a tensor must be a typed array: wrap an ArrayBuffer's or DataView's memory in one"
                .into(),
        )
        .into());
    };
    // SAFETY (every cast): a live value of the current call, checked to be a typed array of
    // this element type (each owned typed array's conversion checks it again).
    let (dtype, size, lent) = match view.kind {
        TypedArrayType::Float32 => (DType::F32, 4, LentBytes::F32(unsafe { array.cast()? })),
        TypedArrayType::Float64 => (DType::F64, 8, LentBytes::F64(unsafe { array.cast()? })),
        TypedArrayType::Int32 => (DType::I32, 4, LentBytes::I32(unsafe { array.cast()? })),
        TypedArrayType::BigInt64 => (DType::I64, 8, LentBytes::I64(unsafe { array.cast()? })),
        TypedArrayType::Uint8 => (DType::U8, 1, LentBytes::U8(unsafe { array.cast()? })),
        other => {
            return Err(invalid(format!(
                "a tensor of {}Array is not supported: use Float32Array, Float64Array, \
                 Int32Array, BigInt64Array or Uint8Array",
                other.as_ref()
            )));
        }
    };
    let len = lent.as_ref().len() / size;
    let shape = shape(shape_value)?.unwrap_or_else(|| vec![len]);
    let needed: usize = shape.iter().product();
    if needed != len {
        return Err(invalid(format!(
            "a tensor of shape {shape:?} needs {needed} elements, not {len}"
        )));
    }
    let data = lend_bytes(view, lent)?;
    Ok(RuntimeData::Tensor(TensorData { shape, dtype, data }))
}
