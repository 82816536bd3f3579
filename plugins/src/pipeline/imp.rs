//! The element: pads, properties, state changes, and the path from buffers through the
//! graph to the src pad, the `text` pad and the bus.
//!
//! Graphs of inline nodes run on the streaming thread and their outputs are pushed from it
//! straight away. Graphs with dedicated nodes produce outputs on other threads; a src pad
//! task pushes them. Either way outputs, node errors and serialized events pass through one
//! ordered queue.

use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use remotemedia_runtime::data::ControlMessage;
use remotemedia_runtime::manifest::{self, Nodes};
use remotemedia_runtime::sync::lock;
use remotemedia_runtime::{Graph, Output, Registry, RuntimeData, Session, StreamFormat};

use super::convert::{self, InputCaps};
use super::held::{Held, Released};
use super::queue::{Item, OutQueue, QueueSink};
use super::result_meta;
use crate::failure::Failure;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "remotemediapipeline",
        gst::DebugColorFlags::empty(),
        Some("RemoteMedia pipeline element"),
    )
});

/// A manifest without nodes is refused: this element would have nothing to run.
const NODES: Nodes = Nodes::Required("remotemediapipeline has nothing to run");

/// Outputs waiting for the src pad task when nodes run on their own threads.
const THREADED_QUEUE_CAPACITY: usize = 64;

const DEFAULT_RESULT_META: bool = true;
/// The custom downstream event that carries a `CancelSpeculation` control.
const CANCEL_SPECULATION: &str = "remotemedia-cancel-speculation";

#[derive(Debug, Clone)]
struct Settings {
    manifest: Option<String>,
    manifest_json: Option<String>,
    post_messages: bool,
    result_meta: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            manifest: None,
            manifest_json: None,
            post_messages: true,
            result_meta: DEFAULT_RESULT_META,
        }
    }
}

/// Everything that lives from NULL->READY to READY->NULL.
struct Running {
    graph: Arc<Graph>,
    session: Arc<Session>,
    queue: Arc<OutQueue>,
    threaded: bool,
}

/// Where an output goes: its audio/video to src, its text/JSON to src (a text-only graph),
/// or everything to the side (text pad, bus).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    SrcMedia,
    SrcText,
    Side,
}

/// The node whose results go to the src pad, and whether they are text (a text-only graph)
/// rather than audio/video.
#[derive(Clone)]
struct MediaNode {
    id: Arc<str>,
    text: bool,
}

#[derive(Default)]
struct StreamState {
    input: Option<InputCaps>,
    latency_ns: u64,
    /// The node whose audio/video goes to the src pad.
    media_node: Option<MediaNode>,
    segment: Option<gst::Event>,
    stream_id: Option<String>,
}

pub struct RemoteMediaPipeline {
    sinkpad: gst::Pad,
    srcpad: gst::Pad,
    textpad: Mutex<Option<gst::Pad>>,
    settings: Mutex<Settings>,
    running: Mutex<Option<Running>>,
    stream: Mutex<StreamState>,
    /// The media buffer about to leave on src, and the results that will ride on it.
    held: Mutex<Held>,
    /// The last flow return of the src pad task, returned by the chain function.
    last_flow: Mutex<Result<gst::FlowSuccess, gst::FlowError>>,
}

impl RemoteMediaPipeline {
    fn running(&self) -> Option<(Arc<Session>, Arc<OutQueue>, bool)> {
        lock(&self.running)
            .as_ref()
            .map(|r| (Arc::clone(&r.session), Arc::clone(&r.queue), r.threaded))
    }

    /// Loads the manifest and starts a session; the error text carries the loader's report.
    fn start(&self) -> Result<(), Failure> {
        let settings = lock(&self.settings).clone();
        let registry = Registry::builtin();
        let manifest = match (&settings.manifest_json, &settings.manifest) {
            (Some(json), _) => manifest::parse_in(json, "manifest-json", None, registry, NODES),
            (None, Some(path)) => manifest::load_file(Path::new(path), registry, NODES),
            (None, None) => {
                return Err(Failure::config(
                    "set the \"manifest\" (a path) or \"manifest-json\" property",
                ));
            }
        }
        .map_err(|report| Failure::config(report.to_string()))?;
        let graph = Arc::new(Graph::new(manifest));
        let threaded = graph.has_dedicated_nodes();
        let capacity = if threaded {
            THREADED_QUEUE_CAPACITY
        } else {
            usize::MAX
        };
        let queue = Arc::new(OutQueue::new(capacity));
        let session = Session::new(Arc::clone(&graph), Arc::new(QueueSink(Arc::clone(&queue))))
            .map_err(|e| Failure::new(e.code, e.to_string()).node(&e.node_id))?;
        gst::info!(
            CAT,
            imp = self,
            "loaded manifest {:?} with {} nodes{}",
            graph.manifest().name,
            graph.manifest().nodes.len(),
            if threaded {
                ", dedicated node threads"
            } else {
                ""
            }
        );
        *lock(&self.running) = Some(Running {
            graph,
            session: Arc::new(session),
            queue,
            threaded,
        });
        Ok(())
    }

    fn stop(&self) {
        // Taken out first: dropping the session joins node threads and stops Python workers,
        // and removing the pad calls into GStreamer; neither may happen under a lock.
        let running = lock(&self.running).take();
        if let Some(r) = running {
            r.queue.set_flushing(true);
            drop(r);
        }
        *lock(&self.stream) = StreamState::default();
        lock(&self.held).clear();
        let textpad = lock(&self.textpad).take();
        if let Some(pad) = textpad {
            let _ = pad.set_active(false);
            let _ = self.obj().remove_pad(&pad);
        }
    }

    // ----- sink side -------------------------------------------------------------------

    fn sink_chain(
        &self,
        _pad: &gst::Pad,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some((session, queue, threaded)) = self.running() else {
            return Err(gst::FlowError::Flushing);
        };
        let Some(input) = lock(&self.stream).input.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ["No caps before the first buffer"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let data = input.to_data(buffer).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Decode, ["{}", e]);
            gst::FlowError::Error
        })?;
        if let Err(e) = session.send(data) {
            self.node_failed(&e);
            return Err(gst::FlowError::Error);
        }
        if threaded {
            *lock(&self.last_flow)
        } else {
            self.push_ready(&queue)
        }
    }

    fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        use gst::EventView;
        gst::log!(CAT, obj = pad, "event {:?}", event.type_());
        match event.view() {
            EventView::Caps(c) => {
                let caps = c.caps_owned();
                return self.set_input_caps(&caps);
            }
            EventView::StreamStart(s) => {
                lock(&self.stream).stream_id = Some(s.stream_id().to_string());
            }
            EventView::Segment(_) => {
                lock(&self.stream).segment = Some(event.clone());
            }
            EventView::FlushStart(_) => {
                if let Some((_, queue, threaded)) = self.running() {
                    queue.set_flushing(true);
                    self.forward_to_text(&event);
                    let ok = self.srcpad.push_event(event);
                    if threaded {
                        let _ = self.srcpad.pause_task();
                    }
                    return ok;
                }
            }
            EventView::FlushStop(_) => {
                if let Some((session, queue, threaded)) = self.running() {
                    session.reset();
                    queue.set_flushing(false);
                    lock(&self.held).clear();
                    *lock(&self.last_flow) = Ok(gst::FlowSuccess::Ok);
                    self.forward_to_text(&event);
                    let ok = self.srcpad.push_event(event);
                    if threaded {
                        self.start_task();
                    }
                    return ok;
                }
            }
            EventView::Eos(_) => {
                if let Some((session, queue, threaded)) = self.running() {
                    // Drain the graph: everything it holds goes out before EOS.
                    if let Err(e) = session.drain() {
                        self.node_failed(&e);
                    }
                    queue.push(Item::Event(event));
                    if !threaded {
                        let _ = self.push_ready(&queue);
                    }
                    return true;
                }
            }
            _ => {}
        }
        if event.is_serialized() {
            self.enqueue_event(event)
        } else {
            self.srcpad.push_event(event)
        }
    }

    /// Serialized events keep their place among the graph's outputs.
    fn enqueue_event(&self, event: gst::Event) -> bool {
        let Some((session, queue, threaded)) = self.running() else {
            return self.srcpad.push_event(event);
        };
        if threaded {
            // Outputs of earlier buffers first, then the event.
            session.barrier();
            queue.push(Item::Event(event));
            true
        } else {
            queue.push(Item::Event(event));
            self.push_ready(&queue).is_ok()
        }
    }

    fn set_input_caps(&self, caps: &gst::Caps) -> bool {
        let input = match InputCaps::parse(caps) {
            Ok(i) => i,
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("Caps {} refused: {}", caps, e)
                );
                return false;
            }
        };
        let Some(graph) = lock(&self.running).as_ref().map(|r| Arc::clone(&r.graph)) else {
            return false;
        };
        let format = input.stream_format();
        let out_format = match graph.output_format(&format) {
            Ok(f) => f,
            Err(e) => {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("The manifest cannot take {}: {}", caps, e)
                );
                return false;
            }
        };
        let out_caps = convert::output_caps(&out_format).unwrap_or_else(|| caps.clone());
        gst::debug!(CAT, imp = self, "input {caps} -> output {out_caps}");
        {
            let mut st = lock(&self.stream);
            st.input = Some(input);
            st.latency_ns = graph.latency_ns(&format);
            st.media_node = graph.media_output_node(&format).map(|id| MediaNode {
                id: Arc::from(id),
                text: matches!(out_format, StreamFormat::Text | StreamFormat::Json),
            });
        }
        let _ = self
            .obj()
            .post_message(gst::message::Latency::builder().src(&*self.obj()).build());
        self.enqueue_event(gst::event::Caps::new(&out_caps))
    }

    // ----- pushing side -----------------------------------------------------------------

    /// Pushes what the queue holds now (inline graphs, on the streaming thread): the outputs
    /// of one input, so the media buffer goes last, with the results computed from it.
    fn push_ready(&self, queue: &OutQueue) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut flow = Ok(gst::FlowSuccess::Ok);
        let media_node = lock(&self.stream).media_node.clone();
        while let Some(item) = queue.try_pop() {
            let f = self.push_item(item, media_node.as_ref());
            if f.is_err() {
                flow = f;
            }
        }
        let f = self.push_held();
        if f.is_err() {
            flow = f;
        }
        flow
    }

    fn start_task(&self) {
        let imp = self.ref_counted();
        let started = self.srcpad.start_task(move || imp.src_loop());
        if let Err(e) = started {
            gst::element_imp_error!(
                self,
                gst::CoreError::Thread,
                ["Cannot start the src task: {}", e]
            );
        }
    }

    fn src_loop(&self) {
        let Some((_, queue, _)) = self.running() else {
            let _ = self.srcpad.pause_task();
            return;
        };
        let Some(item) = queue.pop() else {
            let _ = self.srcpad.pause_task();
            return;
        };
        let is_eos = matches!(&item, Item::Event(e) if e.type_() == gst::EventType::Eos);
        let media_node = lock(&self.stream).media_node.clone();
        let mut flow = self.push_item(item, media_node.as_ref());
        // Nothing behind it: the held buffer goes, with the results that came so far.
        if queue.is_empty() {
            flow = flow.and(self.push_held());
        }
        *lock(&self.last_flow) = flow;
        match flow {
            Err(gst::FlowError::Flushing) => {
                let _ = self.srcpad.pause_task();
            }
            Err(gst::FlowError::Eos) | Ok(_) if is_eos => {
                let _ = self.srcpad.pause_task();
            }
            Err(e) if e != gst::FlowError::Eos && e != gst::FlowError::NotLinked => {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ["Streaming stopped, reason {:?}", e]
                );
                let _ = self.srcpad.push_event(gst::event::Eos::new());
                let _ = self.srcpad.pause_task();
            }
            _ => {}
        }
    }

    /// Pushes one item; `media_node` names the node whose results go to the src pad.
    fn push_item(
        &self,
        item: Item,
        media_node: Option<&MediaNode>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        match item {
            Item::Output(out) => {
                let route = match media_node {
                    Some(m) if *m.id == *out.node_id && m.text => Route::SrcText,
                    Some(m) if *m.id == *out.node_id => Route::SrcMedia,
                    _ => Route::Side,
                };
                let media_on_src = media_node.is_some_and(|m| !m.text);
                self.push_output(out, route, media_on_src)
            }
            Item::Error(e) => {
                self.node_failed(&e);
                Err(gst::FlowError::Error)
            }
            Item::Warning(w) => {
                let details = gst::Structure::builder("remotemedia-warning")
                    .field("node-id", &w.node_id)
                    .field("message", &w.message)
                    .build();
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Failed,
                    ("Node {:?} recovered: {}", w.node_id, w.message),
                    details: details
                );
                Ok(gst::FlowSuccess::Ok)
            }
            Item::Event(event) => {
                // The buffer held goes before the event that follows it.
                let flow = self.push_held();
                if matches!(event.type_(), gst::EventType::Eos) {
                    lock(&self.held).clear();
                    self.forward_to_text(&event);
                }
                if event.type_() == gst::EventType::Segment {
                    self.forward_to_text(&event);
                }
                self.srcpad.push_event(event);
                flow
            }
        }
    }

    /// Pushes one output; `media_on_src` says the graph delivers audio/video on src, which
    /// its results ride on.
    fn push_output(
        &self,
        out: Output,
        route: Route,
        media_on_src: bool,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let to_src = route == Route::SrcText;
        let media = match &out.data {
            RuntimeData::Audio(frame) if route == Route::SrcMedia => convert::audio_buffer(frame),
            RuntimeData::Video(frame) if route == Route::SrcMedia => convert::video_buffer(frame),
            RuntimeData::Audio(_) | RuntimeData::Video(_) => return Ok(gst::FlowSuccess::Ok),
            RuntimeData::Text(text) => {
                let result = self.post_result(&out, "text", text.clone(), media_on_src);
                return self.push_text(text.as_bytes().to_vec(), out.pts, false, to_src, result);
            }
            RuntimeData::Json(json) => {
                let text = json.to_string();
                let result = self.post_result(&out, "json", text.clone(), media_on_src);
                return self.push_text(text.into_bytes(), out.pts, true, to_src, result);
            }
            RuntimeData::Binary(b) => {
                let summary = serde_json::json!({"bytes": b.len()});
                self.post_result(&out, "binary", summary.to_string(), media_on_src);
                return Ok(gst::FlowSuccess::Ok);
            }
            RuntimeData::Tensor(t) => {
                let summary =
                    serde_json::json!({"shape": t.shape, "dtype": format!("{:?}", t.dtype)});
                self.post_result(&out, "tensor", summary.to_string(), media_on_src);
                return Ok(gst::FlowSuccess::Ok);
            }
            RuntimeData::Control(ControlMessage::CancelSpeculation { from_ms, to_ms }) => {
                return self.push_cancel(&out.node_id, *from_ms, *to_ms);
            }
            RuntimeData::Control(c) => {
                let summary = serde_json::json!({"control": format!("{c:?}")});
                self.post_result(&out, "control", summary.to_string(), media_on_src);
                return Ok(gst::FlowSuccess::Ok);
            }
        };
        // Dropped first: the buffer may then be ours alone, and a meta added in place.
        drop(out);
        let before = lock(&self.held).hold(media);
        self.push_released(before)
    }

    /// A speculative gate took back audio it let through: downstream elements learn it from a
    /// `remotemedia-cancel-speculation` event (times on the stream's running-time axis, as the
    /// buffers' timestamps), which follows the last buffer it covers.
    fn push_cancel(
        &self,
        node_id: &str,
        from_ms: f64,
        to_ms: f64,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let flow = self.push_held();
        let time = |ms: f64| gst::ClockTime::from_nseconds((ms * 1e6).round() as u64);
        let event = gst::Structure::builder(CANCEL_SPECULATION)
            .field("node-id", node_id)
            .field("from-ms", from_ms)
            .field("to-ms", to_ms)
            .field("from", time(from_ms))
            .field("to", time(to_ms))
            .build();
        self.srcpad
            .push_event(gst::event::CustomDownstream::new(event));
        flow
    }

    /// Pushes the held media buffer, with its results as metas (held.rs has the rule).
    fn push_held(&self) -> Result<gst::FlowSuccess, gst::FlowError> {
        let released = lock(&self.held).release();
        self.push_released(released)
    }

    fn push_released(
        &self,
        released: Option<Released>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        match released {
            Some(released) => self.srcpad.push(released.into_buffer()),
            None => Ok(gst::FlowSuccess::Ok),
        }
    }

    /// A text/JSON/summary result: on the bus (`remotemedia`), downstream as a
    /// `remotemedia-result` event (which a `remotemediawebrtcsink` sends to its peers) and, with
    /// `result-meta`, as a `RemoteMediaResultMeta` on the media buffer it was computed from when
    /// the graph delivers media on src. All carry the same `result-id`. Returns the result
    /// when it rides on buffers, for its text buffer.
    fn post_result(
        &self,
        out: &Output,
        kind: &str,
        json: String,
        media_on_src: bool,
    ) -> Option<gst::Structure> {
        let result = gst::Structure::builder("remotemedia-result")
            .field("node-id", &*out.node_id)
            .field("kind", kind)
            .field("json", json)
            .field("pts", out.pts.map(gst::ClockTime::from_nseconds))
            .field(result_meta::ID_FIELD, result_meta::next_id())
            .build();
        self.srcpad
            .push_event(gst::event::CustomDownstream::new(result.clone()));
        let (post_messages, on_buffers) = {
            let s = lock(&self.settings);
            (s.post_messages, s.result_meta)
        };
        if post_messages {
            let mut fields = result.clone();
            fields.set_name("remotemedia");
            let obj = self.obj();
            let _ = obj.post_message(gst::message::Element::builder(fields).src(&*obj).build());
        }
        if !on_buffers {
            return None;
        }
        if media_on_src {
            lock(&self.held).attach(result.clone());
        }
        Some(result)
    }

    /// Pushes a text/JSON result, with its meta when `result` is given: on the src pad when it
    /// is the graph's main output (a text-only graph), else on the `text` pad, added on first
    /// use.
    fn push_text(
        &self,
        bytes: Vec<u8>,
        pts: Option<u64>,
        json: bool,
        to_src: bool,
        result: Option<gst::Structure>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        let writable = buffer.get_mut().expect("a new buffer is writable");
        writable.set_pts(pts.map(gst::ClockTime::from_nseconds));
        if let Some(result) = &result {
            result_meta::add(writable, result);
        }
        if to_src {
            return self.srcpad.push(buffer);
        }
        let existing = lock(&self.textpad).clone();
        let pad = existing.unwrap_or_else(|| self.add_text_pad(json));
        match pad.push(buffer) {
            // Nobody has to listen to the text pad.
            Err(gst::FlowError::NotLinked) => Ok(gst::FlowSuccess::Ok),
            other => other,
        }
    }

    fn add_text_pad(&self, json: bool) -> gst::Pad {
        let templ = self.obj().pad_template("text").expect("text template");
        let pad = gst::Pad::builder_from_template(&templ).name("text").build();
        let _ = pad.set_active(true);
        let (stream_id, segment) = {
            let st = lock(&self.stream);
            (st.stream_id.clone(), st.segment.clone())
        };
        let stream_id = format!("{}/text", stream_id.unwrap_or_else(|| "remotemedia".into()));
        let _ = pad.store_sticky_event(&gst::event::StreamStart::new(&stream_id));
        let caps = if json {
            convert::json_caps()
        } else {
            convert::text_caps()
        };
        let _ = pad.store_sticky_event(&gst::event::Caps::new(&caps));
        let segment = segment.unwrap_or_else(|| {
            gst::event::Segment::new(&gst::FormattedSegment::<gst::ClockTime>::new())
        });
        let _ = pad.store_sticky_event(&segment);
        *lock(&self.textpad) = Some(pad.clone());
        let _ = self.obj().add_pad(&pad);
        pad
    }

    fn forward_to_text(&self, event: &gst::Event) {
        let pad = lock(&self.textpad).clone();
        if let Some(pad) = pad {
            pad.push_event(event.clone());
        }
    }

    fn node_failed(&self, e: &remotemedia_runtime::RuntimeError) {
        Failure::new(
            e.code,
            format!("Node {:?} failed: {}", e.node_id, e.message),
        )
        .node(&e.node_id)
        .post(&*self.obj());
    }

    // ----- src side -------------------------------------------------------------------

    fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Latency(q) = query.view_mut() {
            let mut upstream = gst::query::Latency::new();
            if !self.sinkpad.peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let ours = gst::ClockTime::from_nseconds(lock(&self.stream).latency_ns);
            q.set(live, min + ours, max.map(|m| m + ours));
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    fn metrics_json(&self) -> String {
        let metrics = lock(&self.running)
            .as_ref()
            .map(|r| r.session.metrics())
            .unwrap_or_default();
        let nodes: Vec<serde_json::Value> = metrics
            .iter()
            .map(|m| {
                serde_json::json!({
                    "node_id": m.node_id, "processed": m.processed,
                    "busy_ms": m.busy_ns as f64 / 1e6, "errors": m.errors,
                    "counters": m.counters,
                })
            })
            .collect();
        serde_json::Value::Array(nodes).to_string()
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RemoteMediaPipeline {
    const NAME: &'static str = "GstRemoteMediaPipeline";
    type Type = super::RemoteMediaPipeline;
    type ParentType = gst::Element;

    fn with_class(klass: &Self::Class) -> Self {
        let sinkpad = gst::Pad::builder_from_template(&klass.pad_template("sink").expect("sink"))
            .chain_function(|pad, parent, buffer| {
                RemoteMediaPipeline::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |this| this.sink_chain(pad, buffer),
                )
            })
            .event_function(|pad, parent, event| {
                RemoteMediaPipeline::catch_panic_pad_function(
                    parent,
                    || false,
                    |this| this.sink_event(pad, event),
                )
            })
            .build();
        let srcpad = gst::Pad::builder_from_template(&klass.pad_template("src").expect("src"))
            .query_function(|pad, parent, query| {
                RemoteMediaPipeline::catch_panic_pad_function(
                    parent,
                    || false,
                    |this| this.src_query(pad, query),
                )
            })
            .build();
        Self {
            sinkpad,
            srcpad,
            textpad: Mutex::new(None),
            settings: Mutex::new(Settings::default()),
            running: Mutex::new(None),
            stream: Mutex::new(StreamState::default()),
            held: Mutex::new(Held::default()),
            last_flow: Mutex::new(Ok(gst::FlowSuccess::Ok)),
        }
    }
}

impl ObjectImpl for RemoteMediaPipeline {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("manifest")
                    .nick("Manifest")
                    .blurb("Path of the RemoteMedia manifest (JSON, version v1) to run; read at NULL->READY")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("manifest-json")
                    .nick("Manifest JSON")
                    .blurb("The manifest itself, inline; takes precedence over \"manifest\"")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("post-messages")
                    .nick("Post messages")
                    .blurb("Post a \"remotemedia\" element message (node-id, kind, json, pts, result-id) on the bus for every text/JSON result")
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("result-meta")
                    .nick("Result meta")
                    .blurb("Attach every text/JSON result as a RemoteMediaResultMeta (node-id, kind, json, pts, result-id) to the media buffer on src it was computed from and to its buffer on the text pad")
                    .default_value(DEFAULT_RESULT_META)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("metrics")
                    .nick("Metrics")
                    .blurb("Per-node counters as JSON: inputs processed, busy time, errors")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = lock(&self.settings);
        match pspec.name() {
            "manifest" => s.manifest = value.get().expect("type checked upstream"),
            "manifest-json" => s.manifest_json = value.get().expect("type checked upstream"),
            "post-messages" => s.post_messages = value.get().expect("type checked upstream"),
            "result-meta" => s.result_meta = value.get().expect("type checked upstream"),
            other => gst::warning!(CAT, imp = self, "no writable property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "manifest" => lock(&self.settings).manifest.to_value(),
            "manifest-json" => lock(&self.settings).manifest_json.to_value(),
            "post-messages" => lock(&self.settings).post_messages.to_value(),
            "result-meta" => lock(&self.settings).result_meta.to_value(),
            "metrics" => self.metrics_json().to_value(),
            other => {
                gst::warning!(CAT, imp = self, "no readable property {other}");
                None::<String>.to_value()
            }
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.add_pad(&self.sinkpad).expect("adding the sink pad");
        obj.add_pad(&self.srcpad).expect("adding the src pad");
    }
}

impl GstObjectImpl for RemoteMediaPipeline {}

impl ElementImpl for RemoteMediaPipeline {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            let description = format!(
                "Runs a RemoteMedia manifest on the buffers that flow through it; media results \
                 go to src, text/JSON results to the text pad and the bus. Node types: {}",
                remotemedia_runtime::Registry::builtin().summary()
            );
            gst::subclass::ElementMetadata::new(
                "RemoteMedia pipeline",
                "Filter/Audio/Video/Analyzer",
                &description,
                "RemoteMedia for GStreamer developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink_caps = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("audio/x-raw")
                        .field("format", "F32LE")
                        .field("layout", "interleaved")
                        .field("rate", gst::IntRange::new(1, i32::MAX))
                        .field("channels", gst::IntRange::new(1, i32::MAX))
                        .build(),
                )
                .structure(
                    gst::Structure::builder("video/x-raw")
                        .field("format", gst::List::new(["I420", "NV12", "RGB", "RGBA"]))
                        .build(),
                )
                .structure(
                    gst::Structure::builder("text/x-raw")
                        .field("format", "utf8")
                        .build(),
                )
                .build();
            let mut src_caps = sink_caps.clone();
            src_caps.merge(convert::json_caps());
            let text_caps = {
                let mut c = convert::text_caps();
                c.merge(convert::json_caps());
                c
            };
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink_caps,
                )
                .expect("sink template"),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &src_caps,
                )
                .expect("src template"),
                gst::PadTemplate::new(
                    "text",
                    gst::PadDirection::Src,
                    gst::PadPresence::Sometimes,
                    &text_caps,
                )
                .expect("text template"),
            ]
        });
        TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        gst::debug!(CAT, imp = self, "{transition:?}");
        if transition == gst::StateChange::NullToReady {
            self.start().map_err(|failure| {
                failure.post(&*self.obj());
                gst::StateChangeError
            })?;
        }
        if transition == gst::StateChange::PausedToReady
            && let Some((_, queue, threaded)) = self.running()
        {
            // Flushing until the pads are down, so a chain call still running cannot block.
            queue.set_flushing(true);
            if threaded {
                let _ = self.srcpad.stop_task();
            }
        }
        let result = self.parent_change_state(transition);
        match transition {
            gst::StateChange::PausedToReady => {
                if let Some((session, queue, _)) = self.running() {
                    session.reset();
                    queue.set_flushing(false);
                }
                *lock(&self.stream) = StreamState::default();
                lock(&self.held).clear();
            }
            gst::StateChange::ReadyToPaused => {
                *lock(&self.last_flow) = Ok(gst::FlowSuccess::Ok);
                if let Some((_, _, true)) = self.running() {
                    self.start_task();
                }
            }
            gst::StateChange::ReadyToNull => self.stop(),
            _ => {}
        }
        result
    }
}
