//! RemoteMedia for Node.js (N-API): the runtime API and `WebRtcServer`.
//!
//! index.js wraps the `internal` calls into the API that README.md documents ("From
//! Node.js"): unary runs (`unary`), stream sessions (`session`), inputs and outputs converted
//! in one place each (`input`, `output`; JavaScript memory lent to pipelines in `lent`, audio
//! on its way back in `samples_out`), manifests (`manifest`) and errors with their codes
//! (`error`).
//!
//! The module is tested from JavaScript (nodejs/test/). In a Rust test build (`clippy
//! --all-targets`) napi-derive leaves out the registration of the exported functions and
//! classes, so what only they use would read as unused there.
#![cfg_attr(test, allow(dead_code))]

use napi_derive::napi;

mod error;
mod input;
mod js_value;
mod lent;
mod manifest;
mod output;
mod samples_out;
mod session;
mod unary;
mod webrtc;

/// The runtime's version.
#[napi(catch_unwind)]
pub fn get_runtime_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Whether the native runtime is loaded (it is, once this module loads).
#[napi(catch_unwind)]
pub fn is_available() -> bool {
    true
}
