//! Keeps an output pad one continuous stream across reconnects: one stream-start (stream-id
//! `audio:0`...) and one TIME segment for the pad's whole life, buffers on the running-time
//! axis and never going back, no EOS from a live source that dropped.
//!
//! What the probes swallow they return as `Handled`, not `Drop`: the bindings have already
//! taken the buffer or event out of the probe info and free it themselves, so with `Drop`
//! GStreamer would unref the emptied slot again (a `gst_mini_object_unref` CRITICAL each time).

use remotemedia_runtime::sync::lock;
use std::sync::{Arc, Mutex, PoisonError};

use gst::prelude::*;

use super::selection::Track;

/// What one output pad carried so far, shared by the attempts that feed it in turn.
#[derive(Debug, Default)]
pub struct Continuity {
    started: bool,
    segment_sent: bool,
    last_end: Option<gst::ClockTime>,
    /// When data last came through, on the element's timers' clock (stall detection).
    pub last_data: Option<gst::ClockTime>,
    /// Buffers dropped because their timestamp had no running time in their segment; named
    /// in a stall's reason, where they tell a source that sends from one that does not.
    pub unplaced: u64,
}

pub type Shared = Arc<Mutex<Continuity>>;

/// The timeline of the attempt a probe belongs to.
struct ThisAttempt {
    segment: Option<gst::FormattedSegment<gst::ClockTime>>,
    first: bool,
    /// Added to this attempt's running time so the pad never goes back in time.
    offset: gst::ClockTime,
}

/// Installs the stitching probe on one attempt's stream `pad`. `on_end` is called when a live
/// source ends its stream, which is dropped: the element reconnects instead. With `now` (the
/// running time, for sources that are not live), an attempt's first buffer is moved up to it.
/// `stamp` tells the time data comes through, for stall detection.
pub fn install(
    pad: &gst::Pad,
    track: Track,
    shared: Shared,
    live: bool,
    now: Option<impl Fn() -> Option<gst::ClockTime> + Send + Sync + 'static>,
    stamp: impl Fn() -> Option<gst::ClockTime> + Send + Sync + 'static,
    on_end: impl Fn() + Send + Sync + 'static,
) {
    let attempt = Mutex::new(ThisAttempt {
        segment: None,
        first: true,
        offset: gst::ClockTime::ZERO,
    });
    let stream_id = track.to_string();
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            if let Some(buffer) = info.buffer_mut() {
                let mut c = lock(&shared);
                let mut a = lock(&attempt);
                let seg = a.segment.clone().unwrap_or_default();
                let Some(pts) = buffer.pts().and_then(|p| seg.to_running_time(p)) else {
                    c.unplaced += 1;
                    return gst::PadProbeReturn::Handled;
                };
                let mut out = pts + a.offset;
                if a.first {
                    let floor = c.last_end.max(now.as_ref().and_then(|f| f()));
                    if let Some(floor) = floor
                        && out < floor
                    {
                        a.offset += floor - out;
                        out = floor;
                    }
                }
                let b = buffer.make_mut();
                b.set_pts(out);
                b.set_dts(gst::ClockTime::NONE);
                if a.first && c.last_end.is_some() {
                    b.set_flags(gst::BufferFlags::DISCONT);
                }
                a.first = false;
                drop(a);
                c.last_end = Some(out + b.duration().unwrap_or_default());
                c.last_data = stamp();
                drop(c);
                return gst::PadProbeReturn::Ok;
            }
            let Some(event) = info.event() else {
                return gst::PadProbeReturn::Ok;
            };
            let mut c = lock(&shared);
            match event.view() {
                gst::EventView::StreamStart(s) => {
                    if c.started {
                        return gst::PadProbeReturn::Handled;
                    }
                    c.started = true;
                    let renamed = gst::event::StreamStart::builder(&stream_id)
                        .group_id(s.group_id().unwrap_or_else(gst::GroupId::next))
                        .build();
                    info.data = Some(gst::PadProbeData::Event(renamed));
                    gst::PadProbeReturn::Ok
                }
                gst::EventView::Segment(s) => {
                    attempt
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .segment = s.segment().downcast_ref::<gst::ClockTime>().cloned();
                    if c.segment_sent {
                        return gst::PadProbeReturn::Handled;
                    }
                    c.segment_sent = true;
                    let ours = gst::FormattedSegment::<gst::ClockTime>::new();
                    info.data = Some(gst::PadProbeData::Event(gst::event::Segment::new(&ours)));
                    gst::PadProbeReturn::Ok
                }
                gst::EventView::Eos(_) if live => {
                    drop(c);
                    on_end();
                    gst::PadProbeReturn::Handled
                }
                // A live stream is never flushed: that would reset downstream's running time.
                gst::EventView::FlushStart(_) | gst::EventView::FlushStop(_) if live => {
                    gst::PadProbeReturn::Handled
                }
                _ => gst::PadProbeReturn::Ok,
            }
        },
    );
}
