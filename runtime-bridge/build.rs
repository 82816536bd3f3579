//! Records where the project's virtualenv keeps its Python packages, so native nodes find the
//! Silero model there and Python workers run its interpreter, without any environment variable.

use std::path::Path;

fn main() {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv");
    println!(
        "cargo:rerun-if-changed={}",
        venv.join("pyvenv.cfg").display()
    );
    let site = std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir());
    let python = venv.join("bin/python");
    if python.exists() {
        let python = venv
            .canonicalize()
            .unwrap_or(venv.clone())
            .join("bin/python");
        println!(
            "cargo:rustc-env=REMOTEMEDIA_VENV_PYTHON={}",
            python.display()
        );
    }
    if let Some(site) = site {
        let site = site.canonicalize().unwrap_or(site);
        println!(
            "cargo:rustc-env=REMOTEMEDIA_SITE_PACKAGES={}",
            site.display()
        );
    }
}
