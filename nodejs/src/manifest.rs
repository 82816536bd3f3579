//! The manifest argument: JSON text, an object, or the path of a manifest file.

use std::path::PathBuf;
use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{Env, JsValue, ValueType};
use remotemedia_runtime::{Graph, ManifestReport};

use crate::error::Failure;
use crate::input::InputError;

/// A manifest as JavaScript named it, read on the JavaScript thread and loaded off it.
pub enum ManifestSource {
    Text(String),
    File(PathBuf),
}

impl ManifestSource {
    /// A string that starts with `{` (after white space) is the manifest's JSON, any other
    /// string its path; an object is the manifest itself.
    pub fn from_js(env: &Env, value: Unknown<'_>) -> Result<Self, Failure> {
        match value.get_type()? {
            ValueType::String => {
                // SAFETY: a live value of the current call, checked to be a string.
                let text: String = unsafe { value.cast()? };
                if text.trim_start().starts_with('{') {
                    Ok(Self::Text(text))
                } else {
                    Ok(Self::File(PathBuf::from(text)))
                }
            }
            ValueType::Object if !value.is_array()? => {
                let json: serde_json::Value = env.from_js_value(value)?;
                Ok(Self::Text(json.to_string()))
            }
            _ => Err(InputError::WrongType(
                "the manifest must be a JSON string, an object or a path".into(),
            )
            .into()),
        }
    }

    /// Reads, checks and builds the graph (file reads and Python module paths: off the
    /// JavaScript thread).
    pub fn load(&self) -> Result<Arc<Graph>, ManifestReport> {
        match self {
            Self::Text(text) => remotemedia_runtime::load_graph(text, "(inline)"),
            Self::File(path) => remotemedia_runtime::load_graph_file(path),
        }
    }
}
