//! Promises a pipeline or sending thread settles: napi's threadsafe deferreds, whose value (or
//! error) is made on the JavaScript thread.

use napi::bindgen_prelude::ToNapiValue;
use napi::{Env, JsDeferred};

use crate::error::Failure;

pub type Deferred<T> = JsDeferred<T, Box<dyn FnOnce(Env) -> napi::Result<T> + Send>>;

/// Settles a promise from any thread; the value (or the error) is made on the JavaScript
/// thread.
pub fn settle<T: ToNapiValue + Send + 'static>(deferred: Deferred<T>, result: Result<T, Failure>) {
    deferred.resolve(Box::new(move |env| result.map_err(|f| f.into_js(&env))));
}
