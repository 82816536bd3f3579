//! The runtime's ingestion API from Rust: the GStreamer-backed plugin by scheme, a custom
//! plugin taking precedence for its scheme, and errors that name the problem.

use std::sync::Arc;
use std::time::Duration;

use remotemedia_runtime::{
    IngestConfig, IngestError, IngestEvent, IngestPlugin, IngestSource, RuntimeData,
    global_ingest_registry,
};

const SPEECH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/launch/speech.wav");

fn drain(source: &mut dyn IngestSource) -> (Vec<RuntimeData>, Option<IngestEvent>) {
    let mut data = Vec::new();
    loop {
        match source.recv(Duration::from_secs(20)) {
            Some(IngestEvent::Data { track, data: d }) => {
                assert_eq!(track, "audio:0");
                data.push(d);
            }
            Some(IngestEvent::Reconnecting { .. }) => {}
            other => return (data, other),
        }
    }
}

#[test]
fn a_file_comes_as_audio_frames_then_ends() {
    gstremotemedia::register_runtime_plugin().unwrap();
    let config = IngestConfig {
        sample_rate: Some(16000),
        channels: Some(1),
        ..Default::default()
    };
    let mut source = global_ingest_registry()
        .create_from_uri(SPEECH, &config)
        .unwrap();
    let (data, last) = drain(source.as_mut());
    assert!(matches!(last, Some(IngestEvent::End)), "{last:?}");
    let mut samples = 0;
    for d in &data {
        let RuntimeData::Audio(a) = d else {
            panic!("not audio: {}", d.kind())
        };
        assert_eq!((a.sample_rate, a.channels), (16000, 1));
        assert_eq!(a.stream_id.as_deref(), Some("audio:0"));
        samples += a.samples.len();
    }
    // The sample is 11.397 s long.
    let seconds = samples as f64 / 16000.0;
    assert!((seconds - 11.397).abs() < 0.05, "{seconds} s");
}

#[test]
fn bad_uris_are_refused_with_the_reason() {
    gstremotemedia::register_runtime_plugin().unwrap();
    let registry = global_ingest_registry();
    let err = registry
        .create_from_uri("http://127.0.0.1/x", &IngestConfig::default())
        .err()
        .unwrap();
    assert_eq!(err.code, remotemedia_runtime::ErrorCode::Config);
    assert!(
        err.message.contains("'http'") && err.message.contains("rtsp"),
        "{err}"
    );
    let err = registry
        .create_from_uri("/no/such.wav", &IngestConfig::default())
        .err()
        .unwrap();
    assert!(err.message.contains("no such file"), "{err}");
    let config = IngestConfig {
        track_selection: "video:0".into(),
        ..Default::default()
    };
    let mut source = registry.create_from_uri(SPEECH, &config).unwrap();
    let (_, last) = drain(source.as_mut());
    match last {
        Some(IngestEvent::Failed(e)) => assert!(e.message.contains("no video:0 stream"), "{e}"),
        other => panic!("{other:?}"),
    }
}

struct Custom;

struct Ticks(u32);

impl IngestSource for Ticks {
    fn recv(&mut self, _: Duration) -> Option<IngestEvent> {
        self.0 += 1;
        Some(if self.0 > 3 {
            IngestEvent::End
        } else {
            IngestEvent::Data {
                track: "audio:0".into(),
                data: RuntimeData::Text(format!("tick {}", self.0)),
            }
        })
    }
}

impl IngestPlugin for Custom {
    fn name(&self) -> &str {
        "ticks"
    }
    fn schemes(&self) -> Vec<String> {
        vec!["ticks".into()]
    }
    fn create(&self, _: &str, _: &IngestConfig) -> Result<Box<dyn IngestSource>, IngestError> {
        Ok(Box::new(Ticks(0)))
    }
}

#[test]
fn custom_plugins_serve_their_scheme() {
    gstremotemedia::register_runtime_plugin().unwrap();
    global_ingest_registry().register(Arc::new(Custom));
    let mut source = global_ingest_registry()
        .create_from_uri("ticks://now", &IngestConfig::default())
        .unwrap();
    let (data, last) = drain(source.as_mut());
    assert_eq!(data.len(), 3);
    assert!(matches!(last, Some(IngestEvent::End)));
    assert!(
        global_ingest_registry()
            .schemes()
            .contains(&"rtsp".to_string())
    );
}
