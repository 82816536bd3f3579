//! Which Python runs the workers.

use std::path::PathBuf;

/// `$REMOTEMEDIA_PYTHON`, else the project virtualenv recorded at build time, else the
/// active virtualenv, else `python3` from `PATH`. The interpreter must be able to import
/// `remotemedia` (the package this repository builds).
pub fn python_executable() -> PathBuf {
    if let Some(p) = std::env::var_os("REMOTEMEDIA_PYTHON") {
        return PathBuf::from(p);
    }
    if let Some(baked) = option_env!("REMOTEMEDIA_VENV_PYTHON") {
        let p = PathBuf::from(baked);
        if p.is_file() {
            return p;
        }
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        let p = PathBuf::from(venv).join("bin/python");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("python3")
}
