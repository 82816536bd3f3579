//! `remotemedia-srt-relay`, the process libsrt runs in for remotemediaingest: its C++
//! exceptions unwind with libgcc's unwinder, and its failures come out as one marked line on
//! stderr.

use std::process::{Command, Stdio};

const RELAY: &str = env!("CARGO_BIN_EXE_remotemedia-srt-relay");

#[test]
fn unwinds_with_libgcc_not_libunwind() {
    let out = Command::new(RELAY).arg("--check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("libgcc_s.so"), "{text}");
}

#[test]
fn a_refused_connection_is_one_line_on_stderr() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // free, and nothing listens there once the socket is gone
    let mut child = Command::new(RELAY)
        .env(
            "REMOTEMEDIA_SRT_URI",
            format!("srt://127.0.0.1:{port}?mode=caller"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Held open, as the element does: the relay runs until the stream fails.
    let stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("remotemedia-srt-relay: "), "{err}");
    assert!(err.contains("Connection"), "{err}");
}

#[test]
fn without_a_uri_it_says_so() {
    let out = Command::new(RELAY)
        .env_remove("REMOTEMEDIA_SRT_URI")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "remotemedia-srt-relay: REMOTEMEDIA_SRT_URI is not set"
    );
}
