//! The media buffer on its way out of `src`, held back until the results computed from it
//! have joined it as `RemoteMediaResultMeta`s.
//!
//! The rule: a result rides on the media buffer held when the result comes out of the graph,
//! or, when none is held, on the next one. A node emits its media before the results of the
//! same input, and the element holds each media buffer until the outputs queued behind it are
//! handled (all outputs of the input, for graphs of inline nodes), so a result lands on the
//! buffer it was computed from: an AudioLevelNode's level of 0-100 ms on the buffer that
//! completed that window. In a graph with dedicated or adaptive nodes the src task lets the
//! buffer go once the queue is empty, and a result that comes after that rides on the next one.
//! The result's `remotemedia-result` event goes downstream when the result comes, so it
//! precedes the buffer that carries the meta.

use super::result_meta;

/// Results waiting for a media buffer beyond this many lose their meta, oldest first (the bus,
/// the `text` pad and the events still carry them): a graph that stops delivering media must
/// not make them pile up.
const MAX_WAITING: usize = 256;

#[derive(Default)]
pub struct Held {
    buffer: Option<gst::Buffer>,
    results: Vec<gst::Structure>,
}

/// A held buffer let go, with the results that ride on it.
pub struct Released {
    buffer: gst::Buffer,
    results: Vec<gst::Structure>,
}

impl Held {
    /// Holds `buffer`; gives back the one held before.
    pub fn hold(&mut self, buffer: gst::Buffer) -> Option<Released> {
        let before = self.release();
        self.buffer = Some(buffer);
        before
    }

    /// A result for the held buffer, or for the next one when none is held.
    pub fn attach(&mut self, result: gst::Structure) {
        if self.buffer.is_none() && self.results.len() >= MAX_WAITING {
            self.results.remove(0);
        }
        self.results.push(result);
    }

    /// Lets the held buffer go, with its results.
    pub fn release(&mut self) -> Option<Released> {
        let buffer = self.buffer.take()?;
        Some(Released {
            buffer,
            results: std::mem::take(&mut self.results),
        })
    }

    /// Forgets the held buffer and the results waiting (a flush, EOS, a stop).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

impl Released {
    /// The buffer with one meta per result. When someone else still holds a reference to it,
    /// making it writable copies the buffer but shares its memory (GStreamer copies only
    /// memory flagged NO_SHARE): the samples are not copied.
    pub fn into_buffer(self) -> gst::Buffer {
        let Self {
            mut buffer,
            results,
        } = self;
        if !results.is_empty() {
            let writable = buffer.make_mut();
            for result in &results {
                result_meta::add(writable, result);
            }
        }
        buffer
    }
}
