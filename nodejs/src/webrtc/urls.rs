//! The URLs the element reads: TURN servers with their credentials inside, and a signaling
//! URL carrying the reconnect policy as the query parameters ws:// and grpc:// both read.

use serde::Deserialize;

use super::error::WebRtcError;

/// `{url, username, credential}`, or a URL with the credentials already in it.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TurnServer {
    Url(String),
    Credentials {
        url: String,
        username: String,
        credential: String,
    },
}

/// How an external signaling server is reconnected when it goes away.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reconnect {
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    backoff_multiplier: Option<f64>,
}

/// `turn:user:credential@host:port`, the form the element's `turn-servers` takes.
pub fn turn_url(server: &TurnServer) -> Result<String, WebRtcError> {
    match server {
        TurnServer::Url(url) => Ok(url.clone()),
        TurnServer::Credentials {
            url,
            username,
            credential,
        } => {
            let (scheme, rest) = url.split_once(':').ok_or_else(|| {
                WebRtcError::config(format!(
                    "TURN server url '{url}' must be turn:host:port or turns:host:port"
                ))
            })?;
            Ok(format!("{scheme}:{username}:{credential}@{rest}"))
        }
    }
}

/// `url` with the policy's query parameters added.
pub fn with_reconnect(url: &str, reconnect: Option<&Reconnect>) -> String {
    let Some(r) = reconnect else {
        return url.to_owned();
    };
    let query: Vec<String> = [
        ("max_attempts", r.max_attempts.map(|v| v.to_string())),
        (
            "initial_backoff_ms",
            r.initial_backoff_ms.map(|v| v.to_string()),
        ),
        ("max_backoff_ms", r.max_backoff_ms.map(|v| v.to_string())),
        (
            "backoff_multiplier",
            r.backoff_multiplier.map(|v| v.to_string()),
        ),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some(format!("{name}={}", value?)))
    .collect();
    if query.is_empty() {
        return url.to_owned();
    }
    let join = if url.contains('?') { '&' } else { '?' };
    format!("{url}{join}{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_credentials_go_into_the_url() {
        let server = TurnServer::Credentials {
            url: "turn:127.0.0.1:3478".into(),
            username: "u".into(),
            credential: "secret".into(),
        };
        assert_eq!(turn_url(&server).unwrap(), "turn:u:secret@127.0.0.1:3478");
        let bad = TurnServer::Credentials {
            url: "nowhere".into(),
            username: "u".into(),
            credential: "secret".into(),
        };
        let err = turn_url(&bad).unwrap_err();
        assert!(!err.message.contains("secret"), "{}", err.message);
    }

    #[test]
    fn the_policy_is_appended_to_any_query() {
        let policy = Reconnect {
            max_backoff_ms: Some(300),
            backoff_multiplier: Some(1.5),
            ..Default::default()
        };
        assert_eq!(
            with_reconnect("ws://h:1/ws?token=t", Some(&policy)),
            "ws://h:1/ws?token=t&max_backoff_ms=300&backoff_multiplier=1.5"
        );
        assert_eq!(with_reconnect("ws://h:1/ws", None), "ws://h:1/ws");
    }
}
