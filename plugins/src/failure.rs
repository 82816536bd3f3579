//! Element errors as people and programs read them. The text starts with the code (what a
//! gst-launch-1.0 user sees); a `remotemedia-error` details structure carries the code and
//! what failed (`node-id`, `uri`), so no consumer has to parse the text
//! (docs/ARCHITECTURE.md, "Errors").

use gst::prelude::*;
use remotemedia_runtime::ErrorCode;

/// The name of the details structure of our element errors.
pub const DETAILS: &str = "remotemedia-error";

#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    node_id: Option<String>,
    uri: Option<String>,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            node_id: None,
            uri: None,
        }
    }

    /// A property or option is invalid, or a needed part is not installed.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Config, message)
    }

    pub fn node(mut self, node_id: &str) -> Self {
        self.node_id = Some(node_id.to_owned());
        self
    }

    /// The source, with any password already masked.
    pub fn uri(mut self, uri: &str) -> Self {
        self.uri = Some(uri.to_owned());
        self
    }

    pub fn details(&self) -> gst::Structure {
        let mut s = gst::Structure::builder(DETAILS)
            .field("code", self.code.as_str())
            .field("message", &self.message)
            .build();
        for (name, value) in [("node-id", &self.node_id), ("uri", &self.uri)] {
            if let Some(value) = value {
                s.set(name, value);
            }
        }
        s
    }

    /// Posts this as `element`'s error message.
    #[track_caller]
    pub fn post(&self, element: &impl IsA<gst::Element>) {
        let element = element.as_ref();
        match self.code {
            ErrorCode::Config => self.emit(element, gst::LibraryError::Settings),
            ErrorCode::Pipeline => self.emit(element, gst::StreamError::Failed),
            ErrorCode::Signaling | ErrorCode::ReconnectFailed => {
                self.emit(element, gst::ResourceError::OpenReadWrite)
            }
            _ => self.emit(element, gst::CoreError::Failed),
        }
    }

    #[track_caller]
    fn emit<T: gst::MessageErrorDomain>(&self, element: &gst::Element, domain: T) {
        let at = std::panic::Location::caller();
        element.message_full_with_details(
            gst::ElementMessageType::Error,
            domain,
            Some(&self.to_string()),
            None,
            at.file(),
            "",
            at.line(),
            self.details(),
        );
    }
}

/// The code and message of an error message, read from the details our elements attach;
/// an error without them (another element's) is a PIPELINE_ERROR with the error's text.
pub fn code_and_message(err: &gst::message::Error) -> (ErrorCode, String) {
    let ours = err.details().and_then(|d| {
        let code = d.get::<&str>("code").ok()?.parse().ok()?;
        Some((code, d.get::<String>("message").ok()?))
    });
    ours.unwrap_or_else(|| (ErrorCode::Pipeline, err.error().to_string()))
}
