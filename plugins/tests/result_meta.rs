//! `RemoteMediaResultMeta`: the results of `remotemediapipeline` read from the buffers they
//! ride on, as a Rust application reads them (by name, with gstreamer-rs' `CustomMeta`).

use gst::prelude::*;
use gst_check::Harness;

const META: &str = "RemoteMediaResultMeta";
const LEVEL: &str = r#"{"version":"v1","nodes":[{"id":"level","node_type":"AudioLevelNode"}]}"#;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gstremotemedia::plugin_register_static().expect("register the plugin");
    });
}

/// The results riding on a buffer, in order.
fn results(buffer: &gst::BufferRef) -> Vec<gst::Structure> {
    buffer
        .iter_meta::<gst::Meta>()
        .filter_map(|m| {
            m.try_as_custom_meta()
                .filter(|c| c.has_name(META))
                .map(|c| c.structure().to_owned())
        })
        .collect()
}

fn payload(result: &gst::StructureRef) -> serde_json::Value {
    serde_json::from_str(result.get::<&str>("json").unwrap()).unwrap()
}

/// 20 ms of a 440 Hz sine at half scale, 48 kHz mono, starting at `index` * 20 ms.
fn sine_buffer(index: u64) -> gst::Buffer {
    let bytes: Vec<u8> = (0..960u64)
        .map(|i| {
            let t = (index * 960 + i) as f64 / 48000.0;
            (0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as f32
        })
        .flat_map(f32::to_le_bytes)
        .collect();
    let mut b = gst::Buffer::from_mut_slice(bytes);
    let b_mut = b.get_mut().unwrap();
    b_mut.set_pts(gst::ClockTime::from_mseconds(index * 20));
    b_mut.set_duration(gst::ClockTime::from_mseconds(20));
    b
}

fn data_ptr(buffer: &gst::BufferRef) -> usize {
    buffer.map_readable().unwrap().as_ptr() as usize
}

fn harness(manifest: &str) -> Harness {
    init();
    let e = gst::ElementFactory::make("remotemediapipeline")
        .property("manifest-json", manifest)
        .build()
        .unwrap();
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.set_src_caps(
        gst::Caps::builder("audio/x-raw")
            .field("format", "F32LE")
            .field("layout", "interleaved")
            .field("rate", 48000)
            .field("channels", 1)
            .build(),
    );
    h.play();
    h
}

#[test]
fn a_result_rides_on_the_buffer_that_completed_it_without_a_copy() {
    let mut h = harness(LEVEL);
    let mut out = Vec::new();
    for i in 0..10 {
        let input = sine_buffer(i);
        let ptr = data_ptr(&input);
        h.push(input).unwrap();
        let output = h.pull().unwrap();
        assert_eq!(
            data_ptr(&output),
            ptr,
            "buffer {i}: the samples were copied"
        );
        out.push(output);
    }
    let carrying: Vec<usize> = (0..10).filter(|&i| !results(&out[i]).is_empty()).collect();
    // A level per 100 ms: the window 0-100 ms is complete with the buffer at 80 ms.
    assert_eq!(carrying, [4, 9]);
    for (i, window_ms) in [(4, 0.0), (9, 100.0)] {
        let found = results(&out[i]);
        let [result] = found.as_slice() else {
            panic!("one result on buffer {i}: {found:?}");
        };
        assert_eq!(result.get::<&str>("node-id").unwrap(), "level");
        assert_eq!(result.get::<&str>("kind").unwrap(), "json");
        assert!(result.get::<u64>("result-id").is_ok(), "{result}");
        let pts = result.get::<Option<gst::ClockTime>>("pts").unwrap();
        assert_eq!(pts, Some(gst::ClockTime::from_mseconds(window_ms as u64)));
        let level = payload(result);
        assert_eq!(level["type"], "audio_level");
        assert_eq!(level["timestamp_ms"], window_ms);
        assert!(
            (level["rms_db"].as_f64().unwrap() + 9.03).abs() < 0.05,
            "{level}"
        );
    }
}

#[test]
fn a_copied_buffer_keeps_its_results_and_a_cut_one_keeps_them_on_its_first_part() {
    let mut h = harness(LEVEL);
    let carrier = (0..5)
        .map(|i| {
            h.push(sine_buffer(i)).unwrap();
            h.pull().unwrap()
        })
        .last()
        .unwrap();
    assert_eq!(results(&carrier).len(), 1);
    assert_eq!(results(&carrier.copy()), results(&carrier));
    let all = gst::BufferCopyFlags::all() - gst::BufferCopyFlags::DEEP;
    let head = carrier.copy_region(all, 0..1920).unwrap();
    let tail = carrier.copy_region(all, 1920..).unwrap();
    assert_eq!(results(&head), results(&carrier));
    assert!(results(&tail).is_empty(), "{:?}", results(&tail));
}

#[test]
fn several_results_of_one_buffer_are_several_metas() {
    // Levels every 100 and every 50 ms side by side: at 80 ms both windows are complete.
    let manifest = r#"{"version":"v1","nodes":[
        {"id":"slow","node_type":"AudioLevelNode"},
        {"id":"fast","node_type":"AudioLevelNode","params":{"interval_ms":50},"is_output_node":true}],
        "connections":[{"from":"fast","to":"slow"}]}"#;
    let mut h = harness(manifest);
    let carrier = (0..5)
        .map(|i| {
            h.push(sine_buffer(i)).unwrap();
            h.pull().unwrap()
        })
        .last()
        .unwrap();
    let found: Vec<(String, f64)> = results(&carrier)
        .iter()
        .map(|r| {
            (
                r.get::<String>("node-id").unwrap(),
                payload(r)["timestamp_ms"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(found.contains(&("fast".into(), 50.0)), "{found:?}");
    assert!(found.contains(&("slow".into(), 0.0)), "{found:?}");
}

/// The results on the buffers of the `audio` and `text` appsinks of a real pipeline that
/// converts and resamples the media after a tee and a queue, and the `remotemedia` bus
/// messages.
fn run_pipeline(result_meta: bool) -> (Vec<gst::Structure>, Vec<gst::Structure>, usize) {
    init();
    let pipeline = gst::parse::launch(
        "audiotestsrc num-buffers=50 samplesperbuffer=960 freq=440 volume=0.5 ! \
         audio/x-raw,format=F32LE,rate=48000,channels=1 ! remotemediapipeline name=rm ! \
         tee name=t ! queue ! audioconvert ! audio/x-raw,format=S16LE ! audioresample ! \
         audio/x-raw,rate=16000 ! appsink name=audio sync=false \
         t. ! queue ! fakesink sync=false \
         rm.text ! queue ! appsink name=text sync=false async=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let rm = pipeline.by_name("rm").unwrap();
    rm.set_property("manifest-json", LEVEL);
    rm.set_property("result-meta", result_meta);
    let sink = |name| {
        pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap()
    };
    let (audio, text) = (sink("audio"), sink("text"));
    pipeline.set_state(gst::State::Playing).unwrap();
    let drain = |sink: &gst_app::AppSink| {
        let mut found = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            found.extend(results(sample.buffer().unwrap()));
        }
        found
    };
    // Both at once: an appsink holds its EOS until the application took what it queued, and
    // meanwhile blocks the pipeline's move to PLAYING, which the other sink needs to render.
    let (on_audio, on_text) = std::thread::scope(|s| {
        let text_thread = s.spawn(|| drain(&text));
        let on_audio = drain(&audio);
        (on_audio, text_thread.join().unwrap())
    });
    let bus = pipeline.bus().unwrap();
    let mut messages = 0;
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => panic!("{e:?}"),
            gst::MessageView::Element(e)
                if e.structure().is_some_and(|s| s.name() == "remotemedia") =>
            {
                messages += 1;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    (on_audio, on_text, messages)
}

#[test]
fn results_survive_tee_queue_audioconvert_and_audioresample() {
    let (on_audio, on_text, messages) = run_pipeline(true);
    assert_eq!(messages, 10);
    for found in [&on_audio, &on_text] {
        let windows: Vec<f64> = found
            .iter()
            .map(|r| {
                assert_eq!(r.get::<&str>("node-id").unwrap(), "level");
                assert_eq!(r.get::<&str>("kind").unwrap(), "json");
                let level = payload(r);
                assert!(
                    (level["rms_db"].as_f64().unwrap() + 9.03).abs() < 0.05,
                    "{level}"
                );
                level["timestamp_ms"].as_f64().unwrap()
            })
            .collect();
        assert_eq!(
            windows,
            (0..10).map(|i| i as f64 * 100.0).collect::<Vec<_>>()
        );
    }
    let ids = |found: &[gst::Structure]| -> Vec<u64> {
        found.iter().map(|r| r.get("result-id").unwrap()).collect()
    };
    assert_eq!(
        ids(&on_audio),
        ids(&on_text),
        "one id per result, on both pads"
    );
}

#[test]
fn result_meta_false_puts_no_meta() {
    let (on_audio, on_text, messages) = run_pipeline(false);
    assert_eq!(messages, 10, "the results still reach the bus");
    assert!(on_audio.is_empty() && on_text.is_empty());
}
