//! A Rust value as a JavaScript value of the current call.

use napi::Env;
use napi::bindgen_prelude::{ToNapiValue, Unknown};

/// `value` converted by napi into a JavaScript value that lives as long as the current call.
pub fn to_unknown<T: ToNapiValue>(env: &Env, value: T) -> napi::Result<Unknown<'_>> {
    // SAFETY: `env` is the current call's environment, and the value is made in it.
    unsafe {
        let raw = ToNapiValue::to_napi_value(env.raw(), value)?;
        Ok(Unknown::from_raw_unchecked(env.raw(), raw))
    }
}
