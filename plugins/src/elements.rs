//! Making, putting together and taking down the elements our bins hold, and why that failed.

use gst::glib;
use gst::prelude::*;
use remotemedia_runtime::ErrorCode;

/// A GStreamer element we need is not installed.
#[derive(Debug, thiserror::Error)]
#[error("GStreamer element '{factory}' is missing (see README setup)")]
pub struct MissingElement {
    pub factory: String,
    #[source]
    cause: glib::BoolError,
}

impl MissingElement {
    /// For an element builder of `factory` that failed.
    pub fn new(factory: &str, cause: glib::BoolError) -> Self {
        Self {
            factory: factory.to_owned(),
            cause,
        }
    }
}

/// Why elements could not be put together in a bin and started.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Missing(#[from] MissingElement),
    #[error("cannot add {elements} to {bin}: {source}")]
    Add {
        elements: String,
        bin: String,
        #[source]
        source: glib::BoolError,
    },
    #[error("cannot link {chain}: {source}")]
    Link {
        chain: String,
        #[source]
        source: glib::BoolError,
    },
    #[error("cannot link {src} to {sink}: {source}")]
    LinkPads {
        src: String,
        sink: String,
        #[source]
        source: gst::PadLinkError,
    },
    #[error("{element} did not start")]
    NotStarted {
        element: String,
        #[source]
        source: glib::BoolError,
    },
    #[error("{element} has no {pad} pad")]
    NoPad { element: String, pad: String },
    /// Retargeting, activating or adding a pad was refused.
    #[error("cannot {action} pad {pad}: {source}")]
    Pad {
        action: &'static str,
        pad: String,
        #[source]
        source: glib::BoolError,
    },
}

impl BuildError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Missing(_) => ErrorCode::Config,
            Self::NoPad { .. } => ErrorCode::Internal,
            _ => ErrorCode::Pipeline,
        }
    }

    /// `map_err` for a pad operation (`action`: "retarget", "activate", "expose").
    pub fn pad(
        action: &'static str,
        pad: &impl IsA<gst::Pad>,
    ) -> impl FnOnce(glib::BoolError) -> Self {
        let pad = pad.as_ref().name().to_string();
        move |source| Self::Pad {
            action,
            pad,
            source,
        }
    }
}

/// An element of `factory`.
pub fn make(factory: &str) -> Result<gst::Element, MissingElement> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|cause| MissingElement::new(factory, cause))
}

/// The elements' names, as `a ! b ! c`.
fn names<E: AsRef<gst::Element>>(elements: &[E]) -> String {
    elements
        .iter()
        .map(|e| e.as_ref().name().to_string())
        .collect::<Vec<_>>()
        .join(" ! ")
}

pub fn add<E: AsRef<gst::Element>>(
    bin: &impl IsA<gst::Bin>,
    elements: &[E],
) -> Result<(), BuildError> {
    let bin = bin.as_ref();
    bin.add_many(elements).map_err(|source| BuildError::Add {
        elements: names(elements),
        bin: bin.name().to_string(),
        source,
    })
}

/// Links `chain` in order.
pub fn link<E: AsRef<gst::Element>>(chain: &[E]) -> Result<(), BuildError> {
    gst::Element::link_many(chain).map_err(|source| BuildError::Link {
        chain: names(chain),
        source,
    })
}

pub fn link_pads(src: &gst::Pad, sink: &gst::Pad) -> Result<(), BuildError> {
    let name = |pad: &gst::Pad| match pad.parent_element() {
        Some(e) => format!("{}:{}", e.name(), pad.name()),
        None => pad.name().to_string(),
    };
    src.link(sink)
        .map(|_| ())
        .map_err(|source| BuildError::LinkPads {
            src: name(src),
            sink: name(sink),
            source,
        })
}

/// Brings `element` to the state of the bin it is in.
pub fn start(element: &gst::Element) -> Result<(), BuildError> {
    element
        .sync_state_with_parent()
        .map_err(|source| BuildError::NotStarted {
            element: element.name().to_string(),
            source,
        })
}

pub fn static_pad(element: &gst::Element, pad: &str) -> Result<gst::Pad, BuildError> {
    element.static_pad(pad).ok_or_else(|| BuildError::NoPad {
        element: element.name().to_string(),
        pad: pad.to_owned(),
    })
}

/// Stops `elements` and takes them out of `bin` (when it still exists). Their states are
/// locked first: a state change of `bin` meanwhile must not bring them back up before they
/// are out.
pub fn tear_down(bin: Option<&gst::Bin>, elements: &[gst::Element]) {
    for e in elements {
        e.set_locked_state(true);
        let _ = e.set_state(gst::State::Null);
    }
    if let Some(bin) = bin {
        let _ = bin.remove_many(elements);
    }
}
