//! `remotemediapipeline` with gst-check's Harness and real pipelines.

use gst::prelude::*;
use gst_check::Harness;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstremotemedia::plugin_register_static().expect("register the plugin");
    });
}

fn manifest_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/launch")
}

fn audio_caps(rate: i32, channels: i32) -> gst::Caps {
    gst::Caps::builder("audio/x-raw")
        .field("format", "F32LE")
        .field("layout", "interleaved")
        .field("rate", rate)
        .field("channels", channels)
        .build()
}

fn audio_buffer(samples: &[f32], pts_ms: u64) -> gst::Buffer {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let mut b = gst::Buffer::from_mut_slice(bytes);
    b.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(pts_ms));
    b
}

fn samples(buffer: &gst::Buffer) -> Vec<f32> {
    let map = buffer.map_readable().unwrap();
    map.chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// An element with the manifest and a bus of its own, for error messages.
fn element(manifest_json: &str) -> (gst::Element, gst::Bus) {
    init();
    let e = gst::ElementFactory::make("remotemediapipeline")
        .property("manifest-json", manifest_json)
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    (e, bus)
}

fn harness(manifest_json: &str) -> (Harness, gst::Bus) {
    let (e, bus) = element(manifest_json);
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.play();
    (h, bus)
}

fn error_text(bus: &gst::Bus) -> String {
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let details = err.details().map(|d| d.to_string()).unwrap_or_default();
    format!(
        "{} | {} | {details}",
        err.error(),
        err.debug().unwrap_or_default()
    )
}

const PASS: &str = r#"{"version":"v1","nodes":[{"id":"pass","node_type":"PassThrough"}]}"#;
const CHUNK: &str = r#"{"version":"v1","nodes":[{"id":"chunk","node_type":"AudioChunkerNode","params":{"chunk_size":100}}]}"#;

#[test]
fn passthrough_output_shares_memory_with_input() {
    let (mut h, _bus) = harness(PASS);
    h.set_src_caps(audio_caps(48000, 1));
    let input = audio_buffer(&[0.25; 480], 10);
    let in_ptr = input.map_readable().unwrap().as_ptr();
    h.push(input).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(out.map_readable().unwrap().as_ptr(), in_ptr, "no copy");
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(10)));
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(caps, audio_caps(48000, 1));
}

#[test]
fn caps_follow_the_graph() {
    let (mut h, _bus) = harness(
        r#"{"version":"v1","nodes":[{"id":"r","node_type":"FastResampleNode","params":{"target_rate":16000,"channels":1}}]}"#,
    );
    h.set_src_caps(audio_caps(48000, 2));
    h.push(audio_buffer(&[0.1; 2 * 4800], 0)).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(
        h.sinkpad().unwrap().current_caps().unwrap(),
        audio_caps(16000, 1)
    );
    assert_eq!(out.pts(), Some(gst::ClockTime::ZERO));
}

#[test]
fn caps_the_graph_cannot_take_are_refused_with_a_reason() {
    let (mut h, bus) =
        harness(r#"{"version":"v1","nodes":[{"id":"vad","node_type":"SileroVADNode"}]}"#);
    h.set_src_caps(audio_caps(44100, 2));
    assert_eq!(
        h.push(audio_buffer(&[0.0; 882], 0)),
        Err(gst::FlowError::NotNegotiated)
    );
    let text = error_text(&bus);
    assert!(
        text.contains("node \"vad\": cannot take audio 44100 Hz, 2 channel(s)"),
        "{text}"
    );
    assert!(
        text.contains("FastResampleNode"),
        "the error says how to fix it: {text}"
    );
}

#[test]
fn eos_drains_the_graph_first() {
    let (mut h, _bus) = harness(CHUNK);
    h.set_src_caps(audio_caps(1000, 1));
    let input: Vec<f32> = (0..150).map(|i| i as f32).collect();
    h.push(audio_buffer(&input, 0)).unwrap();
    assert_eq!(samples(&h.pull().unwrap()), input[..100]);
    assert!(h.try_pull().is_none(), "50 samples are held");
    assert!(h.push_event(gst::event::Eos::new()));
    let tail = h.pull().unwrap();
    assert_eq!(samples(&tail), input[100..]);
    assert_eq!(tail.pts(), Some(gst::ClockTime::from_mseconds(100)));
    // EOS comes after the drained tail.
    loop {
        let ev = h.pull_event().unwrap();
        if ev.type_() == gst::EventType::Eos {
            break;
        }
    }
}

#[test]
fn flush_resets_the_graph() {
    let (mut h, _bus) = harness(CHUNK);
    h.set_src_caps(audio_caps(1000, 1));
    h.push(audio_buffer(&[1.0; 60], 0)).unwrap();
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    let segment = gst::FormattedSegment::<gst::ClockTime>::new();
    assert!(h.push_event(gst::event::Segment::new(&segment)));
    h.push(audio_buffer(&[2.0; 100], 0)).unwrap();
    assert_eq!(
        samples(&h.pull().unwrap()),
        vec![2.0; 100],
        "the 60 held samples are gone"
    );
}

#[test]
fn latency_query_adds_the_graph_latency() {
    let (mut h, _bus) = harness(CHUNK);
    h.set_upstream_latency(gst::ClockTime::from_mseconds(5));
    h.set_src_caps(audio_caps(1000, 1));
    h.push(audio_buffer(&[0.0; 10], 0)).unwrap();
    // 100 samples at 1 kHz: the chunker may hold 100 ms.
    assert_eq!(h.query_latency(), Some(gst::ClockTime::from_mseconds(105)));
}

#[test]
fn invalid_manifest_fails_null_to_ready_with_the_full_report() {
    let (e, bus) = element(
        r#"{"version":"v1","nodes":[{"id":"vad","node_type":"SileroVADNode","params":{"threshold":1.7,"min_speech":3}}]}"#,
    );
    assert!(e.set_state(gst::State::Ready).is_err());
    let text = error_text(&bus);
    assert!(
        text.contains(
            r#"nodes[0] "vad" (SileroVADNode): param "threshold" must be within 0..1, got 1.7"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"param "min_speech" unknown param (did you mean "min_speech_duration_ms""#),
        "{text}"
    );
    let _ = e.set_state(gst::State::Null);
}

#[test]
fn missing_manifest_file_is_named() {
    init();
    let e = gst::ElementFactory::make("remotemediapipeline")
        .property("manifest", "/nonexistent/dir/vad.json")
        .build()
        .unwrap();
    let bus = gst::Bus::new();
    e.set_bus(Some(&bus));
    assert!(e.set_state(gst::State::Ready).is_err());
    let text = error_text(&bus);
    assert!(text.contains("/nonexistent/dir/vad.json"), "{text}");
    // Programs read the code from the details, not from the text.
    assert!(text.contains("code=(string)CONFIG_ERROR"), "{text}");
    let _ = e.set_state(gst::State::Null);
}

#[test]
fn a_failing_node_posts_an_error_naming_it() {
    let manifest = std::fs::read_to_string(manifest_dir().join("vad.json")).unwrap();
    let (mut h, bus) = harness(&manifest);
    h.set_src_caps(audio_caps(16000, 1));
    let mut bad = vec![0.0f32; 1600];
    bad[7] = f32::NAN;
    let _ = h.push(audio_buffer(&bad, 0));
    let text = error_text(&bus);
    assert!(text.contains("Node \"vad\" failed"), "{text}");
    assert!(text.contains("not a finite number"), "{text}");
    assert!(
        text.contains("remotemedia-error, code=(string)PIPELINE_ERROR")
            && text.contains("node-id=(string)vad"),
        "{text}"
    );
}

#[test]
fn vad_results_reach_the_bus_and_the_text_pad() {
    init();
    let dir = manifest_dir();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! \
         remotemediapipeline name=rm manifest={} ! queue ! fakesink \
         rm.text ! queue ! fakesink name=text async=false signal-handoffs=true",
        dir.join("speech.wav").display(),
        dir.join("vad.json").display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let bus = pipeline.bus().unwrap();
    let text_buffers = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&text_buffers);
    pipeline
        .by_name("text")
        .unwrap()
        .connect("handoff", false, move |args| {
            let pad = args[2].get::<gst::Pad>().unwrap();
            let caps = pad.current_caps().unwrap();
            assert_eq!(caps.structure(0).unwrap().name(), "application/x-json");
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            None
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut events = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "remotemedia") =>
            {
                let s = e.structure().unwrap();
                assert_eq!(s.get::<&str>("node-id").unwrap(), "vad");
                assert_eq!(s.get::<&str>("kind").unwrap(), "json");
                let json: serde_json::Value =
                    serde_json::from_str(s.get::<&str>("json").unwrap()).unwrap();
                if json["is_speech_start"] == true || json["is_speech_end"] == true {
                    let pts = s.get::<gst::ClockTime>("pts").unwrap();
                    events.push((json, pts));
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    assert!(
        text_buffers.load(std::sync::atomic::Ordering::SeqCst) > 100,
        "JSON on the text pad"
    );
    pipeline.set_state(gst::State::Null).unwrap();
    // Two sentences: start, end, start, end, on the input's timeline.
    let kinds: Vec<bool> = events
        .iter()
        .map(|(j, _)| j["is_speech_start"] == true)
        .collect();
    assert_eq!(kinds, vec![true, false, true, false], "{events:?}");
    for (json, pts) in &events {
        let ms = json["timestamp_ms"].as_f64().unwrap();
        assert!(
            (pts.mseconds() as f64 - ms).abs() <= 1.0,
            "pts matches timestamp_ms"
        );
    }
}

#[test]
fn caps_of_another_sample_format_are_refused() {
    let (mut h, _bus) = harness(PASS);
    let s16 = gst::Caps::builder("audio/x-raw")
        .field("format", "S16LE")
        .field("layout", "interleaved")
        .field("rate", 16000)
        .field("channels", 1)
        .build();
    let sink = h.element().unwrap().static_pad("sink").unwrap();
    assert!(
        !sink.query_accept_caps(&s16),
        "the template takes F32LE only"
    );
    h.set_src_caps(s16);
    assert_eq!(
        h.push(gst::Buffer::with_size(320).unwrap()),
        Err(gst::FlowError::NotNegotiated)
    );
}

#[test]
fn text_that_is_not_utf8_is_an_error_not_a_crash() {
    let (mut h, bus) = harness(PASS);
    h.set_src_caps(
        gst::Caps::builder("text/x-raw")
            .field("format", "utf8")
            .build(),
    );
    assert_eq!(
        h.push(gst::Buffer::from_slice([0xff, 0xfe, 0x00])),
        Err(gst::FlowError::Error)
    );
    assert!(error_text(&bus).contains("not UTF-8"));
    // The element still works afterwards.
    h.push(gst::Buffer::from_slice(*b"hello")).unwrap();
}

#[test]
fn ragged_audio_buffers_do_not_crash() {
    let (mut h, _bus) = harness(CHUNK);
    h.set_src_caps(audio_caps(1000, 1));
    // 10 bytes: two and a half samples.
    h.push(gst::Buffer::from_slice([0u8; 10])).unwrap();
    h.push(audio_buffer(&[1.0; 98], 2)).unwrap();
    assert_eq!(samples(&h.pull().unwrap()).len(), 100);
}

#[test]
fn video_passes_through_with_its_caps_and_memory() {
    let (mut h, _bus) = harness(PASS);
    let caps = gst::Caps::builder("video/x-raw")
        .field("format", "I420")
        .field("width", 4)
        .field("height", 2)
        .field("framerate", gst::Fraction::new(30, 1))
        .build();
    h.set_src_caps(caps.clone());
    let mut frame = gst::Buffer::from_mut_slice(vec![7u8; 12]);
    frame
        .get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(33));
    let in_ptr = frame.map_readable().unwrap().as_ptr();
    h.push(frame).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(out.map_readable().unwrap().as_slice(), &[7u8; 12]);
    assert_eq!(out.map_readable().unwrap().as_ptr(), in_ptr, "no copy");
    assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(33)));
    assert_eq!(h.sinkpad().unwrap().current_caps().unwrap(), caps);
}

#[test]
fn a_text_graph_delivers_sentences_on_src() {
    let (mut h, _bus) =
        harness(r#"{"version":"v1","nodes":[{"id":"sentences","node_type":"TextCollectorNode"}]}"#);
    let text_caps = gst::Caps::builder("text/x-raw")
        .field("format", "utf8")
        .build();
    h.set_src_caps(text_caps.clone());
    for (i, chunk) in ["Good morn", "ing. How are", " you? Fine"]
        .iter()
        .enumerate()
    {
        let mut b = gst::Buffer::from_slice(chunk.as_bytes().to_vec());
        b.get_mut()
            .unwrap()
            .set_pts(gst::ClockTime::from_mseconds(i as u64 * 100));
        h.push(b).unwrap();
    }
    assert!(h.push_event(gst::event::Eos::new()));
    let mut sentences = Vec::new();
    while let Some(b) = h.try_pull() {
        sentences.push(String::from_utf8(b.map_readable().unwrap().to_vec()).unwrap());
    }
    assert_eq!(sentences, vec!["Good morning.", "How are you?", "Fine"]);
    assert_eq!(h.sinkpad().unwrap().current_caps().unwrap(), text_caps);
}

/// A VAD pipeline (node on its own thread, src pad task) survives flushing seeks, state
/// cycles and teardown while data flows.
#[test]
fn threaded_graph_survives_seeks_state_cycles_and_teardown() {
    init();
    let dir = manifest_dir();
    let launch = format!(
        "filesrc location={} ! wavparse ! audioconvert ! audioresample ! \
         remotemediapipeline name=rm manifest={} ! fakesink sync=true",
        dir.join("speech.wav").display(),
        dir.join("vad.json").display()
    );
    let pipeline = gst::parse::launch(&launch)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let _ = pipeline.state(gst::ClockTime::from_seconds(10));
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Seek forward into the second sentence: events before the seek point must not repeat.
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_seconds(9),
        )
        .unwrap();
    let mut starts_after_seek = Vec::new();
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(30)) {
        match msg.view() {
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "remotemedia") =>
            {
                let json: serde_json::Value =
                    serde_json::from_str(e.structure().unwrap().get::<&str>("json").unwrap())
                        .unwrap();
                if json["is_speech_start"] == true {
                    starts_after_seek.push(json["timestamp_ms"].as_f64().unwrap());
                }
            }
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} {:?}", e.error(), e.debug()),
            _ => {}
        }
    }
    // Speech goes on at 9 s, so the reset VAD reports it starting there.
    assert!(
        !starts_after_seek.is_empty() && starts_after_seek.iter().all(|ms| *ms >= 8900.0),
        "a flush resets the VAD and the timeline follows the seek: {starts_after_seek:?}"
    );
    let vad_processed = |p: &gst::Pipeline| {
        let m: serde_json::Value =
            serde_json::from_str(&p.by_name("rm").unwrap().property::<String>("metrics")).unwrap();
        m[1]["processed"].as_u64().unwrap()
    };
    let before = vad_processed(&pipeline);
    // Cycle PAUSED <-> READY and tear down while buffers flow.
    for _ in 0..5 {
        pipeline.set_state(gst::State::Ready).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    if let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
        panic!("error after state cycles: {msg:?}");
    }
    assert!(
        vad_processed(&pipeline) > before,
        "data flows again after the cycles"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}
