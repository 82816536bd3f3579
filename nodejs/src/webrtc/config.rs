//! What `WebRtcServer.create` and `connect` take, checked and turned into the element's
//! properties the way the Python `WebRtcServer` maps its config (python/remotemedia/webrtc.py).

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::error::WebRtcError;
use super::urls::{Reconnect, TurnServer, turn_url, with_reconnect};

const VIDEO_CODECS: [&str; 3] = ["vp8", "vp9", "h264"];

/// The config object, camelCase; an unknown key is a CONFIG_ERROR naming the known ones.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfig {
    /// Embedded signaling port; 0 (or null) picks a free one.
    #[serde(default = "default_port")]
    port: Option<u32>,
    /// An external signaling server (ws://, grpc://, grpcs://) instead of the embedded one.
    signaling_url: Option<String>,
    /// An object, JSON text, or the path of a manifest file.
    manifest: Option<Value>,
    #[serde(default)]
    stun_servers: Vec<String>,
    #[serde(default)]
    turn_servers: Vec<TurnServer>,
    #[serde(default = "default_max_peers")]
    max_peers: u32,
    #[serde(default = "default_audio_codec")]
    audio_codec: String,
    #[serde(default = "default_video_codec")]
    video_codec: String,
    #[serde(default = "default_host")]
    host: String,
    #[serde(default = "default_peer_id")]
    peer_id: String,
    #[serde(default)]
    ice_loopback_only: bool,
    reconnect: Option<Reconnect>,
    #[serde(default)]
    connect_to: Vec<String>,
    auth_token: Option<String>,
}

fn default_port() -> Option<u32> {
    Some(8080)
}

fn default_max_peers() -> u32 {
    10
}

fn default_audio_codec() -> String {
    "opus".into()
}

fn default_video_codec() -> String {
    "vp9".into()
}

fn default_host() -> String {
    "127.0.0.1".into()
}

fn default_peer_id() -> String {
    "remotemedia".into()
}

/// Which factory made the server: `connect` needs an external signaling server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Create,
    Connect,
}

/// Where the manifest goes: inline JSON or a file the element reads.
#[derive(Debug, PartialEq, Eq)]
pub enum Manifest {
    Json(String),
    Path(String),
}

/// Where the element signals: its own port on `host`, or an external server's URL.
#[derive(Debug, PartialEq, Eq)]
pub enum Signaling {
    Embedded { host: String, port: u16 },
    External { url: String },
}

/// A checked config, in the element's terms.
#[derive(Debug)]
pub struct Settings {
    pub manifest: Manifest,
    pub signaling: Signaling,
    pub video_codec: &'static str,
    pub max_peers: u32,
    pub peer_id: String,
    pub stun_servers: String,
    pub turn_servers: String,
    pub ice_loopback_only: bool,
    pub connect_to: String,
    pub auth_token: String,
}

impl Settings {
    /// Checks `config` (the JavaScript object) for `mode`.
    pub fn from_js(config: Value, mode: Mode) -> Result<Self, WebRtcError> {
        let config: ServerConfig = serde_json::from_value(config)
            .map_err(|e| WebRtcError::config(format!("bad WebRtcServer config: {e}")))?;
        config.check(mode)
    }
}

impl ServerConfig {
    fn check(self, mode: Mode) -> Result<Settings, WebRtcError> {
        if self.audio_codec != "opus" {
            return Err(WebRtcError::config(format!(
                "audioCodec '{}' is not supported; use 'opus'",
                self.audio_codec
            )));
        }
        let video_codec = VIDEO_CODECS
            .into_iter()
            .find(|c| *c == self.video_codec)
            .ok_or_else(|| {
                WebRtcError::config(format!(
                    "videoCodec '{}' is not one of {VIDEO_CODECS:?}",
                    self.video_codec
                ))
            })?;
        if !(1..=1000).contains(&self.max_peers) {
            return Err(WebRtcError::config(format!(
                "maxPeers must be 1..1000, got {}",
                self.max_peers
            )));
        }
        let signaling = match (self.signaling_url, mode) {
            (Some(url), _) => Signaling::External {
                url: with_reconnect(&url, self.reconnect.as_ref()),
            },
            (None, Mode::Connect) => {
                return Err(WebRtcError::config(
                    "connect() needs 'signalingUrl' (ws://host:port/ws, grpc://host:port or grpcs://host:port)",
                ));
            }
            (None, Mode::Create) => {
                let port = self.port.unwrap_or(0);
                let port = u16::try_from(port).map_err(|_| {
                    WebRtcError::config(format!("port must be 0..65535, got {port}"))
                })?;
                Signaling::Embedded {
                    host: self.host,
                    port,
                }
            }
        };
        let turn_servers: Result<Vec<String>, WebRtcError> =
            self.turn_servers.iter().map(turn_url).collect();
        Ok(Settings {
            manifest: manifest(self.manifest)?,
            signaling,
            video_codec,
            max_peers: self.max_peers,
            peer_id: self.peer_id,
            stun_servers: self.stun_servers.join(","),
            turn_servers: turn_servers?.join(","),
            ice_loopback_only: self.ice_loopback_only,
            connect_to: self.connect_to.join(","),
            auth_token: self.auth_token.unwrap_or_default(),
        })
    }
}

fn manifest(manifest: Option<Value>) -> Result<Manifest, WebRtcError> {
    match manifest {
        None | Some(Value::Null) => Err(WebRtcError::config(
            "config 'manifest' is required: an object, JSON text or a path",
        )),
        Some(Value::Object(object)) => Ok(Manifest::Json(Value::Object(object).to_string())),
        Some(Value::String(text)) if text.trim_start().starts_with('{') => Ok(Manifest::Json(text)),
        Some(Value::String(path)) => {
            let file = Path::new(&path);
            if !file.is_file() {
                return Err(WebRtcError::config(format!(
                    "manifest file '{path}' does not exist"
                )));
            }
            let absolute = std::path::absolute(file).map_err(|e| {
                WebRtcError::config(format!("manifest file '{path}' has no absolute path: {e}"))
            })?;
            Ok(Manifest::Path(absolute.to_string_lossy().into_owned()))
        }
        Some(other) => Err(WebRtcError::config(format!(
            "manifest must be an object, JSON text or a path, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn settings(config: Value, mode: Mode) -> Result<Settings, WebRtcError> {
        Settings::from_js(config, mode)
    }

    #[test]
    fn defaults_follow_the_python_server() {
        let s = settings(
            json!({"manifest": {"version": "v1", "nodes": []}}),
            Mode::Create,
        )
        .unwrap();
        assert_eq!(
            s.signaling,
            Signaling::Embedded {
                host: "127.0.0.1".into(),
                port: 8080
            }
        );
        assert_eq!((s.video_codec, s.max_peers), ("vp9", 10));
        assert_eq!(s.peer_id, "remotemedia");
        assert!(matches!(s.manifest, Manifest::Json(ref j) if j.contains("\"nodes\":[]")));
        let free = settings(json!({"manifest": "{}", "port": null}), Mode::Create).unwrap();
        assert!(matches!(
            free.signaling,
            Signaling::Embedded { port: 0, .. }
        ));
    }

    #[test]
    fn bad_configs_are_config_errors_naming_the_problem() {
        let cases = [
            (json!({"prot": 1, "manifest": "{}"}), "unknown field `prot`"),
            (json!({"port": 0}), "'manifest' is required"),
            (json!({"manifest": "/no/such.json"}), "does not exist"),
            (json!({"manifest": 3}), "got 3"),
            (
                json!({"manifest": "{}", "videoCodec": "av1"}),
                "videoCodec 'av1'",
            ),
            (
                json!({"manifest": "{}", "audioCodec": "aac"}),
                "audioCodec 'aac'",
            ),
            (
                json!({"manifest": "{}", "maxPeers": 0}),
                "maxPeers must be 1..1000",
            ),
            (
                json!({"manifest": "{}", "port": 70000}),
                "port must be 0..65535",
            ),
            (json!({"manifest": "{}", "port": -1}), "invalid value"),
        ];
        for (config, wanted) in cases {
            let err = settings(config.clone(), Mode::Create).unwrap_err();
            assert_eq!(err.code, remotemedia_runtime::ErrorCode::Config, "{config}");
            assert!(err.message.contains(wanted), "{config}: {}", err.message);
        }
        let err = settings(json!({"manifest": "{}"}), Mode::Connect).unwrap_err();
        assert!(
            err.message.contains("needs 'signalingUrl'"),
            "{}",
            err.message
        );
    }

    #[test]
    fn external_signaling_carries_the_reconnect_policy() {
        let s = settings(
            json!({"manifest": "{}", "signalingUrl": "grpc://127.0.0.1:1",
                   "reconnect": {"maxAttempts": 5, "initialBackoffMs": 100}}),
            Mode::Connect,
        )
        .unwrap();
        assert_eq!(
            s.signaling,
            Signaling::External {
                url: "grpc://127.0.0.1:1?max_attempts=5&initial_backoff_ms=100".into()
            }
        );
    }
}
