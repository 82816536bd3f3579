//! What `uri` may name, whether it is live (and so reconnected), and how it is shown in
//! messages: credentials and SRT passphrases are masked.

use std::path::{Path, PathBuf};

pub const SUPPORTED: &str =
    "rtsp://, rtsps://, rtmp://, rtmps://, srt://, udp://, file://, a file path, or - for stdin";

/// Why `uri` names nothing the element can ingest. URIs in it are masked.
#[derive(Debug, thiserror::Error)]
pub enum UriError {
    #[error("set \"uri\" to one of: {SUPPORTED}")]
    Empty,
    #[error("unsupported scheme '{scheme}' in '{uri}'; supported: {SUPPORTED}")]
    Scheme { scheme: String, uri: String },
    #[error("'{0}' names no host")]
    NoHost(String),
    #[error("no such file: {}", .0.display())]
    NoSuchFile(PathBuf),
    #[error("{}: {source}", path.display())]
    BadPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    NotAUri {
        path: PathBuf,
        #[source]
        source: gst::glib::Error,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Rtsp,
    Rtmp,
    Srt,
    Udp,
    File,
    Stdin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceUri {
    pub scheme: Scheme,
    /// What GStreamer opens (a file path made a file:// URI).
    pub uri: String,
}

impl SourceUri {
    /// Network sources are live: they are reconnected when they drop, stall or end.
    pub fn is_live(&self) -> bool {
        !matches!(self.scheme, Scheme::File | Scheme::Stdin)
    }

    /// The URI with its secrets masked, for messages.
    pub fn masked(&self) -> String {
        mask(&self.uri)
    }
}

/// Parses `uri`: a URI of a supported scheme, a file path, or `-`.
pub fn parse(uri: &str) -> Result<SourceUri, UriError> {
    let uri = uri.trim();
    if uri.is_empty() {
        return Err(UriError::Empty);
    }
    if uri == "-" {
        return Ok(SourceUri {
            scheme: Scheme::Stdin,
            uri: "-".into(),
        });
    }
    let Some((scheme, rest)) = uri.split_once("://") else {
        return file_path(uri);
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "rtsp" | "rtsps" | "rtspt" => Scheme::Rtsp,
        "rtmp" | "rtmps" => Scheme::Rtmp,
        "srt" => Scheme::Srt,
        "udp" => Scheme::Udp,
        "file" => Scheme::File,
        other => {
            return Err(UriError::Scheme {
                scheme: other.to_owned(),
                uri: mask(uri),
            });
        }
    };
    if scheme != Scheme::File && rest.split(['/', '?']).next().unwrap_or("").is_empty() {
        return Err(UriError::NoHost(mask(uri)));
    }
    if scheme == Scheme::File {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        return file_path(path);
    }
    Ok(SourceUri {
        scheme,
        uri: uri.to_owned(),
    })
}

fn file_path(path: &str) -> Result<SourceUri, UriError> {
    let path = Path::new(path);
    let absolute = std::path::absolute(path).map_err(|source| UriError::BadPath {
        path: path.to_owned(),
        source,
    })?;
    if !absolute.is_file() {
        return Err(UriError::NoSuchFile(absolute));
    }
    let uri = gst::glib::filename_to_uri(&absolute, None).map_err(|source| UriError::NotAUri {
        path: absolute.clone(),
        source,
    })?;
    Ok(SourceUri {
        scheme: Scheme::File,
        uri: uri.to_string(),
    })
}

/// Masks `user:password@` (keeping the user) and `passphrase=` query values.
pub fn mask(uri: &str) -> String {
    let mut out = uri.to_owned();
    if let Some(start) = out.find("://").map(|i| i + 3) {
        let authority_end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@') {
            let userinfo = &out[start..start + at];
            let user = userinfo.split(':').next().unwrap_or("");
            out = format!("{}{user}:***{}", &out[..start], &out[start + at..]);
        }
    }
    let lower = out.to_ascii_lowercase();
    if let Some(i) = lower.find("passphrase=") {
        let value_start = i + "passphrase=".len();
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |j| value_start + j);
        out.replace_range(value_start..value_end, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_paths_and_refusals() {
        let rtsp = parse("rtsp://127.0.0.1:8554/test").unwrap();
        assert_eq!(rtsp.scheme, Scheme::Rtsp);
        assert!(rtsp.is_live());
        assert_eq!(parse("srt://127.0.0.1:9000").unwrap().scheme, Scheme::Srt);
        assert_eq!(parse("udp://127.0.0.1:5000").unwrap().scheme, Scheme::Udp);
        assert_eq!(parse("rtmp://h/live/x").unwrap().scheme, Scheme::Rtmp);
        assert_eq!(parse("-").unwrap().scheme, Scheme::Stdin);
        let here = file!();
        let file = parse(&format!("../{here}")).unwrap_or_else(|_| parse(here).unwrap());
        assert!(
            file.uri.starts_with("file:///") && !file.is_live(),
            "{file:?}"
        );
        let err = parse("http://example.invalid/x").unwrap_err();
        assert!(
            matches!(&err, UriError::Scheme { scheme, .. } if scheme == "http"),
            "{err}"
        );
        assert!(err.to_string().contains("srt://"), "{err}");
        assert!(matches!(
            parse("/no/such/file.wav"),
            Err(UriError::NoSuchFile(_))
        ));
        assert!(matches!(parse("rtsp:///path"), Err(UriError::NoHost(_))));
        assert!(matches!(parse("  "), Err(UriError::Empty)));
    }

    #[test]
    fn secrets_are_masked() {
        assert_eq!(
            mask("rtsp://admin:hunter2@10.0.0.1:554/s"),
            "rtsp://admin:***@10.0.0.1:554/s"
        );
        assert_eq!(
            mask("srt://h:9000?mode=caller&passphrase=topsecret&latency=100"),
            "srt://h:9000?mode=caller&passphrase=***&latency=100"
        );
        assert_eq!(mask("rtsp://h/a@b"), "rtsp://h/a@b");
        let err = parse("http://bob:pw@h/").unwrap_err().to_string();
        assert!(!err.contains("pw@"), "{err}");
    }
}
