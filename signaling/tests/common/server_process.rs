//! remotemedia-server as a child process on loopback, for the load test and the benches
//! (shared with `#[path]`): starts it, reads the bound addresses from its first line, and
//! kills it when dropped (also when a test fails).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

// Each user (load test, benches) reads the addresses and methods it needs.
#[allow(dead_code)]
pub struct ServerProcess {
    child: Child,
    pub grpc: String,
    pub ws: String,
    pub metrics: String,
}

impl ServerProcess {
    /// Starts `binary` with `args` (addresses included) and waits for its listening line;
    /// later output goes on to stderr.
    pub fn spawn(binary: &str, args: &[&str]) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start remotemedia-server");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                match line.strip_prefix("remotemedia-server listening ") {
                    Some(rest) => {
                        let _ = tx.send(rest.to_owned());
                    }
                    None => eprintln!("server: {line}"),
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("remotemedia-server printed no 'listening' line within 30 s");
        let field = |name: &str| {
            line.split(' ')
                .find_map(|f| f.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in the listening line: {line}"))
                .to_owned()
        };
        Self {
            grpc: field("grpc="),
            ws: field("ws="),
            metrics: field("metrics="),
            child,
        }
    }

    /// The release server the benches measure (`RM_BENCH_SERVER` names another build), with
    /// WebSocket signaling at `ws_bind` (or `off`), no metrics, and no call-rate limit in the way.
    #[allow(dead_code)]
    pub fn for_bench(ws_bind: &str) -> Self {
        let binary = std::env::var("RM_BENCH_SERVER")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_remotemedia-server").to_owned());
        let args = ["--grpc-bind", "127.0.0.1:0", "--ws-bind", ws_bind];
        let rest = ["--metrics-bind", "off", "--calls-per-sec", "100000"];
        Self::spawn(&binary, &[&args[..], &rest[..]].concat())
    }

    /// VmRSS in bytes.
    #[allow(dead_code)]
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("server is running");
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kb * 1024
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
