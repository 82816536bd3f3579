//! The container engine: the Docker CLI or podman (they take the same commands), found in
//! `PATH` or named by `REMOTEMEDIA_CONTAINER_ENGINE`.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// A command of the engine that could not run or failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EngineError {
    #[error(
        "no container engine: a node with a \"docker\" block runs in a container, which needs \
         podman or docker in PATH, or REMOTEMEDIA_CONTAINER_ENGINE naming one"
    )]
    NotFound,
    #[error("REMOTEMEDIA_CONTAINER_ENGINE={0} is not an executable program")]
    Named(String),
    #[error("`{command}` failed: {cause}")]
    Failed { command: String, cause: String },
    #[error("`{command}` did not finish within {} s and was stopped", .after.as_secs())]
    TimedOut { command: String, after: Duration },
}

/// The engine's CLI.
#[derive(Clone, Debug, PartialEq)]
pub struct Engine {
    program: PathBuf,
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

/// Reads a pipe to its end on a thread of its own.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut text);
        }
        text
    })
}

impl Engine {
    /// `$REMOTEMEDIA_CONTAINER_ENGINE` (a path or a name in `PATH`), else podman, else docker.
    pub fn find() -> Result<Self, EngineError> {
        Self::find_named(std::env::var_os("REMOTEMEDIA_CONTAINER_ENGINE"))
    }

    fn find_named(named: Option<std::ffi::OsString>) -> Result<Self, EngineError> {
        if let Some(named) = named {
            let p = PathBuf::from(&named);
            let found = if p.components().count() > 1 {
                executable(&p).then_some(p)
            } else {
                in_path(&named.to_string_lossy())
            };
            return found
                .map(|program| Self { program })
                .ok_or_else(|| EngineError::Named(named.to_string_lossy().into_owned()));
        }
        ["podman", "docker"]
            .into_iter()
            .find_map(in_path)
            .map(|program| Self { program })
            .ok_or(EngineError::NotFound)
    }

    /// A command of the engine, to be completed by the caller.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.program);
        cmd.args(args);
        cmd
    }

    fn describe(&self, args: &[&str]) -> String {
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut text = name;
        for a in args.iter().take(4) {
            text.push(' ');
            text.push_str(a);
        }
        if args.len() > 4 {
            text.push_str(" ...");
        }
        text
    }

    /// Runs a command to its end (at most `timeout`) and returns its standard output; a
    /// non-zero exit is an error with the end of what it wrote to stderr.
    pub fn run(&self, args: &[&str], timeout: Duration) -> Result<String, EngineError> {
        let out = self.capture(args, timeout)?;
        if out.success {
            return Ok(out.stdout);
        }
        Err(EngineError::Failed {
            command: self.describe(args),
            cause: out.failure(),
        })
    }

    /// Runs a command to its end (at most `timeout`) and returns all it wrote, whatever its
    /// exit status.
    pub fn capture(&self, args: &[&str], timeout: Duration) -> Result<Captured, EngineError> {
        let command = self.describe(args);
        let failed = |cause: String| EngineError::Failed {
            command: command.clone(),
            cause,
        };
        let mut child = self
            .command(args)
            // Its own process group: a timeout stops what the command started too.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(e.to_string()))?;
        // Both pipes are drained on their own threads, so a chatty command never blocks on a
        // full pipe while we wait for it.
        let (out_thread, err_thread) = (drain(child.stdout.take()), drain(child.stderr.take()));
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        let waiter = thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match rx.recv_timeout(timeout) {
            Ok(status) => status.map_err(|e| failed(e.to_string()))?,
            Err(_) => {
                // SAFETY: the child has not been reaped (its waiter has not returned), so its
                // pid is still its process group's id.
                unsafe { libc::kill(-(pid as libc::pid_t), libc::SIGKILL) };
                let _ = waiter.join();
                return Err(EngineError::TimedOut {
                    command,
                    after: timeout,
                });
            }
        };
        let _ = waiter.join();
        Ok(Captured {
            success: status.success(),
            status: status.to_string(),
            stdout: out_thread.join().unwrap_or_default(),
            stderr: err_thread.join().unwrap_or_default(),
        })
    }
}

/// What a command wrote, and how it ended.
#[derive(Clone, Debug)]
pub struct Captured {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Captured {
    /// The exit status and the last lines of stderr (of stdout when stderr is empty).
    pub fn failure(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(12)..].join("\n");
        if tail.is_empty() {
            self.status.clone()
        } else {
            format!("{}: {tail}", self.status)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_engine_that_does_not_exist_is_refused_by_name() {
        let found = Engine::find_named(Some("/nonexistent/podman".into()));
        assert_eq!(found, Err(EngineError::Named("/nonexistent/podman".into())));
    }

    #[test]
    fn a_command_reports_its_status_and_stderr_or_its_timeout() {
        let sh = Engine {
            program: "/bin/sh".into(),
        };
        assert_eq!(
            sh.run(&["-c", "echo hi"], Duration::from_secs(5)).unwrap(),
            "hi\n"
        );
        let err = sh
            .run(&["-c", "echo nope >&2; exit 3"], Duration::from_secs(5))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`sh -c echo nope >&2; exit 3` failed: exit status: 3: nope"
        );
        let err = sh
            .run(&["-c", "sleep 5"], Duration::from_millis(100))
            .unwrap_err();
        assert!(matches!(err, EngineError::TimedOut { .. }), "{err}");
    }
}
