//! What the signaling clients (ws:// and grpc://) share about their link to the server: the
//! events they report, the backoff parameters their URLs carry (`max_attempts`,
//! `initial_backoff_ms`, `max_backoff_ms`, `backoff_multiplier`), the reconnect loop, and
//! what to do with notifications that arrive before the answer to an announce.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use remotemedia_runtime::Backoff;

use crate::protocol::{PeerInfo, RpcError};
use crate::registry::Event;

/// What a client reports about its link to the server.
#[derive(Clone, Debug, PartialEq)]
pub enum LinkEvent {
    /// The server went away; attempt `attempt` of `max_attempts` (0: forever) starts after
    /// `delay`.
    Reconnecting {
        attempt: u32,
        max_attempts: u32,
        delay: Duration,
        reason: String,
    },
    Reconnected {
        attempts: u32,
    },
    /// Attempts used up: the client stopped.
    Failed {
        attempts: u32,
        reason: String,
    },
    /// The server refused one of our signals.
    Refused(RpcError),
}

pub type LinkHandler = Arc<dyn Fn(LinkEvent) + Send + Sync>;

/// A backoff parameter of a signaling URL whose value is not a number >= 0.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("'{url}': {key}={value:?} is not a number >= 0")]
pub struct BadBackoffParam {
    pub url: String,
    pub key: String,
    pub value: String,
}

/// Applies one URL query parameter to `backoff`; false when `key` is not a backoff parameter.
pub fn backoff_param(
    backoff: &mut Backoff,
    key: &str,
    value: &str,
    url: &str,
) -> Result<bool, BadBackoffParam> {
    let number = || {
        value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| BadBackoffParam {
                url: url.to_owned(),
                key: key.to_owned(),
                value: value.to_owned(),
            })
    };
    match key {
        "max_attempts" => backoff.max_attempts = number()? as u32,
        "initial_backoff_ms" => backoff.initial = Duration::from_millis(number()? as u64),
        "max_backoff_ms" => backoff.max = Duration::from_millis(number()? as u64),
        "backoff_multiplier" => backoff.multiplier = number()?,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Notifications that came before the answer to our announce: the server registers us first,
/// so a peer announcing meanwhile is told to us before that answer is. Joins and leaves update
/// the peers the answer listed (a dropped join would leave a `connect-to` peer never called);
/// what remains (signals) is returned, for the handler.
pub fn settle_early(present: &mut Vec<PeerInfo>, early: Vec<Event>) -> Vec<Event> {
    let mut signals = Vec::new();
    for event in early {
        match event {
            Event::Joined(info) => {
                present.retain(|p| p.peer_id != info.peer_id);
                present.push(info);
            }
            Event::Left { peer_id, .. } => present.retain(|p| p.peer_id != peer_id),
            signal => signals.push(signal),
        }
    }
    signals
}

/// Opens a lost link again: waits `backoff`'s delay before each attempt, reports every
/// attempt and the outcome through `on_link` (`server` and the last failure name the
/// reason), and returns the link opened, or None once the attempts are used up or `stopped`
/// completes (the client was dropped).
pub async fn reopen<T, E: Display, Fut: Future<Output = Result<T, E>>>(
    backoff: &Backoff,
    server: &str,
    lost_because: impl Display,
    on_link: &LinkHandler,
    stopped: impl Future<Output = ()>,
    mut open: impl FnMut() -> Fut,
) -> Option<T> {
    tokio::pin!(stopped);
    let mut reason = lost_because.to_string();
    let mut attempt = 1;
    loop {
        let Some(delay) = backoff.delay(attempt) else {
            on_link(LinkEvent::Failed {
                attempts: attempt - 1,
                reason: format!("{server}: {reason}"),
            });
            return None;
        };
        on_link(LinkEvent::Reconnecting {
            attempt,
            max_attempts: backoff.max_attempts,
            delay,
            reason: format!("{server}: {reason}"),
        });
        tokio::select! {
            () = &mut stopped => return None,
            () = tokio::time::sleep(delay) => {}
        }
        match open().await {
            Ok(link) => {
                on_link(LinkEvent::Reconnected { attempts: attempt });
                return Some(link);
            }
            Err(e) => {
                attempt += 1;
                reason = e.to_string();
            }
        }
    }
}

/// The backoff a `ws://` URL asks for; other query parameters (a `token`) are the server's.
pub fn ws_backoff(url: &str) -> Result<Backoff, BadBackoffParam> {
    let mut backoff = Backoff::default();
    let query = url.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        backoff_param(&mut backoff, key, value, url)?;
    }
    Ok(backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_joins_and_leaves_settle_into_the_present_peers() {
        let peer = |id: &str| PeerInfo {
            peer_id: id.into(),
            capabilities: serde_json::json!({}),
            user_data: serde_json::json!({}),
        };
        let mut present = vec![peer("a"), peer("b")];
        let offer = Event::Signal(crate::protocol::Signal::Offer {
            from: "c".into(),
            to: "me".into(),
            sdp: "v=0".into(),
        });
        let left = |id: &str| Event::Left {
            peer_id: id.into(),
            reason: "left".into(),
        };
        let early = vec![
            Event::Joined(peer("c")),
            left("a"),
            offer.clone(),
            Event::Joined(peer("b")),
        ];
        let signals = settle_early(&mut present, early);
        let ids: Vec<&str> = present.iter().map(|p| p.peer_id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(signals, vec![offer]);
    }

    #[test]
    fn ws_urls_carry_backoff_and_keep_other_parameters() {
        let b = ws_backoff("ws://h:1/ws?token=t&max_attempts=3&initial_backoff_ms=100").unwrap();
        assert_eq!((b.max_attempts, b.initial), (3, Duration::from_millis(100)));
        assert_eq!(
            ws_backoff("ws://h:1/ws?max_attempts=x"),
            Err(BadBackoffParam {
                url: "ws://h:1/ws?max_attempts=x".into(),
                key: "max_attempts".into(),
                value: "x".into()
            })
        );
        assert_eq!(ws_backoff("ws://h:1/ws").unwrap(), Backoff::default());
    }
}
