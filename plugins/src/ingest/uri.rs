//! What `uri` may name, whether it is live (and so reconnected), and how it is shown in
//! messages: credentials and SRT passphrases are masked.

use std::path::Path;

pub const SUPPORTED: &str =
    "rtsp://, rtsps://, rtmp://, rtmps://, srt://, udp://, file://, a file path, or - for stdin";

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
pub fn parse(uri: &str) -> Result<SourceUri, String> {
    let uri = uri.trim();
    if uri.is_empty() {
        return Err(format!("set \"uri\" to one of: {SUPPORTED}"));
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
            return Err(format!(
                "unsupported scheme '{other}' in '{}'; supported: {SUPPORTED}",
                mask(uri)
            ));
        }
    };
    if scheme != Scheme::File && rest.split(['/', '?']).next().unwrap_or("").is_empty() {
        return Err(format!("'{}' names no host", mask(uri)));
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

fn file_path(path: &str) -> Result<SourceUri, String> {
    let path = Path::new(path);
    let absolute = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !absolute.is_file() {
        return Err(format!("no such file: {}", absolute.display()));
    }
    let uri = gst::glib::filename_to_uri(&absolute, None)
        .map_err(|e| format!("{}: {e}", absolute.display()))?;
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
            err.contains("unsupported scheme 'http'") && err.contains("srt://"),
            "{err}"
        );
        assert!(
            parse("/no/such/file.wav")
                .unwrap_err()
                .contains("no such file")
        );
        assert!(parse("rtsp:///path").unwrap_err().contains("names no host"));
        assert!(parse("  ").unwrap_err().contains("set \"uri\""));
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
        let err = parse("http://bob:pw@h/").unwrap_err();
        assert!(!err.contains("pw@"), "{err}");
    }
}
