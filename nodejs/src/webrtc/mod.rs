//! `WebRtcServer` for Node.js, on the `remotemediawebrtcserver` element (as the Python
//! `remotemedia.webrtc.WebRtcServer` is), with the plugin registered from inside this module.
//!
//! Threads (docs/ARCHITECTURE.md, "Threads, runtimes and locks"): JavaScript's thread only
//! checks arguments, queues work and registers listeners; each server has a command thread
//! (`worker`) that runs its calls into the element in order and settles their promises, and,
//! while it runs, a bus thread (`bus_watch`) that turns bus messages into events (`events`)
//! and hands them to a threadsafe function (`dispatch`) calling the listeners (`listeners`).
//! A refused call's code comes from what the element posted on the calling thread
//! (`failures`); errors are JavaScript `Error`s with `.code` (`error`).

mod actions;
mod bus_watch;
mod config;
mod dispatch;
mod error;
mod events;
mod failures;
mod listeners;
mod payloads;
mod peers;
mod pipeline;
mod plugin;
mod properties;
mod reply;
mod rooms;
mod server;
mod session;
mod urls;
mod worker;
