//! The element: a source bin around `uridecodebin` (or `fdsrc ! decodebin` for stdin and for
//! SRT, which a relay process receives). Each
//! connection is an *attempt*; the output pads outlive attempts (ghost pads retargeted to each
//! attempt's stream), so a live source that drops, stalls or ends is
//! reconnected with backoff while downstream keeps running.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use remotemedia_runtime::sync::lock;

use crate::elements::{self, BuildError, MissingElement, make, tear_down};
use gst::subclass::prelude::*;

use super::relay::{self, Relay, RelayError};
use super::selection::{Kind, Selection, SelectionError, Track};
use super::stitch::{self, Continuity, Shared};
use super::timers::{self, Timers};
use super::uri::{self, Scheme, SourceUri};
use crate::failure::Failure;
use remotemedia_runtime::{Backoff, ErrorCode};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "remotemediaingest",
        gst::DebugColorFlags::empty(),
        Some("RemoteMedia ingest"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    uri: String,
    selection: Selection,
    /// Why the last `track-selection` set was refused; reported at NULL->READY, where the
    /// element has a bus (a property set before that has nowhere to post to).
    selection_error: Option<SelectionError>,
    backoff: Backoff,
    stall_timeout: Duration,
    connect_timeout: Duration,
    latency_ms: u32,
}

const DEFAULT_STALL_TIMEOUT_MS: u32 = 5000;
const DEFAULT_CONNECT_TIMEOUT_MS: u32 = 10_000;
const DEFAULT_LATENCY_MS: u32 = 200;
/// An FLV stream set is complete once no stream was added for this long.
const SETTLE_TIME: Duration = Duration::from_millis(1500);

impl Default for Settings {
    fn default() -> Self {
        Self {
            uri: String::new(),
            selection: Selection::default(),
            selection_error: None,
            backoff: Backoff::default(),
            stall_timeout: Duration::from_millis(DEFAULT_STALL_TIMEOUT_MS.into()),
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS.into()),
            latency_ms: DEFAULT_LATENCY_MS,
        }
    }
}

/// Why an attempt's elements could not be made.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("no source element for {uri}: {source}")]
    NoSource {
        /// Masked.
        uri: String,
        #[source]
        source: glib::Error,
    },
    #[error(transparent)]
    Relay(#[from] RelayError),
}

impl From<MissingElement> for AttemptError {
    fn from(e: MissingElement) -> Self {
        Self::Build(e.into())
    }
}

/// An output pad and what keeps it continuous.
struct Output {
    track: Track,
    /// The element's pad; its target is the current attempt's stream.
    pad: gst::GhostPad,
    continuity: Shared,
}

/// One connection to the source: its elements, and the streams it exposed.
struct Attempt {
    generation: u64,
    /// When its stall watch started (on the timers' clock); data before it is not this
    /// attempt's.
    started: Option<gst::ClockTime>,
    elements: Vec<gst::Element>,
    /// SRT: the process receiving the stream (goes after the elements reading from it).
    relay: Option<Relay>,
    found: Vec<Track>,
}

#[derive(Default)]
struct State {
    source: Option<SourceUri>,
    outputs: Vec<Output>,
    attempt: Option<Attempt>,
    /// Increases with every attempt; callbacks of older attempts are ignored.
    generation: u64,
    /// Failed attempts in a row (reset once an attempt delivers data).
    failures: u32,
    checked: bool,
    running: bool,
}

#[derive(Default)]
pub struct Ingest {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    timers: Timers,
}

/// rtspsrc (through uridecodebin's source-setup): the jitter buffer depth. SRT's goes to the
/// relay.
fn set_latency(src: &gst::Element, latency_ms: u32) {
    let Some(pspec) = src.find_property("latency") else {
        return;
    };
    if pspec.value_type() == u32::static_type() {
        src.set_property("latency", latency_ms);
    } else if pspec.value_type() == i32::static_type() {
        src.set_property("latency", latency_ms as i32);
    }
}

/// A decoding bin for an attempt. For a live source it prerolls on its own
/// (`async-handling`), and goes on to PLAYING by itself once it has. Otherwise its wait for
/// the first data makes the ingest bin and the pipeline lose PLAYING: elements started
/// meanwhile stop at PAUSED, where a live source sends nothing, so that first data never
/// comes (the RTSP and UDP reconnects that never recovered). A file still prerolls the
/// pipeline as usual.
fn decoder(factory: &str, live: bool) -> Result<gst::Element, MissingElement> {
    let bin = make(factory)?;
    if live {
        bin.set_property("async-handling", true);
    }
    Ok(bin)
}

/// The element that reads `source` by its URI (RTMP and UDP).
fn source_element(source: &SourceUri) -> Result<gst::Element, AttemptError> {
    gst::Element::make_from_uri(gst::URIType::Src, &source.uri, None).map_err(|source_error| {
        AttemptError::NoSource {
            uri: source.masked(),
            source: source_error,
        }
    })
}

impl Ingest {
    fn is_current(&self, generation: u64) -> bool {
        let st = lock(&self.state);
        st.running && st.generation == generation
    }

    fn source(&self) -> Option<SourceUri> {
        lock(&self.state).source.clone()
    }

    /// Starts the next attempt (called with a new generation already reserved).
    fn connect(&self, generation: u64) {
        let Some(source) = self.source() else { return };
        // A reconnect scheduled before the element stopped starts nothing (an SRT relay in
        // listener mode would hold the port).
        if !self.is_current(generation) {
            return;
        }
        let latency = lock(&self.settings).latency_ms;
        let (elements, relay) = match self.build_attempt(&source, generation, latency) {
            Ok(e) => e,
            Err(e) => {
                return self.attempt_failed(generation, &e.to_string());
            }
        };
        {
            let mut st = lock(&self.state);
            if !st.running || st.generation != generation {
                drop(st);
                self.remove_elements(elements, relay);
                return;
            }
            st.attempt = Some(Attempt {
                generation,
                started: None,
                elements: elements.clone(),
                relay,
                found: Vec::new(),
            });
        }
        gst::info!(CAT, imp = self, "attempt {generation}: {}", source.masked());
        // Downstream first: a source started before its decodebin pushes into an inactive
        // pad, gets FLUSHING and stops its task without an error (stdin then hung forever).
        for e in elements.iter().rev() {
            if e.sync_state_with_parent().is_err() {
                return self.attempt_failed(generation, "the source did not start");
            }
        }
        // A live source sends only in PLAYING: its connect timeout counts from there (and
        // on the pipeline's clock, which the element has from then on).
        if source.is_live() && self.obj().current_state() == gst::State::Playing {
            self.watch_stalls(generation);
        }
        if source.scheme == Scheme::Rtmp {
            self.settle_streams(generation, 0);
        }
    }

    /// Runs `f` on this element once `delay` has passed on its clock.
    fn after(&self, delay: Duration, f: impl FnOnce(&Ingest) + Send + 'static) {
        let obj = self.obj();
        let weak = obj.downgrade();
        self.timers.after(obj.upcast_ref(), delay, move || {
            if let Some(obj) = weak.upgrade() {
                f(obj.imp());
            }
        });
    }

    /// The timers' time now.
    fn now(&self) -> gst::ClockTime {
        timers::clock_of(self.obj().upcast_ref()).time()
    }

    /// For sources that never say they exposed every stream (FLV): once streams came and
    /// none followed for a while, their set is taken as complete.
    fn settle_streams(&self, generation: u64, seen: usize) {
        self.after(SETTLE_TIME, move |imp| {
            let found = {
                let st = lock(&imp.state);
                if st.checked || st.generation != generation {
                    return;
                }
                st.attempt.as_ref().map_or(0, |a| a.found.len())
            };
            if found > 0 && found == seen {
                imp.on_no_more_streams(generation);
            } else {
                imp.settle_streams(generation, found);
            }
        });
    }

    fn build_attempt(
        &self,
        source: &SourceUri,
        generation: u64,
        latency_ms: u32,
    ) -> Result<(Vec<gst::Element>, Option<Relay>), AttemptError> {
        let bin = self.obj();
        let mut relay = None;
        let (elements, decoder) = match source.scheme {
            // rtspsrc has a pad per stream, which uridecodebin decodes each on its own.
            Scheme::Rtsp | Scheme::File => {
                let decodebin = decoder("uridecodebin", source.is_live())?;
                decodebin.set_property("uri", &source.uri);
                decodebin.connect("source-setup", false, move |args| {
                    let src = args[1].get::<gst::Element>().ok()?;
                    set_latency(&src, latency_ms);
                    None
                });
                elements::add(&*bin, &[&decodebin])?;
                (vec![decodebin.clone()], decodebin)
            }
            // RTMP: `rtmp2src ! flvdemux`, and a decodebin per stream as it appears (one
            // decodebin would wait for an FLV header's promised video that may never come).
            Scheme::Rtmp => {
                let src = source_element(source)?;
                let demux = make("flvdemux")?;
                elements::add(&*bin, &[&src, &demux])?;
                elements::link(&[&src, &demux])?;
                (vec![src, demux.clone()], demux)
            }
            // One stream: `source ! decodebin`, without uridecodebin's network buffering
            // (which waits for a fill level a live stream must not wait for).
            scheme => {
                let src = if scheme == Scheme::Stdin {
                    let fdsrc = make("fdsrc")?;
                    fdsrc.set_property("fd", 0i32);
                    fdsrc
                } else if scheme == Scheme::Srt {
                    let r = Relay::spawn(&source.uri, latency_ms)?;
                    let fdsrc = make("fdsrc")?;
                    fdsrc.set_property("fd", r.fd());
                    relay = Some(r);
                    fdsrc
                } else {
                    source_element(source)?
                };
                let decodebin = decoder("decodebin", source.is_live())?;
                elements::add(&*bin, &[&src, &decodebin])?;
                elements::link(&[&src, &decodebin])?;
                (vec![src, decodebin.clone()], decodebin)
            }
        };
        let weak = bin.downgrade();
        let demuxed = source.scheme == Scheme::Rtmp;
        decoder.connect_pad_added(move |_, pad| {
            if let Some(bin) = weak.upgrade() {
                if demuxed {
                    bin.imp().decode_stream(generation, pad);
                } else {
                    bin.imp().on_stream(generation, pad);
                }
            }
        });
        let weak = bin.downgrade();
        decoder.connect_no_more_pads(move |_| {
            if let Some(bin) = weak.upgrade() {
                bin.imp().on_no_more_streams(generation);
            }
        });
        Ok((elements, relay))
    }

    /// A decoded stream of attempt `generation`: to its output pad, or discarded.
    fn on_stream(&self, generation: u64, pad: &gst::Pad) {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let kind = match caps.structure(0).map(|s| s.name().as_str()) {
            Some("audio/x-raw") => Some(Kind::Audio),
            Some("video/x-raw") => Some(Kind::Video),
            _ => None,
        };
        let live = self.source().is_some_and(|s| s.is_live());
        let selection = lock(&self.settings).selection.clone();
        let (track, output, created) = {
            let mut st = lock(&self.state);
            if !st.running || st.generation != generation {
                return;
            }
            let Some(attempt) = st.attempt.as_mut() else {
                return;
            };
            let track = kind.map(|kind| Track {
                kind,
                index: attempt.found.iter().filter(|t| t.kind == kind).count() as u32,
            });
            if let Some(t) = track {
                attempt.found.push(t);
            }
            let placed = match track.filter(|t| selection.wants(*t)) {
                None => (track, None, false),
                Some(t) => match st.outputs.iter().find(|o| o.track == t) {
                    Some(o) => (Some(t), Some((o.pad.clone(), o.continuity.clone())), false),
                    None => {
                        let o = self.new_output(t);
                        let output = (o.pad.clone(), o.continuity.clone());
                        st.outputs.push(o);
                        (Some(t), Some(output), true)
                    }
                },
            };
            drop(st);
            placed
        };
        let Some((ghost, continuity)) = output else {
            return self.discard(generation, pad, live);
        };
        let track = track.expect("an output has a track");
        let weak = self.obj().downgrade();
        // rtmp2src and the SRT relay's fdsrc are not live sources: their stream's time line
        // is moved onto the clock's.
        let retime = self
            .source()
            .is_some_and(|s| matches!(s.scheme, Scheme::Rtmp | Scheme::Srt));
        let clock_now = {
            let weak = self.obj().downgrade();
            move || {
                let obj = weak.upgrade()?;
                Some(obj.clock()?.time().saturating_sub(obj.base_time()?))
            }
        };
        let now = retime.then_some(clock_now);
        let stamp = {
            let weak = self.obj().downgrade();
            move || {
                weak.upgrade()
                    .map(|obj| timers::clock_of(obj.upcast_ref()).time())
            }
        };
        stitch::install(pad, track, continuity, live, now, stamp, move || {
            if let Some(obj) = weak.upgrade() {
                obj.imp()
                    .attempt_failed(generation, "the source ended its stream");
            }
        });
        // The output pad now reads this attempt's stream: no element in between, so the
        // stitching costs one probe per buffer and nothing else.
        if let Err(e) = ghost.set_target(Some(pad)) {
            return self.attempt_failed(generation, &format!("cannot link {track}: {e}"));
        }
        if created && let Err(e) = self.expose(&ghost) {
            return self.attempt_failed(generation, &e.to_string());
        }
        gst::info!(CAT, imp = self, "attempt {generation}: {track} on {}", caps);
    }

    fn new_output(&self, track: Track) -> Output {
        let templ = self
            .obj()
            .pad_template(&format!("{}_%u", track.kind.name()))
            .expect("the element has a pad template per kind");
        let pad = gst::GhostPad::builder_from_template(&templ)
            .name(format!("{}_{}", track.kind.name(), track.index))
            .build();
        Output {
            track,
            pad,
            continuity: Arc::new(Mutex::new(Continuity::default())),
        }
    }

    /// Adds a new output's pad (outside the state lock: pad-added handlers run inside
    /// `add_pad`).
    fn expose(&self, pad: &gst::GhostPad) -> Result<(), BuildError> {
        pad.set_active(true)
            .map_err(BuildError::pad("activate", pad))?;
        self.obj()
            .add_pad(pad)
            .map_err(BuildError::pad("expose", pad))
    }

    /// A stream nobody asked for ends in a fakesink (an unlinked one would stop the source);
    /// a live source's end there is not the element's end.
    fn discard(&self, generation: u64, pad: &gst::Pad, live: bool) {
        if !self.is_current(generation) {
            return;
        }
        let Ok(sink) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
        else {
            return;
        };
        if self.obj().add(&sink).is_err() {
            return;
        }
        if live {
            pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
                match info.event().map(|e| e.type_()) {
                    Some(gst::EventType::Eos) => gst::PadProbeReturn::Handled,
                    _ => gst::PadProbeReturn::Ok,
                }
            });
        }
        let sink_pad = sink.static_pad("sink").expect("fakesink has a sink pad");
        let _ = pad.link(&sink_pad);
        let _ = sink.sync_state_with_parent();
        self.keep_in_attempt(generation, sink);
    }

    /// A demuxed stream gets a decodebin of its own.
    fn decode_stream(&self, generation: u64, pad: &gst::Pad) {
        if !self.is_current(generation) {
            return;
        }
        let decodebin = match decoder("decodebin", true) {
            Ok(decodebin) => decodebin,
            Err(e) => return self.attempt_failed(generation, &e.to_string()),
        };
        let weak = self.obj().downgrade();
        decodebin.connect_pad_added(move |_, pad| {
            if let Some(obj) = weak.upgrade() {
                obj.imp().on_stream(generation, pad);
            }
        });
        if self.obj().add(&decodebin).is_err() {
            return;
        }
        let sink = decodebin
            .static_pad("sink")
            .expect("decodebin has a sink pad");
        if let Err(e) = pad.link(&sink) {
            return self
                .attempt_failed(generation, &format!("cannot decode {}: {e:?}", pad.name()));
        }
        let _ = decodebin.sync_state_with_parent();
        self.keep_in_attempt(generation, decodebin);
    }

    /// Records an element made for attempt `generation`, so it goes with the attempt (or at
    /// once, when the attempt is already over).
    fn keep_in_attempt(&self, generation: u64, element: gst::Element) {
        let mut st = lock(&self.state);
        match st.attempt.as_mut().filter(|a| a.generation == generation) {
            Some(a) => a.elements.push(element),
            None => {
                drop(st);
                self.remove_elements(vec![element], None);
            }
        }
    }

    /// After the first attempt exposed its streams: checks them against track-selection.
    fn on_no_more_streams(&self, generation: u64) {
        let (found, first) = {
            let mut st = lock(&self.state);
            if st.generation != generation {
                return;
            }
            let found = st
                .attempt
                .as_ref()
                .map(|a| a.found.clone())
                .unwrap_or_default();
            (found, !std::mem::replace(&mut st.checked, true))
        };
        if !first {
            return;
        }
        let selection = lock(&self.settings).selection.clone();
        if let Err(missing) = selection.check(&found) {
            let uri = self.source().map(|s| s.masked()).unwrap_or_default();
            Failure::config(format!("{uri}: {missing} (track-selection={selection})"))
                .uri(&uri)
                .post(&*self.obj());
            return;
        }
        self.obj().no_more_pads();
    }

    /// An attempt failed or ended: reconnect after the backoff, or give up with
    /// RECONNECT_FAILED. Files and stdin fail at once.
    fn attempt_failed(&self, generation: u64, reason: &str) {
        self.end_attempt(generation, reason, true);
    }

    /// `attempt_failed`; `ended` says the stream ended, so an SRT relay is exiting and its
    /// exit is worth waiting a moment for (a stalled one is not: it runs on).
    fn end_attempt(&self, generation: u64, reason: &str, ended: bool) {
        let Some(source) = self.source() else { return };
        let backoff = lock(&self.settings).backoff;
        let (old, next, attempt) = {
            let mut st = lock(&self.state);
            if !st.running || st.generation != generation {
                return;
            }
            if !source.is_live() {
                drop(st);
                let uri = source.masked();
                Failure::new(ErrorCode::Pipeline, format!("{uri}: {reason}"))
                    .uri(&uri)
                    .post(&*self.obj());
                return;
            }
            let delivered = st.attempt.as_ref().is_some_and(|a| {
                st.outputs.iter().any(|o| {
                    lock(&o.continuity)
                        .last_data
                        .is_some_and(|t| a.started.is_some_and(|s| t > s))
                })
            });
            if delivered {
                st.failures = 0;
            }
            st.failures += 1;
            st.generation += 1;
            (st.attempt.take(), st.generation, st.failures)
        };
        let mut reason = reason.to_owned();
        if let Some(mut old) = old {
            if let Some(why) = old.relay.as_mut().and_then(|r| r.outcome(ended)) {
                reason = format!("{}: {why}", reason.trim_end_matches('.'));
            }
            self.remove_elements(old.elements, old.relay);
        }
        let Some(delay) = backoff.delay(attempt) else {
            let uri = source.masked();
            let max = backoff.max_attempts;
            Failure::new(
                ErrorCode::ReconnectFailed,
                format!("{uri}: gave up after {max} attempts: {reason}"),
            )
            .uri(&uri)
            .post(&*self.obj());
            return;
        };
        gst::warning!(
            CAT,
            imp = self,
            "{}: {reason}; attempt {attempt} in {delay:?}",
            source.masked()
        );
        let s = gst::Structure::builder("reconnect")
            .field("code", ErrorCode::ReconnectAttempt.as_str())
            .field("attempt", attempt)
            .field("max-attempts", backoff.max_attempts)
            .field("delay-ms", delay.as_millis() as u64)
            .field("uri", source.masked())
            .field("reason", reason)
            .build();
        let obj = self.obj();
        let _ = obj.post_message(gst::message::Element::builder(s).src(&*obj).build());
        self.after(delay, move |imp| {
            imp.obj().call_async(move |obj| obj.imp().connect(next));
        });
    }

    /// Stops and removes elements off the calling thread, which may be one of theirs, then
    /// the relay they read from.
    fn remove_elements(&self, elements: Vec<gst::Element>, relay: Option<Relay>) {
        let weak = self.obj().downgrade();
        self.obj().call_async(move |_| {
            let obj = weak.upgrade();
            tear_down(obj.as_ref().map(|o| o.upcast_ref()), &elements);
            drop(relay);
        });
    }

    /// A live attempt that delivers nothing for `stall-timeout` is reconnected. Until its first
    /// data it has `connect-timeout` instead: connecting (RTSP's handshake, a server starting
    /// its stream, a loaded machine) must not count as stalling, or a source slower to start
    /// than the stall timeout would be cut off on every attempt and never connect. Started
    /// once per attempt, in PLAYING.
    fn watch_stalls(&self, generation: u64) {
        let now = self.now();
        let first = lock(&self.state)
            .attempt
            .as_mut()
            .filter(|a| a.generation == generation && a.started.is_none())
            .map(|a| a.started = Some(now))
            .is_some();
        if first {
            self.check_stall(generation);
        }
    }

    /// Ends the attempt if its deadline passed; otherwise comes back at the deadline, which
    /// moves on with every buffer.
    fn check_stall(&self, generation: u64) {
        let (timeout, connect_timeout) = {
            let s = lock(&self.settings);
            (s.stall_timeout, s.connect_timeout.max(s.stall_timeout))
        };
        let (last, delivered, found, unplaced) = {
            let st = lock(&self.state);
            let Some(a) = st.attempt.as_ref().filter(|a| a.generation == generation) else {
                return;
            };
            let Some(started) = a.started else { return };
            let found = a.found.len();
            let last = st
                .outputs
                .iter()
                .filter_map(|o| lock(&o.continuity).last_data)
                .filter(|t| *t > started)
                .max();
            let unplaced: u64 = st
                .outputs
                .iter()
                .map(|o| lock(&o.continuity).unplaced)
                .sum();
            drop(st);
            (last.unwrap_or(started), last.is_some(), found, unplaced)
        };
        let limit = if delivered { timeout } else { connect_timeout };
        let idle = Duration::from_nanos(self.now().saturating_sub(last).nseconds());
        if idle < limit {
            return self.after(limit - idle, move |imp| imp.check_stall(generation));
        }
        let msg = if delivered {
            format!(
                "no data for {:.1} s: the source stalled",
                limit.as_secs_f64()
            )
        } else {
            format!(
                "no data within {:.1} s of connecting ({found} streams found, \
                 {unplaced} buffers outside their segment)",
                limit.as_secs_f64()
            )
        };
        self.end_attempt(generation, &msg, false);
    }

    /// Which attempt a message comes from, if any: `Some(generation)`.
    fn attempt_of(&self, msg: &gst::MessageRef) -> Option<Option<u64>> {
        let src = msg.src()?;
        let me = self.obj();
        let mut obj = src.clone();
        loop {
            let parent = obj.parent()?;
            if &parent == me.upcast_ref::<gst::Object>() {
                let current = lock(&self.state)
                    .attempt
                    .as_ref()
                    .filter(|a| {
                        a.elements
                            .iter()
                            .any(|e| e.upcast_ref::<gst::Object>() == &obj)
                    })
                    .map(|a| a.generation);
                return Some(current);
            }
            obj = parent;
        }
    }

    fn start(&self) -> Result<(), Failure> {
        let (uri, selection_error) = {
            let s = lock(&self.settings);
            (s.uri.clone(), s.selection_error.clone())
        };
        if let Some(e) = selection_error {
            return Err(Failure::config(e.to_string()));
        }
        let source = uri::parse(&uri).map_err(|e| Failure::config(e.to_string()))?;
        let missing = if source.scheme == Scheme::Srt {
            // srtsrc runs in the relay: it is looked up here, not loaded.
            relay::locate().map_err(|e| Failure::config(e.to_string()))?;
            gst::ElementFactory::find("srtsrc").is_none().then(|| {
                "no GStreamer source element reads srt:// (install gstreamer1.0-plugins-bad, see \
                 README setup)"
                    .to_owned()
            })
        } else {
            (source.scheme != Scheme::File
                && source.scheme != Scheme::Stdin
                && gst::Element::make_from_uri(gst::URIType::Src, &source.uri, None).is_err())
            .then(|| {
                format!(
                    "no GStreamer source element reads {} (install gstreamer1.0-plugins-good and \
                     -bad, see README setup)",
                    source.masked()
                )
            })
        };
        if let Some(missing) = missing {
            return Err(Failure::config(missing).uri(&source.masked()));
        }
        *lock(&self.state) = State {
            source: Some(source),
            ..State::default()
        };
        Ok(())
    }

    fn stop(&self) {
        self.timers.cancel_all();
        let (attempt, outputs) = {
            let mut st = lock(&self.state);
            st.running = false;
            st.generation += 1;
            (st.attempt.take(), std::mem::take(&mut st.outputs))
        };
        let obj = self.obj();
        if let Some(attempt) = attempt {
            for e in &attempt.elements {
                let _ = e.set_state(gst::State::Null);
                let _ = obj.remove(e);
            }
            drop(attempt.relay);
        }
        for o in outputs {
            let _ = o.pad.set_active(false);
            let _ = obj.remove_pad(&o.pad);
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Ingest {
    const NAME: &'static str = "GstRemoteMediaIngest";
    type Type = super::RemoteMediaIngest;
    type ParentType = gst::Bin;
}

impl ObjectImpl for Ingest {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            // The defaults are the Settings' own, so the two cannot drift apart.
            let defaults = Settings::default();
            let backoff = defaults.backoff;
            let ms = |d: Duration| d.as_millis() as u32;
            vec![
                glib::ParamSpecString::builder("uri")
                    .nick("URI")
                    .blurb(&format!("What to ingest: {}", uri::SUPPORTED))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("track-selection")
                    .nick("Track selection")
                    .blurb("first-audio-video, all, or a list such as audio:0,video:1")
                    .default_value(Some(defaults.selection.to_string().as_str()))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-attempts")
                    .nick("Maximum reconnect attempts")
                    .blurb("Reconnect attempts of a live source in a row before RECONNECT_FAILED (0: forever)")
                    .default_value(backoff.max_attempts)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("initial-backoff-ms")
                    .nick("Initial backoff")
                    .blurb("Wait before the first reconnect attempt, in ms")
                    .minimum(10)
                    .maximum(600_000)
                    .default_value(ms(backoff.initial))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-backoff-ms")
                    .nick("Maximum backoff")
                    .blurb("Longest wait between reconnect attempts, in ms")
                    .minimum(10)
                    .maximum(3_600_000)
                    .default_value(ms(backoff.max))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("backoff-multiplier")
                    .nick("Backoff multiplier")
                    .blurb("Factor the wait grows by after each failed attempt")
                    .minimum(1.0)
                    .maximum(10.0)
                    .default_value(backoff.multiplier)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("stall-timeout-ms")
                    .nick("Stall timeout")
                    .blurb("A live source that delivers nothing for this long is reconnected, in ms")
                    .minimum(200)
                    .maximum(600_000)
                    .default_value(ms(defaults.stall_timeout))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("connect-timeout-ms")
                    .nick("Connect timeout")
                    .blurb(
                        "Time a live source's (re)connection may take to deliver its first data \
                         before it is retried, in ms (at least stall-timeout-ms)",
                    )
                    .minimum(200)
                    .maximum(600_000)
                    .default_value(ms(defaults.connect_timeout))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("latency")
                    .nick("Latency")
                    .blurb("Jitter buffer of RTSP and SRT sources, in ms")
                    .maximum(10_000)
                    .default_value(defaults.latency_ms)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        let ms = |v: &glib::Value| Duration::from_millis(v.get::<u32>().unwrap_or(0) as u64);
        match pspec.name() {
            "uri" => {
                s.uri = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
            }
            "track-selection" => {
                let text = value
                    .get::<Option<String>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                match Selection::parse(&text) {
                    Ok(sel) => {
                        s.selection = sel;
                        s.selection_error = None;
                    }
                    Err(e) => s.selection_error = Some(e),
                }
            }
            "max-attempts" => s.backoff.max_attempts = value.get().unwrap_or(10),
            "initial-backoff-ms" => s.backoff.initial = ms(value),
            "max-backoff-ms" => s.backoff.max = ms(value),
            "backoff-multiplier" => s.backoff.multiplier = value.get().unwrap_or(2.0),
            "stall-timeout-ms" => s.stall_timeout = ms(value),
            "connect-timeout-ms" => s.connect_timeout = ms(value),
            "latency" => s.latency_ms = value.get().unwrap_or(200),
            _ => unreachable!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = lock(&self.settings);
        let ms = |d: Duration| (d.as_millis() as u32).to_value();
        match pspec.name() {
            "uri" => s.uri.to_value(),
            "track-selection" => s.selection.to_string().to_value(),
            "max-attempts" => s.backoff.max_attempts.to_value(),
            "initial-backoff-ms" => ms(s.backoff.initial),
            "max-backoff-ms" => ms(s.backoff.max),
            "backoff-multiplier" => s.backoff.multiplier.to_value(),
            "stall-timeout-ms" => ms(s.stall_timeout),
            "connect-timeout-ms" => ms(s.connect_timeout),
            _ => s.latency_ms.to_value(),
        }
    }
}

impl GstObjectImpl for Ingest {}

impl ElementImpl for Ingest {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RemoteMedia ingest",
                "Source/Network/Audio/Video",
                "Decoded audio and video from RTSP, RTMP, SRT, UDP, files or stdin, reconnecting live sources",
                "RemoteMedia for GStreamer developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            [("audio_%u", "audio/x-raw"), ("video_%u", "video/x-raw")]
                .into_iter()
                .map(|(name, caps)| {
                    gst::PadTemplate::new(
                        name,
                        gst::PadDirection::Src,
                        gst::PadPresence::Sometimes,
                        &gst::Caps::new_empty_simple(caps),
                    )
                    .expect("pad template")
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        match transition {
            gst::StateChange::NullToReady => {
                if let Err(failure) = self.start() {
                    failure.post(&*self.obj());
                    return Err(gst::StateChangeError);
                }
            }
            gst::StateChange::ReadyToPaused => {
                let generation = {
                    let mut st = lock(&self.state);
                    st.running = true;
                    st.generation += 1;
                    st.generation
                };
                self.connect(generation);
            }
            // Before the children stop: streaming-thread callbacks (new streams, reconnects)
            // must not add or start anything while the bin goes down.
            gst::StateChange::PausedToReady => {
                let mut st = lock(&self.state);
                st.running = false;
                st.generation += 1;
            }
            _ => {}
        }
        let result = self.parent_change_state(transition);
        if transition == gst::StateChange::PausedToReady {
            self.stop();
        }
        if transition == gst::StateChange::PausedToPlaying && result.is_ok() {
            let generation = lock(&self.state).generation;
            if self.source().is_some_and(|s| s.is_live()) {
                self.watch_stalls(generation);
            }
        }
        let result = result?;
        let live = self.source().is_some_and(|s| s.is_live());
        Ok(if live {
            crate::live::no_preroll(transition, result)
        } else {
            result
        })
    }
}

impl BinImpl for Ingest {
    fn handle_message(&self, msg: gst::Message) {
        if let gst::MessageView::Error(err) = msg.view()
            && let Some(attempt) = self.attempt_of(&msg)
        {
            // Errors of an attempt become a reconnect (live) or an error naming the URI.
            if let Some(generation) = attempt {
                let reason = err.error().to_string();
                self.attempt_failed(generation, &reason);
            }
            return;
        }
        self.parent_handle_message(msg)
    }
}
