//! What fails at the module's edge, and how it reaches JavaScript: an `Error` whose `code`
//! names the failure as the rest of RemoteMedia does (ARCHITECTURE.md, "Errors"), and a panic
//! of ours caught before it could unwind into Node.

use std::panic::{AssertUnwindSafe, catch_unwind};

use napi::bindgen_prelude::{JsValue, Object};
use napi::{Env, JsError, JsTypeError};
use remotemedia_runtime::{ErrorCode, ManifestReport, RuntimeError};

use crate::input::InputError;

/// The `code` of a manifest that does not load (the Python module's `ManifestError`).
const MANIFEST_ERROR: &str = "MANIFEST_ERROR";

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The manifest is invalid: every problem, each with its place.
    #[error(transparent)]
    Manifest(#[from] ManifestReport),
    /// A node failed, or the runtime could not run the graph.
    #[error(transparent)]
    Pipeline(#[from] RuntimeError),
    /// An input or option JavaScript passed cannot go into a pipeline.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A Node-API call failed.
    #[error(transparent)]
    Napi(#[from] napi::Error),
    /// A session was used after `close`.
    #[error("the session is closed")]
    Closed,
    /// A session's sending thread could not start.
    #[error("cannot start the session's sending thread: {0}")]
    Thread(std::io::Error),
    /// Our code panicked; caught at the module's edge.
    #[error("panicked: {0}")]
    Panic(String),
}

impl Failure {
    /// The failure as what a promise rejects with or a call throws: a JavaScript error with
    /// `code` `MANIFEST_ERROR` and `errors` (`{place, message}` each), the full report as the
    /// message; a node's failure with its `ErrorCode` (`PIPELINE_ERROR`, `CONFIG_ERROR`,
    /// `INTERNAL_ERROR`) and `nodeId`; a bad argument as a `TypeError` with Node's own
    /// `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE`, a closed session's use with
    /// `ERR_INVALID_STATE`; a fault of ours with `INTERNAL_ERROR`.
    pub fn into_js(self, env: &Env) -> napi::Error {
        if let Failure::Napi(e) = self {
            return e;
        }
        match self.to_js(env) {
            Ok(object) => napi::Error::from(object.to_unknown()),
            Err(e) => e,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Failure::Manifest(_) => MANIFEST_ERROR,
            Failure::Pipeline(e) => e.code.as_str(),
            Failure::Input(InputError::WrongType(_)) => "ERR_INVALID_ARG_TYPE",
            Failure::Input(InputError::Invalid(_)) => "ERR_INVALID_ARG_VALUE",
            Failure::Closed => "ERR_INVALID_STATE",
            Failure::Napi(_) | Failure::Thread(_) | Failure::Panic(_) => {
                ErrorCode::Internal.as_str()
            }
        }
    }

    /// The failure as a JavaScript error object (see `into_js`).
    pub fn to_js<'env>(&self, env: &'env Env) -> napi::Result<Object<'env>> {
        let error = napi::Error::new(self.code(), self.to_string());
        let value = match self {
            Failure::Input(_) => JsTypeError::from(error).into_unknown(*env),
            _ => JsError::from(error).into_unknown(*env),
        };
        let mut object = value.coerce_to_object()?;
        match self {
            Failure::Manifest(report) => {
                let mut errors = env.create_array(0)?;
                for e in &report.errors {
                    let mut item = Object::new(env)?;
                    item.set("place", e.place.as_str())?;
                    item.set("message", e.message.as_str())?;
                    errors.insert(item)?;
                }
                object.set("errors", errors)?;
            }
            Failure::Pipeline(e) => object.set("nodeId", e.node_id.as_str())?,
            _ => {}
        }
        Ok(object)
    }
}

/// Runs `f`, turning a panic into `Failure::Panic`: for code that runs where an unwinding
/// panic would abort Node (a libuv work callback, a threadsafe-function callback).
pub fn guarded<T>(f: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Failure::Panic(message))
    })
}
