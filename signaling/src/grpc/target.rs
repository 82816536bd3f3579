//! Where a gRPC client connects and how, read from a `grpc://` or `grpcs://` URL; shared by the
//! signaling client and the remote-pipeline transport.

use std::time::Duration;

use remotemedia_runtime::Backoff;
use tonic::metadata::errors::InvalidMetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::with_causes;
use crate::reconnect::{BadBackoffParam, backoff_param};

/// Where and how to connect, read from a `grpc://` or `grpcs://` URL. Query parameters:
/// `token` (sent as `authorization: Bearer`), `max_attempts`, `initial_backoff_ms`,
/// `max_backoff_ms`, `backoff_multiplier`.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcTarget {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    pub token: Option<String>,
    pub backoff: Backoff,
}

/// Why a URL does not name a gRPC server.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GrpcUrlError {
    #[error("'{0}' is not a URL")]
    NotUrl(String),
    #[error("'{0}': the scheme must be grpc:// or grpcs://")]
    Scheme(String),
    #[error("'{0}': expected grpc://host:port")]
    NotHostPort(String),
    #[error(
        "'{url}': unknown parameter '{key}' (token, max_attempts, initial_backoff_ms, \
         max_backoff_ms, backoff_multiplier)"
    )]
    UnknownParam { url: String, key: String },
    #[error(transparent)]
    Backoff(#[from] BadBackoffParam),
}

/// The connection to the server could not be made (address, TLS, TCP).
#[derive(Debug, thiserror::Error)]
#[error("{}", with_causes(.0))]
pub struct ConnectError(#[source] pub tonic::transport::Error);

/// A token that cannot be sent in a header.
#[derive(Debug, thiserror::Error)]
#[error("the token is not a valid header value")]
pub struct BadToken(#[source] pub InvalidMetadataValue);

impl GrpcTarget {
    pub fn parse(url: &str) -> Result<Self, GrpcUrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| GrpcUrlError::NotUrl(url.to_owned()))?;
        let http = match scheme {
            "grpc" => "http",
            "grpcs" => "https",
            _ => return Err(GrpcUrlError::Scheme(url.to_owned())),
        };
        let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
        let authority = authority.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(GrpcUrlError::NotHostPort(url.to_owned()));
        }
        let mut target = Self {
            endpoint: format!("{http}://{authority}"),
            token: None,
            backoff: Backoff::default(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if key == "token" {
                target.token = Some(value.to_owned());
            } else if !backoff_param(&mut target.backoff, key, value, url)? {
                return Err(GrpcUrlError::UnknownParam {
                    url: url.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
        Ok(target)
    }

    pub async fn channel(&self) -> Result<Channel, ConnectError> {
        let mut endpoint = Endpoint::from_shared(self.endpoint.clone())
            .map_err(ConnectError)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        if self.endpoint.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_native_roots())
                .map_err(ConnectError)?;
        }
        endpoint.connect().await.map_err(ConnectError)
    }

    /// Adds the bearer token, if any, to a request.
    pub fn authorize<T>(
        &self,
        mut request: tonic::Request<T>,
    ) -> Result<tonic::Request<T>, BadToken> {
        if let Some(token) = &self.token {
            let value = format!("Bearer {token}").parse().map_err(BadToken)?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_endpoint_token_and_backoff() {
        let t = GrpcTarget::parse(
            "grpc://127.0.0.1:50051?token=abc&max_attempts=3&initial_backoff_ms=100&max_backoff_ms=400&backoff_multiplier=1.5",
        )
        .unwrap();
        assert_eq!(t.endpoint, "http://127.0.0.1:50051");
        assert_eq!(t.token.as_deref(), Some("abc"));
        assert_eq!(t.backoff.max_attempts, 3);
        assert_eq!(t.backoff.initial, Duration::from_millis(100));
        assert_eq!(t.backoff.max, Duration::from_millis(400));
        assert_eq!(t.backoff.multiplier, 1.5);
        assert_eq!(
            GrpcTarget::parse("grpcs://h:1").unwrap().endpoint,
            "https://h:1"
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let error = |url| GrpcTarget::parse(url).unwrap_err();
        assert_eq!(error("h:1"), GrpcUrlError::NotUrl("h:1".into()));
        assert_eq!(error("ws://h:1"), GrpcUrlError::Scheme("ws://h:1".into()));
        assert_eq!(
            error("grpc://"),
            GrpcUrlError::NotHostPort("grpc://".into())
        );
        assert_eq!(
            error("grpc://h:1/path"),
            GrpcUrlError::NotHostPort("grpc://h:1/path".into())
        );
        assert!(matches!(
            error("grpc://h:1?max_attempts=x"),
            GrpcUrlError::Backoff(BadBackoffParam { key, .. }) if key == "max_attempts"
        ));
        assert_eq!(
            error("grpc://h:1?colour=red"),
            GrpcUrlError::UnknownParam {
                url: "grpc://h:1?colour=red".into(),
                key: "colour".into()
            }
        );
    }
}
