//! Reading a refused manifest's report in the manifest tests.

use remotemedia_runtime::manifest::{Manifest, ManifestReport};

/// The report's errors as their messages; fails the test when the manifest was accepted.
pub fn errors(result: Result<Manifest, ManifestReport>) -> Vec<String> {
    match result {
        Ok(m) => panic!("manifest was accepted: {m:?}"),
        Err(report) => report.errors.iter().map(ToString::to_string).collect(),
    }
}

pub fn has(errs: &[String], needle: &str) {
    assert!(
        errs.iter().any(|e| e.contains(needle)),
        "no error contains {needle:?}: {errs:#?}"
    );
}
