//! Finds files that Python packages ship (the Silero model, ONNX Runtime's library) in the
//! project virtualenv recorded at build time, the active virtualenv, or the system.

use std::path::{Path, PathBuf};

/// Python package directories to search, most specific first.
pub fn site_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(baked) = option_env!("REMOTEMEDIA_SITE_PACKAGES") {
        dirs.push(PathBuf::from(baked));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        dirs.extend(python_dirs(&Path::new(&venv).join("lib"), "site-packages"));
    }
    dirs.extend(python_dirs(Path::new("/usr/local/lib"), "dist-packages"));
    dirs.push(PathBuf::from("/usr/lib/python3/dist-packages"));
    dirs.dedup();
    dirs
}

/// `<lib>/python3*/<leaf>` directories.
fn python_dirs(lib: &Path, leaf: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(lib)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("python3"))
        .map(|e| e.path().join(leaf))
        .filter(|p| p.is_dir())
        .collect();
    found.sort();
    found
}

/// The first `<site>/<relative>` that exists, or an error listing where it looked.
pub fn find_file(relative: &str, what: &str, hint: &str) -> Result<PathBuf, String> {
    let dirs = site_dirs();
    dirs.iter()
        .map(|d| d.join(relative))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "{what} not found: looked for {relative} in {}; {hint}",
                looked.join(", ")
            )
        })
}

/// ONNX Runtime's shared library: `ORT_DYLIB_PATH`, else the `onnxruntime` wheel's copy.
pub fn onnxruntime_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
        return Ok(PathBuf::from(p));
    }
    let dirs = site_dirs();
    for dir in &dirs {
        let capi = dir.join("onnxruntime/capi");
        let lib = std::fs::read_dir(&capi)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so"))
            });
        if let Some(lib) = lib {
            return Ok(lib);
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(format!(
        "ONNX Runtime library not found: looked for onnxruntime/capi/libonnxruntime.so* in {}; \
         install the onnxruntime Python package (the README's setup does) or set ORT_DYLIB_PATH",
        looked.join(", ")
    ))
}
