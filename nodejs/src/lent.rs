//! JavaScript memory lent to a pipeline: a `Float32Array`'s samples become `SampleStorage` and
//! a typed array's or `Buffer`'s bytes become `Bytes`, both over the array's own memory. The storage holds napi's owned
//! handle of the array (a strong reference): the array and its `ArrayBuffer` stay alive while
//! any part of the pipeline holds the data, and when the last holder lets go on whatever
//! thread, napi hands the reference's release to the JavaScript thread. What a reference
//! cannot prevent is JavaScript detaching the buffer (`transfer()`, `postMessage` with a
//! transfer list), so the rule is the numpy one of the Python API: do not detach, transfer or
//! write an array a pipeline holds. A resizable `ArrayBuffer` could shrink under the pipeline,
//! so its arrays are copied instead. How lent samples go back: `samples_out`.

use std::any::Any;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{
    BigInt64Array, Float32Array, Float64Array, Int32Array, JsObjectValue, Object, TypedArrayType,
    Uint8Array, Unknown,
};
use napi::{Env, JsValue, ValueType, sys};
use remotemedia_runtime::data::Bytes;
use remotemedia_runtime::sync::lock;
use remotemedia_runtime::{AudioSamples, SampleStorage};

use crate::js_value::to_unknown;

/// A `Float32Array`'s samples, lent to the pipeline.
pub struct LentSamples {
    ptr: *const f32,
    len: usize,
    /// Keeps the array alive. Locked only on the JavaScript thread, to hand the array back.
    array: Mutex<Float32Array>,
}

// SAFETY: `ptr` and `len` were read from `array`, whose reference keeps the array and its
// memory alive while this storage lives (napi releases that reference on the JavaScript
// thread wherever the storage is dropped). Arrays of a resizable `ArrayBuffer` are never lent
// (`lend_samples`), and the module's contract is that JavaScript neither detaches nor writes
// a lent array while a pipeline holds it: then the memory does not move or change.
unsafe impl Send for LentSamples {}
unsafe impl Sync for LentSamples {}

impl SampleStorage for LentSamples {
    fn samples(&self) -> &[f32] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: see the Send/Sync note; ptr is non-null for a non-empty array.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl LentSamples {
    /// The caller's `Float32Array` these samples are: napi converts a `&mut Float32Array`
    /// that came from JavaScript to that very array (its reference's value), running no
    /// JavaScript meanwhile.
    pub fn js_array<'env>(&self, env: &'env Env) -> napi::Result<Unknown<'env>> {
        to_unknown(env, &mut *lock(&self.array))
    }
}

/// A typed array as Node-API reports it: its element type and the `ArrayBuffer` under it.
pub struct View<'env> {
    pub kind: TypedArrayType,
    pub value: Unknown<'env>,
    buffer: Unknown<'env>,
}

impl<'env> View<'env> {
    /// `value` as a typed array, `None` for any other value.
    pub fn of(value: Unknown<'env>) -> napi::Result<Option<Self>> {
        let env = value.value().env;
        let (mut kind, mut buffer) = (0, std::ptr::null_mut());
        // SAFETY: `value` is a live value of the current call; Node-API fills only the
        // outputs it is given and reports a value that is not a typed array as invalid_arg
        // (without throwing).
        let status = unsafe {
            sys::napi_get_typedarray_info(
                env,
                value.raw(),
                &mut kind,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut buffer,
                std::ptr::null_mut(),
            )
        };
        match status {
            sys::Status::napi_ok => Ok(Some(Self {
                kind: kind.into(),
                value,
                // SAFETY: a value Node-API just returned in this call.
                buffer: unsafe { Unknown::from_raw_unchecked(env, buffer) },
            })),
            sys::Status::napi_invalid_arg => Ok(None),
            other => Err(napi::Error::new(
                napi::Status::from(other),
                "cannot read a typed array",
            )),
        }
    }

    /// Whether the view lies on a resizable `ArrayBuffer`, which may shrink (and then free
    /// its pages) under a pipeline.
    fn on_resizable_buffer(&self) -> napi::Result<bool> {
        // SAFETY: a live ArrayBuffer (or SharedArrayBuffer) of the current call.
        let buffer: Object<'env> = unsafe { self.buffer.cast()? };
        let resizable: Unknown<'env> = buffer.get_c_named_property(c"resizable")?;
        // SAFETY: a live value of the current call, checked to be a boolean.
        Ok(resizable.get_type()? == ValueType::Boolean && unsafe { resizable.cast()? })
    }
}

/// A `Float32Array` as audio samples: lent, or copied when its buffer is resizable.
pub fn lend_samples(view: View<'_>) -> napi::Result<AudioSamples> {
    // SAFETY: a live value of the current call; `Float32Array::from_napi_value` checks that it
    // is a Float32Array.
    let owned: Float32Array = unsafe { view.value.cast()? };
    if view.on_resizable_buffer()? {
        return Ok(AudioSamples::from_vec(owned.to_vec()));
    }
    let (ptr, len) = (owned.as_ptr(), owned.len());
    Ok(AudioSamples::from_storage(Arc::new(LentSamples {
        ptr,
        len,
        array: Mutex::new(owned),
    })))
}

/// The typed arrays a tensor or binary input may lend, by element type (a `Buffer` is a
/// `Uint8Array`).
pub enum LentBytes {
    U8(Uint8Array),
    F32(Float32Array),
    F64(Float64Array),
    I32(Int32Array),
    I64(BigInt64Array),
}

impl AsRef<[u8]> for LentBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            LentBytes::U8(a) => a,
            LentBytes::F32(a) => bytemuck::cast_slice(a),
            LentBytes::F64(a) => bytemuck::cast_slice(a),
            LentBytes::I32(a) => bytemuck::cast_slice(a),
            LentBytes::I64(a) => bytemuck::cast_slice(a),
        }
    }
}

/// A view's bytes as `Bytes`: lent, or copied when its buffer is resizable.
pub fn lend_bytes(view: View<'_>, lent: LentBytes) -> napi::Result<Bytes> {
    if view.on_resizable_buffer()? {
        return Ok(Bytes::copy_from_slice(lent.as_ref()));
    }
    Ok(Bytes::from_owner(lent))
}
