//! The ingestion API: media from a URI as a stream of `RuntimeData`. Plugins serve URI
//! schemes; the registry picks one by the URI's scheme (a path is `file`, `-` is `stdin`).
//! The GStreamer-backed plugin lives in the GStreamer plugin crate and registers itself here;
//! applications can register their own plugins, which take precedence.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

use crate::{ErrorCode, RuntimeData};

/// What a source should deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct IngestConfig {
    /// `first-audio-video`, `all`, or a list such as `audio:0,video:1`.
    pub track_selection: String,
    /// Resample audio to this rate (Hz); `None` keeps the source's.
    pub sample_rate: Option<u32>,
    /// Mix audio to this many channels; `None` keeps the source's.
    pub channels: Option<u16>,
    /// Reconnect attempts of a live source before giving up (0: forever).
    pub max_attempts: u32,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            track_selection: "first-audio-video".into(),
            sample_rate: None,
            channels: None,
            max_attempts: 10,
        }
    }
}

/// What a source yields.
#[derive(Debug)]
pub enum IngestEvent {
    /// Media of one track (`audio:0`, `video:0`, ...).
    Data { track: String, data: RuntimeData },
    /// A live source dropped and is being reconnected.
    Reconnecting { attempt: u32, reason: String },
    /// The source ended (files and stdin; live sources end only by failing).
    End,
    /// The source failed for good; nothing follows.
    Failed(IngestError),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct IngestError {
    /// CONFIG_ERROR, RECONNECT_FAILED, PIPELINE_ERROR or INTERNAL_ERROR.
    pub code: ErrorCode,
    pub message: String,
}

impl IngestError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A running source. Dropping it stops it.
pub trait IngestSource: Send {
    /// The next event, waiting up to `timeout`; `None` when nothing came in that time.
    fn recv(&mut self, timeout: Duration) -> Option<IngestEvent>;
}

/// Makes sources for some URI schemes.
pub trait IngestPlugin: Send + Sync {
    fn name(&self) -> &str;
    /// Lower-case schemes, e.g. `["rtsp", "file"]`; `file` also takes paths, `stdin` takes `-`.
    fn schemes(&self) -> Vec<String>;
    fn create(
        &self,
        uri: &str,
        config: &IngestConfig,
    ) -> Result<Box<dyn IngestSource>, IngestError>;
}

/// The scheme a URI is served under: its own, `file` for a path, `stdin` for `-`.
pub fn scheme_of(uri: &str) -> String {
    match uri.trim() {
        "-" => "stdin".into(),
        u => match u.split_once("://") {
            Some((scheme, _)) if !scheme.is_empty() => scheme.to_ascii_lowercase(),
            _ => "file".into(),
        },
    }
}

#[derive(Default)]
pub struct IngestRegistry {
    plugins: RwLock<Vec<Arc<dyn IngestPlugin>>>,
}

impl IngestRegistry {
    /// Adds a plugin; for the schemes it shares with earlier ones, it is preferred.
    pub fn register(&self, plugin: Arc<dyn IngestPlugin>) {
        let mut plugins = self.plugins.write().unwrap_or_else(|e| e.into_inner());
        plugins.retain(|p| p.name() != plugin.name());
        plugins.insert(0, plugin);
    }

    /// Every scheme some plugin serves, sorted.
    pub fn schemes(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .plugins
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|p| p.schemes())
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Starts a source for `uri` with the plugin that serves its scheme.
    pub fn create_from_uri(
        &self,
        uri: &str,
        config: &IngestConfig,
    ) -> Result<Box<dyn IngestSource>, IngestError> {
        let scheme = scheme_of(uri);
        let plugin = {
            let plugins = self.plugins.read().unwrap_or_else(|e| e.into_inner());
            plugins
                .iter()
                .find(|p| p.schemes().contains(&scheme))
                .cloned()
        };
        match plugin {
            Some(p) => p.create(uri, config),
            None => Err(IngestError::new(
                ErrorCode::Config,
                format!(
                    "no ingest plugin serves '{scheme}'; registered schemes: {}",
                    match self.schemes() {
                        s if s.is_empty() => "none (register the GStreamer plugin first)".into(),
                        s => s.join(", "),
                    }
                ),
            )),
        }
    }
}

/// The process-wide registry.
pub fn global_ingest_registry() -> &'static IngestRegistry {
    static REGISTRY: LazyLock<IngestRegistry> = LazyLock::new(IngestRegistry::default);
    &REGISTRY
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Vec<String>);

    struct Once(Option<IngestEvent>);

    impl IngestSource for Once {
        fn recv(&mut self, _: Duration) -> Option<IngestEvent> {
            self.0.take()
        }
    }

    impl IngestPlugin for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn schemes(&self) -> Vec<String> {
            self.1.clone()
        }
        fn create(&self, _: &str, _: &IngestConfig) -> Result<Box<dyn IngestSource>, IngestError> {
            Ok(Box::new(Once(Some(IngestEvent::Data {
                track: self.0.into(),
                data: RuntimeData::Text(self.0.into()),
            }))))
        }
    }

    fn first_track(r: &IngestRegistry, uri: &str) -> String {
        match r
            .create_from_uri(uri, &IngestConfig::default())
            .unwrap()
            .recv(Duration::ZERO)
        {
            Some(IngestEvent::Data { track, .. }) => track,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plugins_by_scheme_latest_first() {
        assert_eq!(scheme_of("RTSP://h/x"), "rtsp");
        assert_eq!(scheme_of("/tmp/a.wav"), "file");
        assert_eq!(scheme_of("-"), "stdin");
        let r = IngestRegistry::default();
        let err = r
            .create_from_uri("rtsp://h/x", &IngestConfig::default())
            .err()
            .unwrap();
        assert!(
            err.message.contains("register the GStreamer plugin"),
            "{err}"
        );
        r.register(Arc::new(Fixed("base", vec!["rtsp".into(), "file".into()])));
        r.register(Arc::new(Fixed(
            "custom",
            vec!["rtsp".into(), "test".into()],
        )));
        assert_eq!(first_track(&r, "rtsp://h/x"), "custom");
        assert_eq!(first_track(&r, "a.wav"), "base");
        assert_eq!(r.schemes(), ["file", "rtsp", "test"]);
        let err = r
            .create_from_uri("http://h/", &IngestConfig::default())
            .err()
            .unwrap();
        assert_eq!(err.code, ErrorCode::Config);
        assert!(err.message.contains("'http'") && err.message.contains("file, rtsp, test"));
    }
}
