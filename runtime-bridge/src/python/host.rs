//! The host side of a Python node: starts the worker process, waits for it to report ready,
//! sends it inputs and collects its outputs, and notices when it raises, dies or hangs.
//!
//! The worker's stdin is a pipe that the host never writes: when the host process ends, even
//! by SIGKILL, the kernel closes it and the worker sees end of file and exits. So no worker
//! outlives its host. A watcher thread waits for the worker's exit and wakes the host's
//! listener, so every wait on the worker is event-driven, never a poll.

use crate::sync::lock;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::PythonNodeConfig;
use super::channel::{self, Channel, ChannelError, Kind, Side};
use super::container::{self, Container};
use crate::data::{Packet, RuntimeData};
use crate::node::{Emitter, Node, NodeError};
use crate::wire;

/// How long a worker may take to exit after it was asked to.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Lines of a worker's stderr kept for error reports.
const STDERR_TAIL: usize = 40;

/// Process-wide settings of the workers a host starts.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub python: std::path::PathBuf,
    /// Prefix of every shared-memory file (see `channel::config`).
    pub prefix: String,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            python: super::python_executable(),
            prefix: std::env::var("REMOTEMEDIA_SHM_PREFIX").unwrap_or_else(|_| "rm_".into()),
        }
    }
}

/// How a call to the worker went wrong.
#[derive(Debug)]
enum Failure {
    /// The node raised; the worker is still alive.
    Raised(String),
    /// The worker process ended.
    Exited(String),
    /// No answer within the timeout; the worker was killed.
    Hung(Duration),
    /// The channel itself failed.
    Transport(String),
}

impl Failure {
    fn worker_alive(&self) -> bool {
        matches!(self, Self::Raised(_))
    }
}

impl From<ChannelError> for Failure {
    fn from(e: ChannelError) -> Self {
        Self::Transport(e.to_string())
    }
}

/// One running worker process and its channel.
struct Worker {
    pid: libc::pid_t,
    /// Never written; dropping it tells the worker that the host is gone.
    stdin: Option<ChildStdin>,
    exit: Arc<Mutex<Option<ExitStatus>>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    threads: Vec<JoinHandle<()>>,
    /// Wrapped so it can be dropped before the dead-node cleanup in `Drop`.
    channel: Option<Channel>,
    /// The channel's name; a worker in a container is found by it.
    name: String,
    prefix: String,
    /// The container the worker runs in; its workers keep it running.
    container: Option<Arc<Container>>,
    /// The container's OOM kills when the worker started (with a memory limit): a kill after
    /// that is this worker's when it ends by SIGKILL.
    oom_before: Option<u64>,
}

static INSTANCE: AtomicU64 = AtomicU64::new(0);

fn exit_text(status: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGSEGV => " (SIGSEGV, segmentation fault)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGTERM => " (SIGTERM)",
                _ => "",
            };
            format!("was killed by signal {sig}{name}")
        }
        _ => "ended".into(),
    }
}

/// The directories a container must see for the worker to find its module: the search path,
/// and the directory of a module named by its absolute path.
fn module_dirs(cfg: &PythonNodeConfig) -> Vec<std::path::PathBuf> {
    let mut dirs = cfg.search_path.clone();
    let file = cfg
        .module
        .as_deref()
        .map(std::path::Path::new)
        .filter(|p| p.is_absolute());
    if let Some(parent) = file.and_then(std::path::Path::parent)
        && !dirs.iter().any(|d| d == parent)
    {
        dirs.push(parent.to_path_buf());
    }
    dirs
}

/// Killed by SIGKILL: directly, or as a container engine's `exec` reports it (128 + 9).
fn killed(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL) || status.code() == Some(128 + libc::SIGKILL)
}

impl Worker {
    fn spawn(
        node_id: &str,
        cfg: &PythonNodeConfig,
        opts: &WorkerOptions,
    ) -> Result<Self, NodeError> {
        let safe_id: String = node_id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(40)
            .collect();
        let name = format!(
            "remotemedia/{}/{}/{safe_id}",
            std::process::id(),
            INSTANCE.fetch_add(1, Ordering::Relaxed)
        );
        let channel_failed = |e: ChannelError| NodeError::Failed(e.to_string());
        let channel = Channel::open(&name, &opts.prefix, Side::Host).map_err(channel_failed)?;
        let waker = channel.self_waker(Side::Host).map_err(channel_failed)?;
        let params = Value::Object(cfg.params.clone()).to_string();
        let container = match &cfg.container {
            Some(spec) => Some(container::acquire(spec, &module_dirs(cfg))?),
            None => None,
        };
        let mut cmd = match &container {
            Some(c) => {
                let mut cmd = c.exec_command();
                cmd.arg("python3");
                cmd
            }
            None => {
                let mut cmd = Command::new(&opts.python);
                cmd.env("PYTHONUNBUFFERED", "1")
                    .env("PYTHONFAULTHANDLER", "1");
                cmd
            }
        };
        cmd.args(["-m", "remotemedia.worker", "--channel", &name])
            .args(["--prefix", &opts.prefix, "--node-id", node_id])
            .args(["--node-type", &cfg.node_type, "--params", &params]);
        if let Some(module) = &cfg.module {
            cmd.args(["--module", module]);
        }
        for dir in &cfg.search_path {
            cmd.arg("--search-path").arg(dir);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        let mut child: Child = cmd.spawn().map_err(|e| match &container {
            Some(c) => NodeError::Config(format!(
                "cannot start the Python worker in container {}: {e}",
                c.name()
            )),
            None => NodeError::Config(format!(
                "cannot start the Python worker {}: {e}; set REMOTEMEDIA_PYTHON to an \
                 interpreter that can import remotemedia",
                opts.python.display()
            )),
        })?;
        let pid = child.id() as libc::pid_t;
        let oom_before = container.as_ref().and_then(|c| c.oom_kills());
        let stdin = child.stdin.take();
        let stderr = child.stderr.take();
        let exit = Arc::new(Mutex::new(None));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let mut threads = Vec::new();
        let no_thread =
            |e: std::io::Error| NodeError::Failed(format!("cannot start a thread: {e}"));
        if let Some(stderr) = stderr {
            let tail = Arc::clone(&stderr_tail);
            let label = node_id.to_string();
            threads.push(
                thread::Builder::new()
                    .name("rm-py-stderr".into())
                    .spawn(move || {
                        // Forwarded, so print() debugging and warnings show; kept for reports.
                        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                            eprintln!("[python node {label}] {line}");
                            let mut t = lock(&tail);
                            if t.len() == STDERR_TAIL {
                                t.pop_front();
                            }
                            t.push_back(line);
                        }
                    })
                    .map_err(no_thread)?,
            );
        }
        let exit_slot = Arc::clone(&exit);
        threads.push(
            thread::Builder::new()
                .name("rm-py-watch".into())
                .spawn(move || {
                    let status = child.wait();
                    if let Ok(status) = status {
                        *lock(&exit_slot) = Some(status);
                    }
                    let _ = waker.notify();
                })
                .map_err(no_thread)?,
        );
        Ok(Self {
            pid,
            stdin,
            exit,
            stderr_tail,
            threads,
            channel: Some(channel),
            name,
            prefix: opts.prefix.clone(),
            container,
            oom_before,
        })
    }

    fn channel(&self) -> &Channel {
        self.channel.as_ref().expect("channel lives until drop")
    }

    fn exited(&self) -> Option<ExitStatus> {
        *lock(&self.exit)
    }

    fn kill(&mut self) {
        if self.exited().is_none() {
            // SAFETY: plain syscall on the pid of our own child, which the watcher thread
            // has not reaped yet (it sets `exit` when it does).
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
        }
        // In a container the child is the engine's `exec` client; the worker itself is
        // killed inside (after the client, whose pid may be reused once it is reaped).
        if let Some(c) = &self.container {
            c.kill_worker(&self.name);
        }
    }

    /// The worker's exit, with the end of what it wrote to stderr (the Python traceback,
    /// or faulthandler's report of a crash).
    fn exit_report(&self, status: &ExitStatus) -> String {
        // The stderr thread may still be reading the last lines.
        thread::sleep(Duration::from_millis(50));
        let oom = self
            .container
            .as_ref()
            .filter(|_| killed(status))
            .and_then(|c| c.out_of_memory_since(self.oom_before?));
        let tail = lock(&self.stderr_tail);
        let mut text = match oom {
            Some(limit) => format!(
                "the Python worker ran out of memory (limit {limit} MB): the kernel killed it"
            ),
            None => format!("the Python worker {}", exit_text(status)),
        };
        if !tail.is_empty() {
            text.push_str("; its last output:\n");
            text.push_str(&tail.iter().cloned().collect::<Vec<_>>().join("\n"));
        }
        text
    }

    /// Sends a request and collects what the worker answers until it says done.
    fn call(
        &mut self,
        kind: Kind,
        packet: Option<&Packet>,
        out: &mut Emitter,
        timeout: Duration,
    ) -> Result<(), Failure> {
        let sent = match packet {
            Some(p) => self.channel().send_packet(kind, p, None),
            None => self.channel().send_bytes(kind, &[]),
        };
        sent?;
        self.collect(out, timeout, packet.map(|p| &p.data))
            .map(|_| ())
    }

    /// Takes messages until `Done` or `Ready` (returned), an error, an exit or the timeout.
    /// `input` is what the request sent: an output may refer to its payload instead of
    /// carrying it.
    fn collect(
        &mut self,
        out: &mut Emitter,
        timeout: Duration,
        input: Option<&RuntimeData>,
    ) -> Result<Kind, Failure> {
        let deadline = Instant::now() + timeout;
        loop {
            // Read before draining: everything a worker sent before it ended is taken below.
            let exited = self.exited();
            while let Some((kind, sample)) = self.channel().try_recv()? {
                let body = channel::body(&sample);
                match kind {
                    // A Done with a body carries the request's last output.
                    Kind::Output | Kind::Done if !body.is_empty() => {
                        let packet = wire::decode_reply(body, input)
                            .map_err(|e| Failure::Transport(format!("the worker sent {e}")))?;
                        out.emit_at(packet.data, packet.pts);
                        if kind == Kind::Done {
                            return Ok(kind);
                        }
                    }
                    Kind::Done | Kind::Ready => return Ok(kind),
                    Kind::Error => return Err(Failure::Raised(error_text(body))),
                    other => {
                        return Err(Failure::Transport(format!(
                            "unexpected {other:?} message from the worker"
                        )));
                    }
                }
            }
            if let Some(status) = exited {
                return Err(Failure::Exited(self.exit_report(&status)));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.kill();
                return Err(Failure::Hung(timeout));
            }
            self.channel().wait(Some(left))?;
        }
    }
}

/// An error report's JSON body as text: the message, then the Python traceback.
fn error_text(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let message = v["message"].as_str().unwrap_or("failed");
            match v["traceback"].as_str().filter(|t| !t.is_empty()) {
                Some(tb) => format!("{message}\n{}", tb.trim_end()),
                None => message.to_string(),
            }
        }
        Err(_) => String::from_utf8_lossy(body).into_owned(),
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.channel().send_bytes(Kind::Stop, &[]);
            let deadline = Instant::now() + STOP_GRACE;
            while self.exited().is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    self.kill();
                    break;
                }
                let _ = self.channel().wait(Some(left));
            }
        }
        self.stdin.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.channel.take();
        // A worker that was killed or crashed could not remove its shared memory; its host
        // does (cheap when there is nothing to remove).
        let _ = channel::cleanup_dead(&self.prefix);
    }
}

/// A Python node as the graph sees it: a `Node` whose work happens in a worker process.
pub struct PythonNode {
    node_id: String,
    cfg: PythonNodeConfig,
    opts: WorkerOptions,
    worker: Option<Worker>,
    restarts: u32,
}

impl PythonNode {
    /// Starts the worker; `wait_ready` completes the start. Separate so a session can start
    /// every worker first and then wait for all of them at once.
    pub fn spawn(
        node_id: &str,
        cfg: &PythonNodeConfig,
        opts: &WorkerOptions,
    ) -> Result<Self, NodeError> {
        let worker = Worker::spawn(node_id, cfg, opts)?;
        tracing::info!(node = node_id, node_type = %cfg.node_type, "python worker started");
        Ok(Self {
            node_id: node_id.to_string(),
            cfg: cfg.clone(),
            opts: opts.clone(),
            worker: Some(worker),
            restarts: 0,
        })
    }

    /// Waits until the worker has loaded the module and the node's `initialize()` finished.
    /// A missing module or class, rejected params or a failing `initialize()` is a `Config`
    /// error.
    pub fn wait_ready(&mut self) -> Result<(), NodeError> {
        let timeout = self.cfg.init_timeout;
        let worker = self
            .worker
            .as_mut()
            .ok_or_else(|| NodeError::Gone("the worker is not running".into()))?;
        let mut sink = Emitter::default();
        match worker.collect(&mut sink, timeout, None) {
            Ok(Kind::Ready) => Ok(()),
            Ok(other) => Err(NodeError::Failed(format!(
                "the worker sent {other:?} before it was ready"
            ))),
            Err(Failure::Raised(text)) => Err(NodeError::Config(text)),
            Err(Failure::Exited(text)) => {
                Err(NodeError::Gone(format!("{text} before it was ready")))
            }
            Err(Failure::Hung(t)) => Err(NodeError::Failed(format!(
                "the Python worker was not ready within {} ms (init_timeout_ms) and was stopped",
                t.as_millis()
            ))),
            Err(Failure::Transport(text)) => Err(NodeError::Failed(text)),
        }
    }

    /// The worker's process id (tests watch it).
    pub fn worker_pid(&self) -> Option<u32> {
        self.worker.as_ref().map(|w| w.pid as u32)
    }

    /// The failure as a node error: `Gone` when the worker ended, `Failed` otherwise.
    fn describe(&self, failure: &Failure) -> NodeError {
        let t = &self.cfg.node_type;
        match failure {
            Failure::Raised(text) => NodeError::Failed(format!("{t} raised {text}")),
            Failure::Exited(text) => NodeError::Gone(format!("{t}: {text}")),
            Failure::Hung(d) => NodeError::Failed(format!(
                "{t} did not answer within {} ms (timeout_ms); its worker was killed",
                d.as_millis()
            )),
            Failure::Transport(text) => NodeError::Failed(format!("{t}: {text}")),
        }
    }

    /// Runs one request; on failure applies the restart policy: with restarts left, the
    /// failure becomes a warning, a dead or hung worker is replaced, and the graph goes on.
    fn request(
        &mut self,
        kind: Kind,
        packet: Option<&Packet>,
        out: &mut Emitter,
    ) -> Result<(), NodeError> {
        let timeout = self.cfg.timeout;
        let worker = self
            .worker
            .as_mut()
            .ok_or_else(|| NodeError::Gone("the worker could not be restarted".into()))?;
        let Err(failure) = worker.call(kind, packet, out, timeout) else {
            return Ok(());
        };
        let error = self.describe(&failure);
        let Some(policy) = self.cfg.restart.clone() else {
            return Err(error);
        };
        if self.restarts >= policy.max_restarts {
            let restarts = self.restarts;
            return Err(error.map_message(|text| {
                format!("{text} (after {restarts} restart(s), the most the restart policy allows)")
            }));
        }
        let backoff = policy.backoff.saturating_mul(1 << self.restarts.min(16));
        self.restarts += 1;
        if failure.worker_alive() {
            out.warn(format!("{error} (the input was dropped; the node goes on)"));
            return Ok(());
        }
        // The container outlives its dead worker: the new one starts in it (when it still runs).
        let container = self.worker.take().and_then(|w| w.container.clone());
        thread::sleep(backoff);
        let restarted = Worker::spawn(&self.node_id, &self.cfg, &self.opts).and_then(|w| {
            self.worker = Some(w);
            self.wait_ready()
        });
        drop(container);
        match restarted {
            Ok(()) => {
                tracing::info!(node = %self.node_id, restart = self.restarts, "python worker restarted");
                out.warn(format!(
                    "{error}; restarted it (restart {} of {}), the input was dropped",
                    self.restarts, policy.max_restarts
                ));
                Ok(())
            }
            // The restart's own failure says what kind of error this is (a module gone: Config).
            Err(e) => Err(e.map_message(|m| format!("{error}; restarting it failed: {m}"))),
        }
    }
}

impl Node for PythonNode {
    fn process(&mut self, input: Packet, out: &mut Emitter) -> Result<(), NodeError> {
        self.request(Kind::Process, Some(&input), out)
    }

    fn finish(&mut self, out: &mut Emitter) -> Result<(), NodeError> {
        self.request(Kind::Finish, None, out)
    }

    fn reset(&mut self) {
        let mut sink = Emitter::default();
        if let Err(e) = self.request(Kind::Reset, None, &mut sink) {
            tracing::warn!(node = %self.node_id, "reset failed: {e}");
        }
    }
}
