//! Running containers. Sessions of one process whose container nodes have the same image,
//! limits and mounts share one container (an `Arc`, counted by the sessions' workers); the last
//! one out removes it. Each worker is a process `exec`ed in it.
//!
//! No container outlives the process that started it: the process holds a lock on a file in a
//! directory the containers see, and each container's main process waits for that lock, so
//! when the host ends in any way (even SIGKILL) the kernel releases it and the container stops
//! and removes itself. A janitor, run once per process before its first container, removes
//! what an earlier process left anyway (an engine that was down, a machine that was reset).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::engine::{Engine, EngineError};
use super::spec::{ContainerSpec, digest};
use super::{ContainerError, image};
use crate::sync::lock;

/// Commands that start, inspect or stop a container.
const QUICK: Duration = Duration::from_secs(60);
/// The label carrying the host process (`<pid>-<start time>`) on every container.
const HOST_LABEL: &str = "remotemedia.host";
/// Where the package is mounted in the container (on `PYTHONPATH`).
const PACKAGE_MOUNT: &str = "/opt/remotemedia/remotemedia";

/// Kills, inside the container, the worker whose command line names the channel (argv[1]).
const KILL_WORKER: &str = "import os, sys\n\
for pid in os.listdir('/proc'):\n    \
    try:\n        \
        args = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')\n    \
    except OSError:\n        \
        continue\n    \
    if b'remotemedia.worker' in args and sys.argv[1].encode() in args:\n        \
        try:\n            \
            os.kill(int(pid), 9)\n        \
        except ProcessLookupError:\n            \
            pass\n";

/// A running container for container nodes.
#[derive(Debug)]
pub struct Container {
    engine: Engine,
    name: String,
    memory_mb: Option<u64>,
    /// Set when the container stopped answering; the next worker gets a new one.
    broken: AtomicBool,
}

/// This process as containers know it: `<pid>-<start time in clock ticks>`, so a pid reused by
/// a later process does not keep an old container alive.
fn host_id(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; fields count from after its ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let start = rest.split_whitespace().nth(19)?;
    Some(format!("{pid}-{start}"))
}

/// The directory shared with every container: the host's lock files (one per user).
fn shared_dir() -> PathBuf {
    // SAFETY: getuid cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("remotemedia-containers-{uid}"))
}

fn lock_path(host: &str) -> PathBuf {
    shared_dir().join(format!("host-{host}.lock"))
}

/// The lock this process holds for its whole life; its file, for containers to wait on.
fn host_lock() -> Result<&'static (PathBuf, String), ContainerError> {
    static LOCK: OnceLock<Result<(File, PathBuf, String), String>> = OnceLock::new();
    let held = LOCK.get_or_init(|| {
        let id = host_id(std::process::id()).ok_or("cannot read /proc/self/stat")?;
        let dir = shared_dir();
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&dir)
            .map_err(|e| e.to_string())?;
        let path = lock_path(&id);
        let file = File::create(&path).map_err(|e| e.to_string())?;
        // SAFETY: flock on a descriptor this process owns and keeps open until it exits.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok((file, path, id))
    });
    static VIEW: OnceLock<(PathBuf, String)> = OnceLock::new();
    match held {
        Ok((_, path, id)) => Ok(VIEW.get_or_init(|| (path.clone(), id.clone()))),
        Err(cause) => Err(ContainerError::SharedDir {
            path: shared_dir().display().to_string(),
            cause: cause.clone(),
        }),
    }
}

/// Whether the host `<pid>-<start>` still runs: it holds the lock on its file for its life
/// (the test that holds in any pid namespace); without a file, whether /proc shows it.
fn alive(host: &str) -> bool {
    if let Ok(file) = File::open(lock_path(host)) {
        // SAFETY: flock on a descriptor this function owns; closing it releases the lock.
        let rc = unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&file),
                libc::LOCK_SH | libc::LOCK_NB,
            )
        };
        return rc != 0;
    }
    host.split_once('-')
        .and_then(|(pid, _)| pid.parse::<u32>().ok())
        .and_then(host_id)
        .is_some_and(|now| now == host)
}

/// The host a container's name carries (`remotemedia-<pid>-<start>-...`).
fn host_of(name: &str) -> Option<String> {
    let mut parts = name.strip_prefix("remotemedia-")?.splitn(3, '-');
    Some(format!("{}-{}", parts.next()?, parts.next()?))
}

/// Removes the containers and lock files of processes that are gone.
fn janitor(engine: &Engine) {
    let filter = format!("label={HOST_LABEL}");
    match engine.run(
        &["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        QUICK,
    ) {
        Ok(out) => {
            for name in out.lines().map(str::trim) {
                if host_of(name).is_some_and(|host| !alive(&host)) {
                    tracing::info!(container = name, "removing a container its host left");
                    remove(engine, name);
                }
            }
        }
        Err(e) => tracing::warn!("the container janitor could not list containers: {e}"),
    }
    let Ok(entries) = std::fs::read_dir(shared_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let host = name
            .strip_prefix("host-")
            .and_then(|n| n.strip_suffix(".lock"));
        if host.is_some_and(|h| !alive(h)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn remove(engine: &Engine, name: &str) {
    // `kill` first: the main process ignores SIGTERM (it is pid 1), and `rm -f` would wait.
    let _ = engine.run(&["kill", name], QUICK);
    let _ = engine.run(&["rm", "-f", name], QUICK);
}

/// Where the `remotemedia` package the workers import lives (mounted into containers, so a
/// container's worker is always the host's own version of the channel and wire format).
fn package_dir() -> Result<PathBuf, ContainerError> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| {
        let python = super::super::python_executable();
        let out = Command::new(&python)
            .args([
                "-c",
                "import importlib.util as u; print(u.find_spec('remotemedia').submodule_search_locations[0])",
            ])
            .output()
            .map_err(|e| format!("{}: {e}", python.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} cannot import remotemedia: {}",
                python.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    })
    .clone()
    .map_err(ContainerError::Package)
}

type Slot = Arc<Mutex<Weak<Container>>>;

static POOL: LazyLock<Mutex<HashMap<String, Slot>>> = LazyLock::new(Default::default);
static JANITOR: OnceLock<()> = OnceLock::new();
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// The container for a node with this spec whose modules are in `search_path`: the one this
/// process already runs for the same image, limits and mounts, else a new one (building the
/// image first when this spec has none yet).
pub fn acquire(
    spec: &ContainerSpec,
    search_path: &[PathBuf],
) -> Result<Arc<Container>, ContainerError> {
    let engine = Engine::find()?;
    JANITOR.get_or_init(|| janitor(&engine));
    let base = image::base(&engine, spec.python_version.as_deref())?;
    let image = image::for_packages(&engine, &base, &spec.sorted_packages())?;
    let memory = spec.memory_mb.map(|m| m.to_string()).unwrap_or_default();
    let cpus = spec.cpu_cores.map(|c| c.to_string()).unwrap_or_default();
    let dirs: Vec<String> = search_path
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    let key = digest(
        [image.as_str(), memory.as_str(), cpus.as_str()]
            .into_iter()
            .chain(dirs.iter().map(String::as_str)),
    );
    let slot = Arc::clone(lock(&POOL).entry(key.clone()).or_default());
    // Held while a container starts, so sessions starting together share the one they start.
    let mut shared = lock(&slot);
    if let Some(c) = shared.upgrade().filter(|c| c.usable()) {
        return Ok(c);
    }
    let c = Arc::new(Container::start(engine, spec, &image, &key, search_path)?);
    *shared = Arc::downgrade(&c);
    drop(shared);
    Ok(c)
}

impl Container {
    fn start(
        engine: Engine,
        spec: &ContainerSpec,
        image: &str,
        key: &str,
        search_path: &[PathBuf],
    ) -> Result<Self, ContainerError> {
        let (lock_file, host) = host_lock()?;
        let package = package_dir()?;
        let ipc_root = super::super::channel::ipc_root();
        std::fs::create_dir_all(&ipc_root).map_err(|e| ContainerError::SharedDir {
            path: ipc_root.display().to_string(),
            cause: e.to_string(),
        })?;
        let name = format!(
            "remotemedia-{host}-{key}-{}",
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        let bind = |from: &Path, to: &Path, ro: bool| {
            format!(
                "{}:{}{}",
                from.display(),
                to.display(),
                if ro { ":ro" } else { "" }
            )
        };
        let label = format!("{HOST_LABEL}={host}");
        // `--init`: a pid 1 that reaps the workers killed inside (the lock waiter does not).
        let mut args: Vec<String> = [
            "run", "-d", "--rm", "--init", "--name", &name, "--label", &label,
        ]
        .map(String::from)
        .into();
        // The worker has the network its host has, as a local worker would.
        args.extend(["--network", "host"].map(String::from));
        // No SELinux relabelling: the host's /dev/shm and iceoryx2 directory are shared as they
        // are (a relabel would be refused, or would change their label for the host too).
        args.extend(["--security-opt", "label=disable"].map(String::from));
        if let Some(mb) = spec.memory_mb {
            // No swap beyond the limit: past it the kernel kills.
            args.extend(["--memory".into(), format!("{mb}m")]);
            args.extend(["--memory-swap".into(), format!("{mb}m")]);
        }
        if let Some(cpus) = spec.cpu_cores {
            args.extend(["--cpus".into(), cpus.to_string()]);
        }
        let shm = Path::new("/dev/shm");
        let shared = shared_dir();
        for v in [
            bind(shm, shm, false),
            bind(&ipc_root, &ipc_root, false),
            bind(&shared, &shared, true),
            bind(&package, Path::new(PACKAGE_MOUNT), true),
        ] {
            args.extend(["-v".into(), v]);
        }
        for dir in search_path {
            args.extend(["-v".into(), bind(dir, dir, true)]);
        }
        let package_parent = Path::new(PACKAGE_MOUNT)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        args.extend(["-e".into(), format!("PYTHONPATH={package_parent}")]);
        // A node can tell which container it runs in (and tests, which one is shared).
        args.extend(["-e".into(), format!("REMOTEMEDIA_CONTAINER={name}")]);
        args.push(image.to_string());
        // The main process waits for the host's lock: it gets it when the host is gone.
        args.extend([
            "flock".into(),
            lock_file.display().to_string(),
            "true".into(),
        ]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Err(e) = engine.run(&argv, QUICK) {
            // It may exist although the command failed (a timeout after the start).
            remove(&engine, &name);
            return Err(e.into());
        }
        tracing::info!(container = %name, %image, "container for python nodes started");
        Ok(Self {
            engine,
            name,
            memory_mb: spec.memory_mb,
            broken: AtomicBool::new(false),
        })
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
            && self
                .engine
                .run(
                    &["inspect", "--format", "{{.State.Running}}", &self.name],
                    QUICK,
                )
                .is_ok_and(|s| s.trim() == "true")
    }

    /// `exec -i <container>` with the environment a worker needs; the caller appends the
    /// worker's command line.
    pub fn exec_command(&self) -> Command {
        self.engine.command([
            "exec",
            "-i",
            "-e",
            "PYTHONUNBUFFERED=1",
            "-e",
            "PYTHONFAULTHANDLER=1",
            &self.name,
        ])
    }

    fn running(&self) -> bool {
        self.engine
            .run(
                &["inspect", "--format", "{{.State.Running}}", &self.name],
                QUICK,
            )
            .is_ok_and(|s| s.trim() == "true")
    }

    /// Kills the worker serving `channel` inside the container. When the container does not
    /// answer (or has stopped), it is declared broken and removed: the next worker starts in a
    /// new one.
    pub fn kill_worker(&self, channel: &str) {
        let killed = self.engine.run(
            &["exec", &self.name, "python3", "-c", KILL_WORKER, channel],
            QUICK,
        );
        let Err(e) = killed else {
            return;
        };
        if matches!(e, EngineError::TimedOut { .. }) || !self.running() {
            tracing::warn!(container = %self.name, "the container does not answer, replacing it: {e}");
            self.broken.store(true, Ordering::Release);
            remove(&self.engine, &self.name);
        } else {
            tracing::warn!(container = %self.name, "cannot kill a worker in the container: {e}");
        }
    }

    /// The kernel's OOM kills in the container so far (with a memory limit).
    pub fn oom_kills(&self) -> Option<u64> {
        self.memory_mb?;
        let read = self.engine.run(
            &[
                "exec",
                &self.name,
                "sh",
                "-c",
                "cat /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control 2>/dev/null; true",
            ],
            QUICK,
        );
        oom_kills(&read.ok()?)
    }

    /// The memory limit, when the kernel killed a process of the container for memory since
    /// it counted `before` kills.
    pub fn out_of_memory_since(&self, before: u64) -> Option<u64> {
        let limit = self.memory_mb?;
        (self.oom_kills()? > before).then_some(limit)
    }
}

/// The `oom_kill` counter of cgroup v2's `memory.events` or v1's `memory.oom_control`.
fn oom_kills(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

impl Drop for Container {
    fn drop(&mut self) {
        remove(&self.engine, &self.name);
        tracing::info!(container = %self.name, "container for python nodes removed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_this_process_only_while_it_lives() {
        let me = host_id(std::process::id()).unwrap();
        assert!(alive(&me));
        let (pid, start) = me.split_once('-').unwrap();
        let later: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(
            !alive(&format!("{pid}-{later}")),
            "a reused pid is another host"
        );
        assert!(!alive("999999999-1"));
        assert!(!alive("garbage"));
        assert_eq!(
            host_of("remotemedia-12-3456-0123456789abcdef-0").as_deref(),
            Some("12-3456")
        );
        assert_eq!(host_of("someone-else"), None);
    }

    #[test]
    fn oom_kills_are_read_from_either_cgroup_version() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n"),
            Some(2)
        );
        assert_eq!(
            oom_kills("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"),
            Some(1)
        );
        assert_eq!(oom_kills(""), None);
    }
}
