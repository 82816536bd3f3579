//! The shared-memory channel between the host and one Python worker, over iceoryx2.
//!
//! Each node instance gets its own pair of publish-subscribe services (`<name>/to_worker`,
//! `<name>/to_host`) carrying byte messages, and a pair of event services that wake the
//! other side. Both sides block on their listener while nothing arrives: an idle worker
//! sleeps in the kernel and costs no CPU. The host creates the services; the worker opens them.
//!
//! A message is an 8-byte frame header (its kind) followed by a body: a wire-encoded packet
//! (`crate::wire`) for data, UTF-8 JSON for ready and error reports. The header keeps the
//! packet 8-byte aligned, so audio and tensor payloads can be viewed in place by numpy.

use std::time::Duration;

use iceoryx2::port::listener::{Listener, ListenerWaitError};
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;
use iceoryx2::sample::Sample;

use crate::data::Packet;
use crate::wire;

/// Thread-safe ports: a host node's channel is built on one thread and used on another.
pub type Ipc = iceoryx2::service::ipc_threadsafe::Service;

/// A received message; its body stays in shared memory until it is dropped.
pub type Received = Sample<Ipc, [u8], ()>;

/// Bytes before the body of every message.
pub const HEADER_LEN: usize = 8;

/// Messages a subscriber may hold at once without reading them.
const BUFFER: usize = 16;
/// Received messages one side may keep alive at once (a Python node holding input arrays).
pub const MAX_BORROWED: usize = 32;
/// First size of a message slot; bigger messages grow the segment (power of two).
const INITIAL_SLOT: usize = 16 * 1024;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// host -> worker: process this packet.
    Process = b'P',
    /// host -> worker: end of stream, emit what you hold.
    Finish = b'F',
    /// host -> worker: forget state (flush).
    Reset = b'R',
    /// host -> worker: exit now.
    Stop = b'S',
    /// worker -> host: initialized (body: JSON about the node).
    Ready = b'Y',
    /// worker -> host: one output packet of the current request.
    Output = b'O',
    /// worker -> host: the current request is complete; a body is its last output packet.
    Done = b'D',
    /// worker -> host: the current request failed (body: JSON message and traceback).
    Error = b'E',
}

impl Kind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            b'P' => Self::Process,
            b'F' => Self::Finish,
            b'R' => Self::Reset,
            b'S' => Self::Stop,
            b'Y' => Self::Ready,
            b'O' => Self::Output,
            b'D' => Self::Done,
            b'E' => Self::Error,
            _ => return None,
        })
    }
}

/// A step of the channel that failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("iceoryx2: cannot {step} ({name:?}): {cause}")]
pub struct ChannelError {
    /// What was being done ("create a publisher", "send to the other process").
    pub step: &'static str,
    /// What it concerns: the channel's name, a service name or the shared-memory prefix.
    pub name: String,
    /// iceoryx2's error, or what was wrong with a message.
    pub cause: String,
}

/// `map_err` for an iceoryx2 call: the step and name, with iceoryx2's error as the cause.
fn failed<E: std::fmt::Debug>(step: &'static str, name: &str) -> impl FnOnce(E) -> ChannelError {
    move |e| ChannelError {
        step,
        name: name.to_owned(),
        cause: format!("{e:?}"),
    }
}

/// Which end of the channel this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Host,
    Worker,
}

/// The iceoryx2 configuration shared by both sides: every file they create starts with
/// `prefix`, so a test can check that none is left behind.
pub fn config(prefix: &str) -> Result<Config, ChannelError> {
    let mut config = Config::default();
    config.global.prefix =
        FileName::new(prefix.as_bytes()).map_err(failed("use the shared-memory prefix", prefix))?;
    Ok(config)
}

/// The directory of iceoryx2's static files (node and service descriptions), which a
/// worker in a container must see as the host does.
pub fn ipc_root() -> std::path::PathBuf {
    std::path::PathBuf::from(Config::default().global.root_path().to_string())
}

/// An iceoryx2 node under `prefix` that leaves signal handling to the application.
fn new_node(prefix: &str) -> Result<Node<Ipc>, ChannelError> {
    NodeBuilder::new()
        .config(&config(prefix)?)
        .signal_handling_mode(SignalHandlingMode::Disabled)
        .create::<Ipc>()
        .map_err(failed("create a node", prefix))
}

/// Wakes the listener of `side` once, from a node of its own that is gone when this returns
/// (a worker's stdin watcher, which may outlive nothing it creates).
pub fn wake(name: &str, prefix: &str, side: Side) -> Result<(), ChannelError> {
    let node = new_node(prefix)?;
    let notifier = open_waker(&node, name, side)?;
    notifier
        .notify()
        .map(|_| ())
        .map_err(failed("wake the listener", name))
}

fn open_waker(node: &Node<Ipc>, name: &str, side: Side) -> Result<Notifier<Ipc>, ChannelError> {
    let suffix = match side {
        Side::Host => "to_host_event",
        Side::Worker => "to_worker_event",
    };
    node.service_builder(&service_name(name, suffix)?)
        .event()
        .open()
        .map_err(failed("open the event", name))?
        .notifier_builder()
        .create()
        .map_err(failed("create a notifier", name))
}

/// Removes what processes that died without cleaning up (a killed host or worker) left in
/// shared memory under this prefix.
pub fn cleanup_dead(prefix: &str) -> Result<(), ChannelError> {
    let node = new_node(prefix)?;
    node.try_cleanup_dead_nodes();
    Ok(())
}

pub struct Channel {
    publisher: Publisher<Ipc, [u8], ()>,
    subscriber: Subscriber<Ipc, [u8], ()>,
    notifier: Notifier<Ipc>,
    listener: Listener<Ipc>,
    /// Kept last: the ports above must go before their node.
    node: Node<Ipc>,
    /// For error reports.
    name: String,
}

fn service_name(name: &str, suffix: &str) -> Result<ServiceName, ChannelError> {
    let full = format!("{name}/{suffix}");
    ServiceName::new(&full).map_err(failed("make a service name", &full))
}

/// Makes the calling thread's umask (and working directory) its own, no longer the process's.
fn own_umask() -> std::io::Result<()> {
    // SAFETY: unshare has no memory-safety preconditions; CLONE_FS only detaches this thread's
    // umask, root and working directory from the other threads'.
    if unsafe { libc::unshare(libc::CLONE_FS) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl Channel {
    /// The host creates the services of `name`; the worker opens them.
    ///
    /// On a thread of its own whose umask is its own: iceoryx2 sets the umask while it binds a
    /// listener's socket, and a process that another thread starts at that moment would
    /// inherit it (a worker, or a browser an application or a test starts; Chromium stops at
    /// start when its singleton directory comes out with the wrong mode).
    pub fn open(name: &str, prefix: &str, side: Side) -> Result<Self, ChannelError> {
        let setup = |cause: String| ChannelError {
            step: "set up the thread that builds the channel",
            name: name.to_owned(),
            cause,
        };
        std::thread::scope(|scope| {
            let builder = std::thread::Builder::new()
                .name("rm-ipc-open".into())
                .spawn_scoped(scope, || {
                    own_umask().map_err(|e| setup(format!("unshare(CLONE_FS): {e}")))?;
                    Self::build(name, prefix, side)
                })
                .map_err(|e| setup(e.to_string()))?;
            builder
                .join()
                .unwrap_or_else(|_| Err(setup("it panicked".into())))
        })
    }

    fn build(name: &str, prefix: &str, side: Side) -> Result<Self, ChannelError> {
        let node = new_node(prefix)?;
        let (out_suffix, in_suffix) = match side {
            Side::Host => ("to_worker", "to_host"),
            Side::Worker => ("to_host", "to_worker"),
        };
        let data_service = |suffix: &str| -> Result<_, ChannelError> {
            let builder = node
                .service_builder(&service_name(name, suffix)?)
                .publish_subscribe::<[u8]>()
                .payload_alignment(Alignment::new(8).expect("8 is a power of two"))
                .max_publishers(1)
                .max_subscribers(1)
                .history_size(0)
                .subscriber_max_buffer_size(BUFFER)
                .subscriber_max_borrowed_samples(MAX_BORROWED)
                .enable_safe_overflow(false);
            match side {
                Side::Host => builder.create().map_err(failed("create a service", name)),
                Side::Worker => builder.open().map_err(failed("open a service", name)),
            }
        };
        let event_service = |suffix: &str| -> Result<_, ChannelError> {
            let builder = node
                .service_builder(&service_name(name, &format!("{suffix}_event"))?)
                .event();
            match side {
                Side::Host => builder.create().map_err(failed("create an event", name)),
                Side::Worker => builder.open().map_err(failed("open an event", name)),
            }
        };
        let out = data_service(out_suffix)?;
        let inn = data_service(in_suffix)?;
        let out_event = event_service(out_suffix)?;
        let in_event = event_service(in_suffix)?;
        let publisher = out
            .publisher_builder()
            .initial_max_slice_len(INITIAL_SLOT)
            .allocation_strategy(AllocationStrategy::PowerOfTwo)
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(failed("create a publisher", name))?;
        let subscriber = inn
            .subscriber_builder()
            .create()
            .map_err(failed("create a subscriber", name))?;
        let notifier = out_event
            .notifier_builder()
            .create()
            .map_err(failed("create a notifier", name))?;
        let listener = in_event
            .listener_builder()
            .create()
            .map_err(failed("create a listener", name))?;
        Ok(Self {
            publisher,
            subscriber,
            notifier,
            listener,
            node,
            name: name.to_owned(),
        })
    }

    /// A notifier that wakes this side's own listener (the host's process watcher uses it
    /// when the worker exits).
    pub fn self_waker(&self, side: Side) -> Result<Notifier<Ipc>, ChannelError> {
        open_waker(&self.node, &self.name, side)
    }

    /// Sends a message whose body `write` fills (`len` bytes), then wakes the other side.
    pub fn send_with(
        &self,
        kind: Kind,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), ChannelError> {
        let sample = self
            .publisher
            .loan_slice_uninit(HEADER_LEN + len)
            .map_err(|e| ChannelError {
                step: "loan shared memory",
                name: self.name.clone(),
                cause: format!("{e:?} (for {len} bytes)"),
            })?;
        let mut sample = sample.write_from_fn(|_| 0u8);
        let buf = sample.payload_mut();
        buf[0] = kind as u8;
        write(&mut buf[HEADER_LEN..]);
        sample
            .send()
            .map_err(failed("send to the other process", &self.name))?;
        self.notifier
            .notify()
            .map_err(failed("wake the other process", &self.name))?;
        Ok(())
    }

    pub fn send_bytes(&self, kind: Kind, body: &[u8]) -> Result<(), ChannelError> {
        self.send_with(kind, body.len(), |b| b.copy_from_slice(body))
    }

    /// Sends a packet; a payload lying exactly at `input` (the payload of the request being
    /// answered) is referred to instead of copied (see `wire`).
    pub fn send_packet(
        &self,
        kind: Kind,
        packet: &Packet,
        input: Option<wire::Region>,
    ) -> Result<(), ChannelError> {
        self.send_with(kind, wire::encoded_len(packet, input), |b| {
            wire::encode_into(packet, b, input);
        })
    }

    /// The next message if one is waiting.
    pub fn try_recv(&self) -> Result<Option<(Kind, Received)>, ChannelError> {
        let Some(sample) = self
            .subscriber
            .receive()
            .map_err(failed("receive from the other process", &self.name))?
        else {
            return Ok(None);
        };
        let payload = sample.payload();
        let kind = payload
            .first()
            .copied()
            .filter(|_| payload.len() >= HEADER_LEN)
            .and_then(Kind::from_byte)
            .ok_or_else(|| ChannelError {
                step: "read a message",
                name: self.name.clone(),
                cause: format!("malformed message of {} bytes", payload.len()),
            })?;
        Ok(Some((kind, sample)))
    }

    /// Sleeps until the other side (or a self waker) signals, or `timeout` passes (None: no
    /// limit). Returns at once if a signal came since the last wait.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<(), ChannelError> {
        let result = match timeout {
            Some(t) => self.listener.timed_wait(|_| {}, t),
            None => self.listener.blocking_wait(|_| {}),
        };
        match result {
            // A signal cut the wait short (a cgroup freezer thawing the process, a debugger):
            // a spurious wake-up, which callers already check for like a timeout.
            Ok(_) | Err(ListenerWaitError::InterruptSignal) => Ok(()),
            Err(e) => Err(failed("wait for the other process", &self.name)(e)),
        }
    }
}

/// The body of a received message (after its frame header).
pub fn body(sample: &Received) -> &[u8] {
    &sample.payload()[HEADER_LEN..]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// The umask of the calling thread, as the kernel reports it.
    fn umask_seen() -> Option<u32> {
        let status = std::fs::read_to_string("/proc/thread-self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
    }

    #[test]
    fn opening_channels_leaves_the_process_umask_alone() {
        let before = umask_seen().expect("/proc shows the umask");
        let prefix = format!("rmumask{}_", std::process::id());
        let done = AtomicBool::new(false);
        // Another thread watches the umask it shares with the process (a thread that starts a
        // process would hand the same one on) while channels open.
        let seen = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                let mut seen = BTreeSet::new();
                while !done.load(Ordering::Relaxed) {
                    seen.extend(umask_seen());
                }
                seen
            });
            for i in 0..40 {
                drop(Channel::open(&format!("umask/{i}"), &prefix, Side::Host).unwrap());
            }
            done.store(true, Ordering::Relaxed);
            watcher.join().unwrap()
        });
        assert_eq!(
            seen,
            BTreeSet::from([before]),
            "umasks seen while channels opened (octal {before:o} before)"
        );
    }

    #[test]
    fn an_error_names_the_step_and_what_it_concerns() {
        let err = config("no/slash").expect_err("a slash is refused");
        assert_eq!(err.step, "use the shared-memory prefix");
        assert_eq!(err.name, "no/slash");
        assert!(
            err.to_string()
                .starts_with("iceoryx2: cannot use the shared-memory prefix (\"no/slash\"): "),
            "{err}"
        );
    }
}
