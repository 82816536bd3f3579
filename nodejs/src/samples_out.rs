//! Audio samples on their way to JavaScript, one delivery (the outputs handed over in one
//! call) at a time:
//!
//! - still the caller's memory (`LentSamples`): the caller's own `Float32Array`, the very
//!   object; a part of it as a view of the caller's `ArrayBuffer`;
//! - made by a node, `EXTERNAL_FROM` bytes or more: the node's `Vec` becomes the memory of an
//!   external `ArrayBuffer`, moved, not copied (copied first only when the pipeline still
//!   shares it or holds more than this part);
//! - made by a node, smaller: copied into one `ArrayBuffer` that the delivery's small outputs
//!   share; index.js makes each a view of it from its place. Node 20 makes every external
//!   `ArrayBuffer` a `Buffer` with a finalizer of its own, about 1 us each, which costs more
//!   than copying a few KiB (B16).

use napi::bindgen_prelude::{ArrayBuffer, Float32Array, Float32ArraySlice, JsObjectValue, Unknown};
use napi::{Env, JsValue};
use remotemedia_runtime::{AudioSamples, Output, RuntimeData, RuntimeError};

use crate::js_value::to_unknown;
use crate::lent::LentSamples;

/// Node-made samples of this many bytes or more leave as an external `ArrayBuffer` of their
/// own; smaller ones are copied into the delivery's shared buffer.
pub const EXTERNAL_FROM: usize = 64 * 1024;

/// The samples of a node-made audio output small enough to share the delivery's buffer.
fn small(item: &Result<Output, RuntimeError>) -> Option<&[f32]> {
    match item {
        Ok(Output {
            data: RuntimeData::Audio(audio),
            ..
        }) if !is_lent(&audio.samples)
            && std::mem::size_of_val::<[f32]>(&audio.samples) < EXTERNAL_FROM =>
        {
            Some(&audio.samples)
        }
        _ => None,
    }
}

fn is_lent(samples: &AudioSamples) -> bool {
    samples.storage().as_any().is::<LentSamples>()
}

/// The samples of one delivery, in the order of its items.
pub struct SamplesOut<'env> {
    shared: Option<ArrayBuffer<'env>>,
    /// Where the next small samples start in `shared`, in bytes.
    next: usize,
}

impl<'env> SamplesOut<'env> {
    /// Copies the small node-made samples among `items` into one buffer.
    pub fn new(env: &'env Env, items: &[Result<Output, RuntimeError>]) -> napi::Result<Self> {
        let bytes: usize = items
            .iter()
            .filter_map(small)
            .map(std::mem::size_of_val)
            .sum();
        if bytes == 0 {
            return Ok(Self {
                shared: None,
                next: 0,
            });
        }
        let mut all = Vec::with_capacity(bytes);
        for samples in items.iter().filter_map(small) {
            all.extend_from_slice(bytemuck::cast_slice(samples));
        }
        Ok(Self {
            shared: Some(ArrayBuffer::from_data(env, all)?),
            next: 0,
        })
    }

    /// The buffer the small samples share, if there are any.
    pub fn shared(&self) -> Option<&ArrayBuffer<'env>> {
        self.shared.as_ref()
    }

    /// Where JavaScript finds `samples` (the next audio of the delivery).
    pub fn hand_over(
        &mut self,
        env: &'env Env,
        samples: AudioSamples,
    ) -> napi::Result<Handed<'env>> {
        if let Some(lent) = samples.storage().as_any().downcast_ref::<LentSamples>() {
            let array = lent.js_array(env)?;
            if samples.is_whole() {
                return Ok(Handed::Array(array));
            }
            if let Some(view) = view_of(env, array, &samples)? {
                return Ok(Handed::Array(view));
            }
            return to_unknown(env, Float32Array::new(samples.to_vec())).map(Handed::Array);
        }
        let bytes = std::mem::size_of_val::<[f32]>(&samples);
        if self.shared.is_some() && bytes < EXTERNAL_FROM {
            let handed = Handed::Shared {
                offset: self.next,
                len: samples.len(),
            };
            self.next += bytes;
            return Ok(handed);
        }
        to_unknown(env, Float32Array::new(samples.into_vec())).map(Handed::Array)
    }
}

impl<'env> SamplesOut<'env> {
    /// `samples` (the next audio of the delivery) as a `Float32Array`.
    pub fn array(&mut self, env: &'env Env, samples: AudioSamples) -> napi::Result<Unknown<'env>> {
        match self.hand_over(env, samples)? {
            Handed::Array(array) => Ok(array),
            Handed::Shared { offset, len } => {
                // `hand_over` gives a place only in a shared buffer that exists.
                let shared = self.shared.as_ref().ok_or_else(|| {
                    napi::Error::from_reason("audio placed in a shared buffer that is not there")
                })?;
                to_unknown(
                    env,
                    Float32ArraySlice::from_arraybuffer(shared, offset, len)?,
                )
            }
        }
    }
}

/// Where an audio output's samples are for JavaScript.
pub enum Handed<'env> {
    /// `len` samples from byte `offset` of the shared buffer.
    Shared { offset: usize, len: usize },
    /// A `Float32Array` of their own.
    Array(Unknown<'env>),
}

/// A `Float32Array` over the part of `array`'s `ArrayBuffer` that `samples` cover, if that
/// buffer is an `ArrayBuffer` still holding them (not a `SharedArrayBuffer`, not detached).
fn view_of<'env>(
    env: &'env Env,
    array: Unknown<'env>,
    samples: &AudioSamples,
) -> napi::Result<Option<Unknown<'env>>> {
    let buffer: Unknown<'env> = array.coerce_to_object()?.get_named_property("buffer")?;
    if !buffer.is_arraybuffer()? {
        return Ok(None);
    }
    // SAFETY: checked to be an ArrayBuffer just now.
    let buffer: ArrayBuffer<'env> = unsafe { buffer.cast()? };
    let bytes = std::mem::size_of_val::<[f32]>(samples);
    let offset = (samples.as_ptr() as usize).wrapping_sub(buffer.as_ptr() as usize);
    if offset
        .checked_add(bytes)
        .is_none_or(|end| end > buffer.len())
    {
        return Ok(None);
    }
    let view = Float32ArraySlice::from_arraybuffer(&buffer, offset, samples.len())?;
    to_unknown(env, view).map(Some)
}
