//! SRT sources run in a child process, `remotemedia-srt-relay` (see that binary for why); the
//! element reads the stream's bytes from its stdout through `fdsrc`. The child ends when its
//! relay is dropped (killed and reaped) or when this process dies (its stdin closes).

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

const BINARY: &str = "remotemedia-srt-relay";

static PLUGIN_DIR: OnceLock<PathBuf> = OnceLock::new();

/// Where the plugin was loaded from: the relay is looked for next to it first.
pub fn set_plugin_file(file: Option<PathBuf>) {
    if let Some(dir) = file.as_deref().and_then(Path::parent) {
        let _ = PLUGIN_DIR.set(dir.to_owned());
    }
}

/// The relay binary: `REMOTEMEDIA_SRT_RELAY`, else next to the plugin, next to this program
/// (or one folder up, as cargo lays out tests), else in `PATH`.
pub fn locate() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("REMOTEMEDIA_SRT_RELAY") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "REMOTEMEDIA_SRT_RELAY={} is not a file",
                path.display()
            ))
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
    dirs.extend(
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths),
    );
    dirs.iter()
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "SRT is received by the helper program {BINARY}, which is not next to the plugin, \
                 next to this program or in PATH (cargo build -p gst-plugin-remotemedia builds it; \
                 or set REMOTEMEDIA_SRT_RELAY)"
            )
        })
}

/// One running relay.
pub struct Relay {
    child: Child,
    stdout: ChildStdout,
    /// Held open: the relay exits when it closes.
    _stdin: ChildStdin,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Relay {
    pub fn spawn(uri: &str, latency_ms: u32) -> Result<Relay, String> {
        let path = locate()?;
        let mut child = Command::new(&path)
            .env("REMOTEMEDIA_SRT_URI", uri)
            .env("REMOTEMEDIA_SRT_LATENCY_MS", latency_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{BINARY} started without its pipes"));
        };
        let last_error = Arc::new(Mutex::new(None));
        let errors = last_error.clone();
        std::thread::Builder::new()
            .name("srt-relay-stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if !line.trim().is_empty() {
                        *errors.lock().unwrap_or_else(PoisonError::into_inner) = Some(line);
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Relay {
            child,
            stdout,
            _stdin: stdin,
            last_error,
        })
    }

    /// The stream's bytes, for `fdsrc`; valid until the relay is dropped.
    pub fn fd(&self) -> RawFd {
        self.stdout.as_raw_fd()
    }

    /// Why the relay stopped, if it did: its error line and how it exited. Called when its
    /// stream ended, which a relay that is going away does just before it is gone: that is
    /// waited for a little.
    pub fn outcome(&mut self) -> Option<String> {
        let mut status = None;
        for _ in 0..10 {
            status = self.child.try_wait().ok().flatten();
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let error = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
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
