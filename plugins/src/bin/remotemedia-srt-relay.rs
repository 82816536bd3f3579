//! `remotemedia-srt-relay`: receives one SRT stream (`srtsrc`) and writes its bytes to stdout,
//! for `remotemediaingest`, which runs libsrt here rather than in its own process.
//!
//! Why a process: libsrt throws C++ exceptions in normal operation (a peer going away), and
//! Debian's GStreamer core links libunwind, whose `_Unwind_*` functions win the symbol lookup
//! in any process that loaded GStreamer first (gst-launch-1.0, Python with PyGObject). Mixing
//! that unwinder with libgcc's can crash inside libsrt. This binary links libgcc_s directly,
//! so its `_Unwind_*` are libgcc's (`--check` says which), and should libsrt crash anyway, only
//! this process goes: the element sees the stream end and reconnects.
//!
//! Input, from the environment (not the command line, which any user can read):
//! `REMOTEMEDIA_SRT_URI` and `REMOTEMEDIA_SRT_LATENCY_MS`. The relay ends when its stdin
//! closes (the element stopped, or its process died), when the stream ends, or on an error,
//! which it prints on stderr as one line starting with `remotemedia-srt-relay: ` (the element
//! tells it from other output by that).

use std::ffi::CStr;
use std::io::Read;
use std::process::ExitCode;

const ERROR_PREFIX: &str = "remotemedia-srt-relay: ";

use gst::prelude::*;

/// The shared library that provides `_Unwind_Resume` to libraries loaded from now on.
fn unwinder() -> Option<String> {
    // SAFETY: dlsym/dladdr with a NUL-terminated name; dli_fname points into the loader's
    // own tables, valid for the life of the process.
    unsafe {
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"_Unwind_Resume".as_ptr());
        if sym.is_null() {
            return None;
        }
        let mut info: libc::Dl_info = std::mem::zeroed();
        if libc::dladdr(sym, &mut info) == 0 || info.dli_fname.is_null() {
            return None;
        }
        Some(
            CStr::from_ptr(info.dli_fname)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// The element holds our stdin open for as long as it wants the stream. When it closes (the
/// element stopped, or its process died), leave at once: no destructors, while libsrt's
/// threads may still run. Watched before GStreamer initialises, so a relay whose init is
/// slow (a registry rebuild can take seconds) does not outlive its element.
fn exit_with_stdin() {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        // SAFETY: _exit ends the process without touching any state.
        unsafe { libc::_exit(0) }
    });
}

/// Why the relay stopped without its stream ending: the one line it prints on stderr.
#[derive(Debug, thiserror::Error)]
enum RelayFailure {
    #[error("REMOTEMEDIA_SRT_URI is not set")]
    NoUri,
    #[error("GStreamer: {0}")]
    Init(#[source] gst::glib::Error),
    #[error("GStreamer element '{factory}' is missing ({package})")]
    Missing {
        factory: &'static str,
        /// The Debian package that has it.
        package: &'static str,
        #[source]
        source: gst::glib::BoolError,
    },
    #[error("{0}")]
    Link(#[source] gst::glib::BoolError),
    #[error("the SRT source did not start")]
    NotStarted(#[source] gst::StateChangeError),
    /// The stream failed: GStreamer's message, and the cause its debug text ends with
    /// ("Connection timed out"...).
    #[error("{message}{}", cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default())]
    Stream {
        message: String,
        cause: Option<String>,
    },
}

fn run() -> Result<(), RelayFailure> {
    let uri = std::env::var("REMOTEMEDIA_SRT_URI").map_err(|_| RelayFailure::NoUri)?;
    let latency: i32 = std::env::var("REMOTEMEDIA_SRT_LATENCY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    // After the checks that need no GStreamer (their errors must be reported, whatever stdin
    // is), before the init that may take seconds.
    exit_with_stdin();
    gst::init().map_err(RelayFailure::Init)?;
    let src = gst::ElementFactory::make("srtsrc")
        .property_from_str("uri", &uri)
        .property("latency", latency)
        // A dropped connection ends the relay: the element reconnects, with its own backoff
        // and a bus message per attempt.
        .property("auto-reconnect", false)
        .build()
        .map_err(|source| RelayFailure::Missing {
            factory: "srtsrc",
            package: "gstreamer1.0-plugins-bad",
            source,
        })?;
    let sink = gst::ElementFactory::make("fdsink")
        .property("fd", 1i32)
        .property("sync", false)
        .build()
        .map_err(|source| RelayFailure::Missing {
            factory: "fdsink",
            package: "libgstreamer1.0-0",
            source,
        })?;
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([&src, &sink])
        .and_then(|_| src.link(&sink))
        .map_err(RelayFailure::Link)?;

    pipeline
        .set_state(gst::State::Playing)
        .map_err(RelayFailure::NotStarted)?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::NONE) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                let cause = e
                    .debug()
                    .and_then(|d| d.lines().last().map(|c| c.trim().to_owned()));
                let message = e.error().to_string();
                break Err(RelayFailure::Stream {
                    message: message.trim_end_matches('.').to_owned(),
                    cause,
                });
            }
            _ => {}
        }
    };
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--check") {
        let lib = unwinder().unwrap_or_else(|| "none".into());
        println!("unwinder: {lib}");
        return if lib.contains("libgcc_s") {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string().replace('\n', " ");
        eprintln!("{ERROR_PREFIX}panicked: {message}");
    }));
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{ERROR_PREFIX}{e}");
            ExitCode::FAILURE
        }
    }
}
