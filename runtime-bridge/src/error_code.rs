//! The names users see for failures: in bus messages and element errors (a `code` field), in
//! JSON-RPC errors (`error.data.code`), in gRPC error replies and on Python exceptions
//! (`.code`). One enum, so every layer names the same failure the same way and no consumer
//! has to find a code in a message's text.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// A property, manifest or option is invalid, or a needed part is not installed.
    Config,
    /// The media pipeline or one of its nodes failed.
    Pipeline,
    /// A fault of ours, not of the input.
    Internal,
    /// The signaling transport failed or a signaling message is malformed.
    Signaling,
    /// A peer misbehaved, refused a call or could not be reached.
    Peer,
    PeerNotFound,
    PeerIdTaken,
    NotAnnounced,
    MaxPeersReached,
    SessionNotFound,
    RateLimited,
    MessageTooLarge,
    /// A live source or a called peer is being retried (a notice, not a failure).
    ReconnectAttempt,
    /// The retries are used up.
    ReconnectFailed,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Config,
        ErrorCode::Pipeline,
        ErrorCode::Internal,
        ErrorCode::Signaling,
        ErrorCode::Peer,
        ErrorCode::PeerNotFound,
        ErrorCode::PeerIdTaken,
        ErrorCode::NotAnnounced,
        ErrorCode::MaxPeersReached,
        ErrorCode::SessionNotFound,
        ErrorCode::RateLimited,
        ErrorCode::MessageTooLarge,
        ErrorCode::ReconnectAttempt,
        ErrorCode::ReconnectFailed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Config => "CONFIG_ERROR",
            ErrorCode::Pipeline => "PIPELINE_ERROR",
            ErrorCode::Internal => "INTERNAL_ERROR",
            ErrorCode::Signaling => "SIGNALING_ERROR",
            ErrorCode::Peer => "PEER_ERROR",
            ErrorCode::PeerNotFound => "PEER_NOT_FOUND",
            ErrorCode::PeerIdTaken => "PEER_ID_TAKEN",
            ErrorCode::NotAnnounced => "NOT_ANNOUNCED",
            ErrorCode::MaxPeersReached => "MAX_PEERS_REACHED",
            ErrorCode::SessionNotFound => "SESSION_NOT_FOUND",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::MessageTooLarge => "MESSAGE_TOO_LARGE",
            ErrorCode::ReconnectAttempt => "RECONNECT_ATTEMPT",
            ErrorCode::ReconnectFailed => "RECONNECT_FAILED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the codes.
#[derive(Debug, thiserror::Error)]
#[error("unknown error code {0:?}")]
pub struct UnknownCode(pub String);

impl FromStr for ErrorCode {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ErrorCode::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_from_its_name() {
        for code in ErrorCode::ALL {
            assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), code);
        }
        assert!("NO_SUCH_CODE".parse::<ErrorCode>().is_err());
    }
}
