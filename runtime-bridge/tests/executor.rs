//! The graph executor with test nodes: ordering, fan-out and fan-in, backpressure, drain,
//! flush, errors and the session APIs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use remotemedia_runtime::data::Packet;
use remotemedia_runtime::manifest::parse;
use remotemedia_runtime::node::{
    Emitter, Node, NodeError, NodeSpec, Threading, no_latency, same_format,
};
use remotemedia_runtime::params::{ParamDefault, ParamSpec, ParamType};
use remotemedia_runtime::{
    ErrorCode, Graph, Output, OutputSink, Registry, RuntimeData, RuntimeError, Session,
    StreamSession, execute_unary,
};

static SUFFIX: &[ParamSpec] = &[ParamSpec::new(
    "suffix",
    ParamType::Str,
    ParamDefault::Str(""),
    "appended",
)];

/// Appends its suffix to text; "boom" is bad input, "nokey" a config error, "panic" panics.
struct Tag(String);
impl Node for Tag {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        match input.data {
            RuntimeData::Text(t) if t == "boom" => {
                Err(NodeError::BadInput("cannot take boom".into()))
            }
            RuntimeData::Text(t) if t == "nokey" => Err(NodeError::Config("no API key".into())),
            RuntimeData::Text(t) if t == "panic" => panic!("node bug"),
            RuntimeData::Text(t) => {
                out.emit(RuntimeData::Text(t + &self.0));
                Ok(())
            }
            other => {
                out.emit(other);
                Ok(())
            }
        }
    }
}

fn tag(p: &remotemedia_runtime::params::Params) -> Result<Box<dyn Node>, NodeError> {
    Ok(Box::new(Tag(p
        .str("suffix")
        .unwrap_or_default()
        .to_string())))
}

static TAG: NodeSpec = NodeSpec {
    node_type: "Tag",
    aliases: &[],
    doc: "test",
    params: SUFFIX,
    threading: Threading::Inline,
    create: tag,
    format: same_format,
    latency_ns: no_latency,
};

static THREADED_TAG: NodeSpec = NodeSpec {
    node_type: "ThreadedTag",
    threading: Threading::Dedicated,
    ..TAG
};

/// Holds everything until end of stream.
#[derive(Default)]
struct Hold(Vec<Packet>);
impl Node for Hold {
    fn process(&mut self, input: Packet, _: &mut Emitter) -> Result<(), NodeError> {
        self.0.push(input);
        Ok(())
    }
    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        for p in self.0.drain(..) {
            out.emit_at(p.data, p.pts);
        }
        Ok(())
    }
    fn reset(&mut self) {
        self.0.clear();
    }
}

static HOLD: NodeSpec = NodeSpec {
    node_type: "Hold",
    aliases: &[],
    doc: "test",
    params: &[],
    threading: Threading::Inline,
    create: |_| Ok(Box::<Hold>::default()),
    format: same_format,
    latency_ns: no_latency,
};

/// A dedicated node that waits until the gate opens before each input.
static GATE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());
static GATE_PASSED: AtomicUsize = AtomicUsize::new(0);
struct Gate;
impl Node for Gate {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let mut open = GATE.0.lock().unwrap();
        while !*open {
            open = GATE.1.wait(open).unwrap();
        }
        drop(open);
        GATE_PASSED.fetch_add(1, Ordering::SeqCst);
        out.emit_at(input.data, input.pts);
        Ok(())
    }
}

static GATE_SPEC: NodeSpec = NodeSpec {
    node_type: "Gate",
    aliases: &[],
    doc: "test",
    params: &[],
    threading: Threading::Dedicated,
    create: |_| Ok(Box::new(Gate)),
    format: same_format,
    latency_ns: no_latency,
};

/// An adaptive node that says which thread ran it; "slow..." takes 3 ms.
struct Where;
impl Node for Where {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        let RuntimeData::Text(t) = input.data else {
            return Err(NodeError::BadInput("text only".into()));
        };
        if t.starts_with("slow") {
            std::thread::sleep(Duration::from_millis(3));
        }
        let on_own_thread = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("rm-"));
        let place = if on_own_thread { "thread" } else { "sender" };
        out.emit(RuntimeData::Text(format!("{t}@{place}")));
        Ok(())
    }
}

static WHERE: NodeSpec = NodeSpec {
    node_type: "Where",
    aliases: &[],
    doc: "test",
    params: &[],
    threading: Threading::Adaptive,
    create: |_| Ok(Box::new(Where)),
    format: same_format,
    latency_ns: no_latency,
};

fn graph(text: &str) -> Arc<Graph> {
    let mut r = Registry::empty();
    for spec in [&TAG, &THREADED_TAG, &HOLD, &GATE_SPEC, &WHERE] {
        r.register(spec);
    }
    Arc::new(Graph::new(
        parse(text, "test", &r).unwrap_or_else(|e| panic!("{e}")),
    ))
}

fn texts(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Text(t) => format!("{}:{t}", o.node_id),
            other => format!("{}:{other:?}", o.node_id),
        })
        .collect()
}

fn send_all(g: &Arc<Graph>, items: &[&str]) -> Result<Vec<Output>, RuntimeError> {
    execute_unary(
        Arc::clone(g),
        items.iter().map(|s| RuntimeData::Text(s.to_string())),
    )
}

#[test]
fn order_is_kept_through_threads() {
    let g = graph(
        r#"{"version":"v1","nodes":[
          {"id":"a","node_type":"Tag","params":{"suffix":"a"}},
          {"id":"t","node_type":"ThreadedTag","params":{"suffix":"t"}},
          {"id":"b","node_type":"Tag","params":{"suffix":"b"}}],
          "connections":[{"from":"a","to":"t"},{"from":"t","to":"b"}]}"#,
    );
    let items: Vec<String> = (0..200).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    let out = send_all(&g, &refs).unwrap();
    let expected: Vec<String> = (0..200).map(|i| format!("b:{i}atb")).collect();
    assert_eq!(texts(&out), expected);
}

#[test]
fn an_adaptive_node_runs_on_the_sender_while_cheap_and_on_its_thread_when_slow() {
    let g = graph(r#"{"version":"v1","nodes":[{"id":"w","node_type":"Where"}]}"#);
    let s = StreamSession::create(Arc::clone(&g)).unwrap();
    let call = |text: &str| {
        s.send(RuntimeData::Text(text.into())).unwrap();
        match s
            .recv_timeout(Duration::from_secs(5))
            .unwrap()
            .unwrap()
            .data
        {
            RuntimeData::Text(t) => t,
            other => panic!("{other:?}"),
        }
    };
    // Unmeasured at first, so on its thread; then cheap, so on the sender's: three calls in a
    // row there. (Not "the last call": on a loaded machine any one call may look slow and send
    // the node back to its thread for a while, which is the policy working.)
    assert_eq!(call("first"), "first@thread");
    let cheap: Vec<String> = (0..50).map(|i| call(&i.to_string())).collect();
    assert!(
        cheap
            .windows(3)
            .any(|w| w.iter().all(|c| c.ends_with("@sender"))),
        "{cheap:?}"
    );
    // A failure reaches the receiver, in order, wherever the node ran: never the sender.
    s.send(RuntimeData::Binary(vec![1u8].into()))
        .expect("the sender is not told");
    let failed = s.recv_timeout(Duration::from_secs(5)).unwrap().unwrap_err();
    assert_eq!(
        (failed.node_id.as_str(), failed.code),
        ("w", ErrorCode::Pipeline)
    );
    // Steadily slow calls (3 ms, over the 1 ms budget) move it back to its thread.
    let slow: Vec<String> = (0..20).map(|i| call(&format!("slow{i}"))).collect();
    assert_eq!(slow.last().unwrap(), "slow19@thread", "{slow:?}");
}

#[test]
fn an_adaptive_node_keeps_order_when_inputs_come_faster_than_it_runs() {
    let g = graph(
        r#"{"version":"v1","nodes":[
          {"id":"w","node_type":"Where"},
          {"id":"b","node_type":"Tag","params":{"suffix":"b"}}],
          "connections":[{"from":"w","to":"b"}]}"#,
    );
    let items: Vec<String> = (0..500)
        .map(|i| {
            if i % 50 == 7 {
                format!("slow{i}")
            } else {
                i.to_string()
            }
        })
        .collect();
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let s = Session::new(g, sink.clone()).unwrap();
    for (i, item) in items.iter().enumerate() {
        s.send(RuntimeData::Text(item.clone())).unwrap();
        if i % 25 == 24 {
            // A pause now and then lets the queue run empty, so the sender takes over.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    s.drain().unwrap();
    let outputs: Vec<Output> = sink
        .0
        .lock()
        .unwrap()
        .drain(..)
        .map(Result::unwrap)
        .collect();
    let out = texts(&outputs);
    let sent: Vec<String> = out
        .iter()
        .map(|o| {
            o.trim_start_matches("b:")
                .split('@')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(sent, items);
    let places: std::collections::HashSet<&str> =
        out.iter().map(|o| o.split('@').nth(1).unwrap()).collect();
    assert_eq!(places.len(), 2, "both ways were taken: {places:?}");
}

#[test]
fn fan_out_and_fan_in() {
    let g = graph(
        r#"{"version":"v1","nodes":[
          {"id":"src","node_type":"Tag"},
          {"id":"left","node_type":"Tag","params":{"suffix":"L"}},
          {"id":"right","node_type":"ThreadedTag","params":{"suffix":"R"}},
          {"id":"join","node_type":"Tag","params":{"suffix":"!"}}],
          "connections":[{"from":"src","to":"left"},{"from":"src","to":"right"},
                         {"from":"left","to":"join"},{"from":"right","to":"join"}]}"#,
    );
    let out = texts(&send_all(&g, &["x", "y"]).unwrap());
    let mut sorted = out.clone();
    sorted.sort();
    assert_eq!(sorted, vec!["join:xL!", "join:xR!", "join:yL!", "join:yR!"]);
    // The inline branch delivers synchronously, so x's left copy precedes y's.
    let pos = |s: &str| out.iter().position(|o| o == s).unwrap();
    assert!(pos("join:xL!") < pos("join:yL!") && pos("join:xR!") < pos("join:yR!"));
}

#[test]
fn output_nodes_and_sinks_deliver() {
    let g = graph(
        r#"{"version":"v1","nodes":[
          {"id":"mid","node_type":"Tag","params":{"suffix":"1"},"is_output_node":true},
          {"id":"end","node_type":"Tag","params":{"suffix":"2"}}],
          "connections":[{"from":"mid","to":"end"}]}"#,
    );
    assert_eq!(
        texts(&send_all(&g, &["x"]).unwrap()),
        vec!["mid:x1", "end:x12"]
    );
}

#[test]
fn drain_flushes_held_data_in_graph_order() {
    let g = graph(
        r#"{"version":"v1","nodes":[
          {"id":"t","node_type":"ThreadedTag","params":{"suffix":"t"}},
          {"id":"hold","node_type":"Hold"},
          {"id":"after","node_type":"Tag","params":{"suffix":"!"}}],
          "connections":[{"from":"t","to":"hold"},{"from":"hold","to":"after"}]}"#,
    );
    let s = StreamSession::create(Arc::clone(&g)).unwrap();
    for i in 0..5 {
        s.send(RuntimeData::Text(i.to_string())).unwrap();
    }
    assert!(
        s.recv_timeout(Duration::from_millis(100)).is_none(),
        "held until drain"
    );
    let out = s.close().unwrap();
    assert_eq!(
        texts(&out),
        vec![
            "after:0t!",
            "after:1t!",
            "after:2t!",
            "after:3t!",
            "after:4t!"
        ]
    );
}

struct Collect(Mutex<Vec<Result<Output, RuntimeError>>>);
impl OutputSink for Collect {
    fn output(&self, output: Output) {
        self.0.lock().unwrap().push(Ok(output));
    }
    fn error(&self, error: RuntimeError) {
        self.0.lock().unwrap().push(Err(error));
    }
}

#[test]
fn reset_forgets_held_state() {
    let g = graph(r#"{"version":"v1","nodes":[{"id":"hold","node_type":"Hold"}]}"#);
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let s = Session::new(g, sink.clone()).unwrap();
    s.send(RuntimeData::Text("old".into())).unwrap();
    s.reset();
    s.send(RuntimeData::Text("new".into())).unwrap();
    s.drain().unwrap();
    let got = std::mem::take(&mut *sink.0.lock().unwrap());
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], Ok(o) if matches!(&o.data, RuntimeData::Text(t) if t == "new")));
}

#[test]
fn bounded_queue_blocks_the_sender() {
    let g = graph(r#"{"version":"v1","nodes":[{"id":"gate","node_type":"Gate"}]}"#);
    let sink = Arc::new(Collect(Mutex::new(Vec::new())));
    let s = Arc::new(Session::new(g, sink.clone()).unwrap());
    let sent = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (s, sent) = (Arc::clone(&s), Arc::clone(&sent));
        std::thread::spawn(move || {
            for i in 0..100 {
                s.send(RuntimeData::Text(i.to_string())).unwrap();
                sent.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The sender fills the queue (capacity, +1 taken by the node waiting at the gate)...
    let capacity = remotemedia_runtime::executor::QUEUE_CAPACITY;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sent.load(Ordering::SeqCst) < capacity && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        sent.load(Ordering::SeqCst) >= capacity,
        "the queue holds its capacity"
    );
    // ...and, given every chance to run further, stays blocked there.
    std::thread::sleep(Duration::from_millis(200));
    let ahead = sent.load(Ordering::SeqCst);
    assert!(
        ahead <= capacity + 1,
        "sent {ahead} while the node was blocked"
    );
    *GATE.0.lock().unwrap() = true;
    GATE.1.notify_all();
    sender.join().unwrap();
    s.drain().unwrap();
    assert_eq!(GATE_PASSED.load(Ordering::SeqCst), 100);
    assert_eq!(sink.0.lock().unwrap().len(), 100);
}

#[test]
fn errors_name_the_node_and_panics_are_caught() {
    let g = graph(
        r#"{"version":"v1","nodes":[{"id":"first","node_type":"Tag"},{"id":"second","node_type":"Tag"}],
            "connections":[{"from":"first","to":"second"}]}"#,
    );
    let e = send_all(&g, &["ok", "boom"]).unwrap_err();
    assert_eq!(e.node_id, "first");
    assert_eq!(e.to_string(), "node \"first\": cannot take boom");
    assert_eq!(e.code, ErrorCode::Pipeline);
    let e = send_all(&g, &["nokey"]).unwrap_err();
    assert_eq!(
        (e.code, e.message.as_str()),
        (ErrorCode::Config, "no API key")
    );
    let e = send_all(&g, &["panic"]).unwrap_err();
    assert!(e.message.contains("panicked: node bug"), "{e}");
    assert_eq!(e.code, ErrorCode::Internal);

    // A dedicated node's error reaches the sink, and the node goes on with the next input.
    let g = graph(r#"{"version":"v1","nodes":[{"id":"t","node_type":"ThreadedTag"}]}"#);
    let s = StreamSession::create(g).unwrap();
    for item in ["a", "boom", "b"] {
        s.send(RuntimeData::Text(item.into())).unwrap();
    }
    let mut seen = Vec::new();
    while let Some(item) = s.recv_timeout(Duration::from_secs(5)) {
        seen.push(
            item.map(|o| texts(&[o])[0].clone())
                .map_err(|e| (e.code, e.to_string())),
        );
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(
        seen,
        vec![
            Ok("t:a".to_string()),
            Err((
                ErrorCode::Pipeline,
                "node \"t\": cannot take boom".to_string()
            )),
            Ok("t:b".to_string())
        ]
    );
    let m = s.metrics();
    assert_eq!((m[0].processed, m[0].errors), (3, 1));
}

#[test]
fn sending_to_a_node_that_is_not_a_source_is_a_config_error() {
    let g = graph(
        r#"{"version":"v1","nodes":[{"id":"a","node_type":"Tag"},{"id":"b","node_type":"Tag"}],
            "connections":[{"from":"a","to":"b"}]}"#,
    );
    let s = StreamSession::create(g).unwrap();
    let e = s.send_to("b", RuntimeData::Text("x".into())).unwrap_err();
    assert_eq!((e.node_id.as_str(), e.code), ("b", ErrorCode::Config));
    assert!(e.message.contains("(sources: a)"), "{e}");
}
