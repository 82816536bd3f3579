//! The little HTTP/1.1 the signaling port speaks besides the WebSocket upgrade: static pages,
//! and routes an element registers (WHIP and WHEP), with CORS so a page of another origin
//! can call them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest request head, and largest body a route accepts (an SDP offer is a few KiB).
pub const MAX_HEAD: usize = 16 * 1024;
pub const MAX_BODY: usize = 256 * 1024;

pub struct HttpRequest {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A `name=value` of the query string (not percent-decoded: tokens and ids are plain).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The media type of the body, without parameters, lower case.
    pub fn content_type(&self) -> String {
        self.header("content-type")
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: Vec::new(),
            content_type: content_type.to_owned(),
            body: body.into(),
        }
    }

    /// A plain-text answer; errors name the problem in their body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        body.push('\n');
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
pub type RouteHandler = Arc<dyn Fn(HttpRequest) -> BoxFuture<HttpResponse> + Send + Sync>;

/// Requests whose path is `prefix` or starts with `prefix/` go to `handler`.
#[derive(Clone)]
pub struct Route {
    pub prefix: &'static str,
    pub handler: RouteHandler,
}

impl Route {
    pub fn matches(&self, path: &str) -> bool {
        path.strip_prefix(self.prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Reads the request head (up to the blank line); what came after it is returned as the
/// start of the body.
pub async fn read_head(stream: &mut TcpStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = head.split_off(end + 4);
            return Ok((head, rest));
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// Parses a request head; `None` when it is not HTTP/1.x.
pub fn parse_head(raw: &[u8]) -> Option<HttpRequest> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?;
    if !first.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Some(HttpRequest {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
    })
}

/// Reads the body the head announced (`Content-Length`; chunked bodies are refused).
pub async fn read_body(
    stream: &mut TcpStream,
    req: &mut HttpRequest,
    mut start: Vec<u8>,
) -> Result<(), HttpResponse> {
    if req
        .header("transfer-encoding")
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
    {
        return Err(HttpResponse::text(
            400,
            "chunked request bodies are not supported; send Content-Length",
        ));
    }
    let len = match req.header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| HttpResponse::text(400, format!("bad Content-Length {v:?}")))?,
    };
    if len > MAX_BODY {
        return Err(HttpResponse::text(
            413,
            format!("body of {len} bytes; at most {MAX_BODY}"),
        ));
    }
    start.truncate(len);
    let have = start.len();
    start.resize(len, 0);
    stream
        .read_exact(&mut start[have..])
        .await
        .map_err(|_| HttpResponse::text(400, "the body ended before Content-Length"))?;
    req.body = start;
    Ok(())
}

/// Writes `response` with the CORS headers a cross-origin WHIP/WHEP client needs, and
/// closes the connection.
pub async fn respond(stream: &mut TcpStream, response: &HttpResponse) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Access-Control-Allow-Origin: *\r\n\
         Access-Control-Allow-Methods: GET, POST, PATCH, DELETE, OPTIONS\r\n\
         Access-Control-Allow-Headers: Authorization, Content-Type, If-Match\r\n\
         Access-Control-Expose-Headers: Location, Link, ETag\r\n\
         Connection: close\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    for (k, v) in &response.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&response.body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_routes() {
        let req = parse_head(
            b"POST /whip/abc?token=t1&x=2 HTTP/1.1\r\nContent-Type: application/sdp; charset=x\r\n\r\n",
        )
        .unwrap();
        assert_eq!(
            (req.method.as_str(), req.path.as_str()),
            ("POST", "/whip/abc")
        );
        assert_eq!(req.query_param("token"), Some("t1"));
        assert_eq!(req.content_type(), "application/sdp");
        assert!(parse_head(b"garbage\r\n\r\n").is_none());
        let route = Route {
            prefix: "/whip",
            handler: Arc::new(|_| Box::pin(async { HttpResponse::text(200, "") })),
        };
        assert!(route.matches("/whip") && route.matches("/whip/abc"));
        assert!(!route.matches("/whipx") && !route.matches("/"));
    }
}
