//! Finds files that Python packages ship (the Silero model) in the
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

/// A file that no Python package directory holds.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{what} not found: looked for {relative} in {}; {hint}", shown(.searched))]
pub struct NotFound {
    /// What the file is ("Silero VAD model").
    pub what: String,
    pub relative: String,
    pub searched: Vec<PathBuf>,
    /// How to install it.
    pub hint: String,
}

fn shown(dirs: &[PathBuf]) -> String {
    let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    dirs.join(", ")
}

/// The first `<site>/<relative>` that exists.
pub fn find_file(relative: &str, what: &str, hint: &str) -> Result<PathBuf, NotFound> {
    let dirs = site_dirs();
    match dirs.iter().map(|d| d.join(relative)).find(|p| p.is_file()) {
        Some(path) => Ok(path),
        None => Err(NotFound {
            what: what.to_owned(),
            relative: relative.to_owned(),
            searched: dirs,
            hint: hint.to_owned(),
        }),
    }
}
