//! SRT sources run in a child process, `remotemedia-srt-relay` (see that binary for why); the
//! element reads the stream's bytes from its stdout through `fdsrc`. The child ends when its
//! relay is dropped (killed and reaped) or when this process dies (its stdin closes).

use remotemedia_runtime::sync::lock;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

const BINARY: &str = "remotemedia-srt-relay";

static PLUGIN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Why the relay could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("REMOTEMEDIA_SRT_RELAY={} is not a file", .0.display())]
    NotAFile(PathBuf),
    #[error(
        "SRT is received by the helper program {BINARY}, which is in none of {} nor in PATH \
         (cargo build -p gst-plugin-remotemedia builds it beside the plugin; or set \
         REMOTEMEDIA_SRT_RELAY)",
        looked_in(.0)
    )]
    NotFound(Vec<PathBuf>),
    #[error("cannot start {}: {source}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{BINARY} started without its pipes")]
    NoPipes,
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}

fn looked_in(dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(", ")
}

/// Where the plugin was loaded from: the relay is looked for next to it first.
pub fn set_plugin_file(file: Option<PathBuf>) {
    if let Some(dir) = file.as_deref().and_then(Path::parent) {
        let _ = PLUGIN_DIR.set(dir.to_owned());
    }
}

/// The relay binary: `REMOTEMEDIA_SRT_RELAY`, else next to the plugin, next to this program
/// (or one folder up, as cargo lays out tests), else in `PATH`.
pub fn locate() -> Result<PathBuf, RelayError> {
    if let Some(path) = std::env::var_os("REMOTEMEDIA_SRT_RELAY") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(RelayError::NotAFile(path))
        };
    }
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned));
    let mut dirs: Vec<PathBuf> = PLUGIN_DIR.get().cloned().into_iter().collect();
    dirs.extend(exe_dir.iter().cloned());
    dirs.extend(
        exe_dir
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_owned),
    );
    if let Some(found) = dirs.iter().map(|d| d.join(BINARY)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let in_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file());
    in_path.ok_or(RelayError::NotFound(dirs))
}

/// What the relay said on stderr: its error line (the one with `ERROR_PREFIX`) and whether
/// it closed stderr, which it does by exiting.
#[derive(Default)]
struct Said {
    error: Option<String>,
    closed: bool,
}

/// The relay's error line starts with this; its other stderr (GStreamer debug output, GLib
/// warnings) is passed on to ours.
pub const ERROR_PREFIX: &str = "remotemedia-srt-relay: ";

/// How long a relay whose stream ended may take to be seen exiting.
const EXIT_WAIT: Duration = Duration::from_millis(500);

/// One running relay.
pub struct Relay {
    child: Child,
    stdout: ChildStdout,
    /// Held open: the relay exits when it closes.
    _stdin: ChildStdin,
    said: Arc<(Mutex<Said>, Condvar)>,
}

impl Relay {
    pub fn spawn(uri: &str, latency_ms: u32) -> Result<Relay, RelayError> {
        let path = locate()?;
        let mut child = Command::new(&path)
            .env("REMOTEMEDIA_SRT_URI", uri)
            .env("REMOTEMEDIA_SRT_LATENCY_MS", latency_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RelayError::Spawn { path, source })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RelayError::NoPipes);
        };
        let said = Arc::new((Mutex::new(Said::default()), Condvar::new()));
        let heard = said.clone();
        let reader = std::thread::Builder::new()
            .name("srt-relay-stderr".into())
            .spawn(move || {
                let (said, changed) = &*heard;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    match line.strip_prefix(ERROR_PREFIX) {
                        Some(error) => lock(said).error = Some(error.to_owned()),
                        None => eprintln!("[srt relay] {line}"),
                    }
                }
                lock(said).closed = true;
                changed.notify_all();
            });
        if let Err(e) = reader {
            let _ = child.kill();
            let _ = child.wait();
            return Err(RelayError::Thread(e));
        }
        Ok(Relay {
            child,
            stdout,
            _stdin: stdin,
            said,
        })
    }

    /// The stream's bytes, for `fdsrc`; valid until the relay is dropped.
    pub fn fd(&self) -> RawFd {
        self.stdout.as_raw_fd()
    }

    /// Why the relay stopped: its error line and how it exited. With `ended` (its stream
    /// ended, so it is exiting) that is waited for a little; otherwise only what is known.
    pub fn outcome(&mut self, ended: bool) -> Option<String> {
        let (said, changed) = &*self.said;
        let mut heard = lock(said);
        if ended {
            let deadline = Instant::now() + EXIT_WAIT;
            while !heard.closed {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                heard = changed
                    .wait_timeout(heard, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let error = heard.error.clone();
        let closed = heard.closed;
        drop(heard);
        // Closed stderr means it is exiting: its status follows within moments.
        let deadline = Instant::now() + EXIT_WAIT;
        let mut status = self.child.try_wait().ok().flatten();
        while status.is_none() && closed && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
            status = self.child.try_wait().ok().flatten();
        }
        match (error, status) {
            (None, None) => None,
            (Some(e), None) => Some(e),
            (None, Some(s)) => Some(format!("the SRT relay exited ({s})")),
            (Some(e), Some(s)) => Some(format!("{e} (the SRT relay exited, {s})")),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
