//! One HTTP/1.1 request over plain TCP or TLS (system roots), for the sink's WHIP client.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, LOCATION};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types::ServerName};

/// Longest a request may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{method} {url}: no answer within {} s", TIMEOUT.as_secs())]
    Timeout { method: String, url: String },
    #[error("bad URL '{url}': {source}")]
    BadUrl {
        url: String,
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    #[error("'{0}': the scheme must be http:// or https://")]
    Scheme(String),
    #[error("'{0}' has no host")]
    NoHost(String),
    #[error("cannot reach {authority}: {source}")]
    Unreachable {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{method} {url}: {source}")]
    Request {
        method: String,
        url: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("'{host}': {source}")]
    ServerName {
        host: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("TLS set-up: {0}")]
    TlsSetup(#[source] rustls::Error),
    #[error("TLS with {authority}: {source}")]
    Tls {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP handshake: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("HTTP request: {0}")]
    Exchange(#[source] hyper::Error),
    #[error("{method} {url}: reading the answer: {source}")]
    Body {
        method: String,
        url: String,
        #[source]
        source: hyper::Error,
    },
}

pub struct Response {
    pub status: u16,
    /// The `Location` header, made absolute against the request's URL.
    pub location: Option<String>,
    pub body: String,
}

/// TLS with the system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` are honoured).
static TLS: LazyLock<Result<Arc<ClientConfig>, rustls::Error>> = LazyLock::new(|| {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
});

/// Sends `method url` with an optional bearer `token` and body (`(content type, bytes)`).
pub async fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> Result<Response, HttpError> {
    tokio::time::timeout(TIMEOUT, send(method, url, token, body))
        .await
        .map_err(|_| HttpError::Timeout {
            method: method.to_owned(),
            url: url.to_owned(),
        })?
}

async fn send(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> Result<Response, HttpError> {
    let uri: hyper::Uri = url.parse().map_err(|source| HttpError::BadUrl {
        url: url.to_owned(),
        source,
    })?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(HttpError::Scheme(url.to_owned())),
    };
    let host = uri
        .host()
        .ok_or_else(|| HttpError::NoHost(url.to_owned()))?;
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default();
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|source| HttpError::Unreachable {
            authority: authority.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let mut builder = Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, &authority);
    if let Some(token) = token {
        builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let payload = match body {
        Some((content_type, text)) => {
            builder = builder.header(CONTENT_TYPE, content_type);
            Bytes::from(text)
        }
        None => Bytes::new(),
    };
    let req = builder
        .body(Full::new(payload))
        .map_err(|source| HttpError::Request {
            method: method.to_owned(),
            url: url.to_owned(),
            source,
        })?;
    let response = if tls {
        let name =
            ServerName::try_from(host.trim_matches(['[', ']']).to_owned()).map_err(|source| {
                HttpError::ServerName {
                    host: host.to_owned(),
                    source,
                }
            })?;
        let config = TLS
            .as_ref()
            .map_err(|e| HttpError::TlsSetup(e.clone()))?
            .clone();
        let stream = TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| HttpError::Tls { authority, source })?;
        exchange(stream, req).await?
    } else {
        exchange(tcp, req).await?
    };
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(|l| absolute(&uri, l));
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|source| HttpError::Body {
            method: method.to_owned(),
            url: url.to_owned(),
            source,
        })?
        .to_bytes();
    Ok(Response {
        status,
        location,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

async fn exchange<S>(
    io: S,
    req: Request<Full<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, HttpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(HttpError::Handshake)?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(HttpError::Exchange)
}

/// `location` resolved against `base`: absolute URLs stay, paths take base's origin.
fn absolute(base: &hyper::Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let origin = format!(
        "{}://{}",
        base.scheme_str().unwrap_or("http"),
        base.authority().map_or("", |a| a.as_str())
    );
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{origin}{dir}/{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_become_absolute() {
        let base: hyper::Uri = "http://127.0.0.1:8080/whip".parse().unwrap();
        assert_eq!(
            absolute(&base, "/whip/abc"),
            "http://127.0.0.1:8080/whip/abc"
        );
        assert_eq!(absolute(&base, "abc"), "http://127.0.0.1:8080/abc");
        assert_eq!(absolute(&base, "https://h/x"), "https://h/x");
    }
}
