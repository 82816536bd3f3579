//! Images for container nodes.
//!
//! A base image holds Debian's Python with numpy (what the worker itself needs); the project's
//! `scripts/container-base.sh` builds it from `debootstrap` and tags it
//! `localhost/remotemedia-base:py<version>` with the label `remotemedia.base=1`. A node whose
//! `docker` block lists `python_packages` runs in an image built over that base with pip,
//! tagged by a digest of the base image's id and the packages: built once, found by its tag
//! the next time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use super::engine::{Engine, EngineError};
use super::spec::digest;
use crate::sync::lock;

/// The label that marks base images.
pub const BASE_LABEL: &str = "remotemedia.base";
const BASE_REPO: &str = "localhost/remotemedia-base";
const NODE_REPO: &str = "localhost/remotemedia-node";
/// The label every layer of a node image carries (so a failed build's layers can be pruned).
const SPEC_LABEL: &str = "remotemedia.spec";
/// Queries of the engine's image store.
const QUERY: Duration = Duration::from_secs(60);
/// An image build (pip downloading and installing packages).
const BUILD: Duration = Duration::from_secs(30 * 60);
/// Environment a pip inside the build needs to reach the same index as the host's.
const PIP_ENV: &[&str] = &[
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST",
    "PIP_DEFAULT_TIMEOUT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];
/// Where a host's CA bundle for pip may be named.
const CA_ENV: &[&str] = &["PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"];

/// Why there is no image for a container node.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(
        "no base image for container nodes (none labelled {BASE_LABEL}=1); \
         scripts/container-base.sh builds one (scripts/setup.sh runs it)"
    )]
    NoBase,
    #[error(
        "docker.python_version {wanted:?} has no base image (available: {}); to add one, build an \
         image with that Python, pip and numpy, tagged {BASE_REPO}:py<version> with the label \
         {BASE_LABEL}=1, as scripts/container-base.sh does for Debian's",
        .available.join(", ")
    )]
    PythonVersion {
        wanted: String,
        available: Vec<String>,
    },
    #[error(
        "several base images (Python {}): the docker block must name its python_version",
        .0.join(", ")
    )]
    Ambiguous(Vec<String>),
    #[error("pip could not install {packages:?} in the node's image: {reason}")]
    Pip {
        packages: Vec<String>,
        reason: String,
    },
    #[error("cannot write the image's build context {path}: {cause}")]
    Context { path: String, cause: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// A base image: the Python version it has and its reference.
#[derive(Clone, Debug, PartialEq)]
pub struct Base {
    pub version: String,
    pub reference: String,
}

/// The base images on hand, by the tags `py<version>` of `localhost/remotemedia-base`.
fn bases(engine: &Engine) -> Result<Vec<Base>, EngineError> {
    let filter = format!("label={BASE_LABEL}=1");
    let out = engine.run(
        &[
            "images",
            "--filter",
            &filter,
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ],
        QUERY,
    )?;
    let mut found: Vec<Base> = out
        .lines()
        .filter_map(|line| {
            let (repo, tag) = line.trim().rsplit_once(':')?;
            let version = tag.strip_prefix("py")?;
            (repo == BASE_REPO).then(|| Base {
                version: version.to_string(),
                reference: line.trim().to_string(),
            })
        })
        .collect();
    found.sort_by(|a, b| a.version.cmp(&b.version));
    found.dedup();
    Ok(found)
}

/// The base image for `wanted` (or the only one there is).
pub fn base(engine: &Engine, wanted: Option<&str>) -> Result<Base, ImageError> {
    let all = bases(engine)?;
    let versions = || all.iter().map(|b| b.version.clone()).collect::<Vec<_>>();
    match wanted {
        _ if all.is_empty() => Err(ImageError::NoBase),
        Some(v) => {
            all.iter()
                .find(|b| b.version == v)
                .cloned()
                .ok_or_else(|| ImageError::PythonVersion {
                    wanted: v.to_string(),
                    available: versions(),
                })
        }
        None if all.len() == 1 => Ok(all[0].clone()),
        None => Err(ImageError::Ambiguous(versions())),
    }
}

fn image_id(engine: &Engine, reference: &str) -> Result<String, EngineError> {
    engine
        .run(
            &["image", "inspect", "--format", "{{.Id}}", reference],
            QUERY,
        )
        .map(|s| s.trim().to_string())
}

static BUILD_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One build per image at a time in this process; the second caller finds the image built.
static BUILDS: LazyLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = LazyLock::new(Default::default);

/// The image a node with these packages runs in: the base itself when there are none, else
/// the base plus a pip layer, built now unless an earlier build left it.
pub fn for_packages(
    engine: &Engine,
    base: &Base,
    packages: &[String],
) -> Result<String, ImageError> {
    if packages.is_empty() {
        return Ok(base.reference.clone());
    }
    let base_id = image_id(engine, &base.reference)?;
    let key = digest(std::iter::once(base_id.as_str()).chain(packages.iter().map(String::as_str)));
    let tag = format!("{NODE_REPO}:{key}");
    let gate = Arc::clone(lock(&BUILDS).entry(tag.clone()).or_default());
    let _building = lock(&gate);
    if image_id(engine, &tag).is_ok() {
        return Ok(tag);
    }
    build(engine, base, &key, &tag, packages)?;
    Ok(tag)
}

/// The build's Containerfile: the packages go to pip as a JSON argument list, never through
/// a shell; `env` hands it the host's pip settings (`PIP_ENV`).
fn containerfile(base: &Base, key: &str, packages: &[String], env: &[String], ca: bool) -> String {
    let mut text = format!("FROM {}\nLABEL {SPEC_LABEL}=\"{key}\"\n", base.reference);
    let mut argv: Vec<&str> = vec!["env"];
    argv.extend(env.iter().map(String::as_str));
    if ca {
        text.push_str("COPY pip-ca.crt /etc/remotemedia/pip-ca.crt\n");
        argv.push("PIP_CERT=/etc/remotemedia/pip-ca.crt");
    }
    argv.extend([
        "python3",
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--break-system-packages",
        "--root-user-action=ignore",
        "--disable-pip-version-check",
        "--progress-bar=off",
    ]);
    argv.extend(packages.iter().map(String::as_str));
    let argv = serde_json::to_string(&argv).unwrap_or_default();
    text.push_str(&format!("RUN {argv}\n"));
    text
}

fn build(
    engine: &Engine,
    base: &Base,
    key: &str,
    tag: &str,
    packages: &[String],
) -> Result<(), ImageError> {
    // A new directory of this process's own (create_dir fails on one that exists).
    let dir = std::env::temp_dir().join(format!(
        "remotemedia-build-{}-{key}-{}",
        std::process::id(),
        BUILD_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let context_error = |e: std::io::Error| ImageError::Context {
        path: dir.display().to_string(),
        cause: e.to_string(),
    };
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&dir)
        .map_err(context_error)?;
    let result = (|| {
        let ca = CA_ENV
            .iter()
            .filter_map(std::env::var_os)
            .map(std::path::PathBuf::from)
            .find(|p| p.is_file());
        if let Some(ca) = &ca {
            std::fs::copy(ca, dir.join("pip-ca.crt")).map_err(context_error)?;
        }
        let env: Vec<String> = PIP_ENV
            .iter()
            .filter_map(|v| std::env::var(v).ok().map(|val| format!("{v}={val}")))
            .collect();
        let file = dir.join("Containerfile");
        std::fs::write(
            &file,
            containerfile(base, key, packages, &env, ca.is_some()),
        )
        .map_err(context_error)?;
        run_build(engine, &dir, &file, key, tag, packages)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn run_build(
    engine: &Engine,
    dir: &Path,
    file: &Path,
    key: &str,
    tag: &str,
    packages: &[String],
) -> Result<(), ImageError> {
    let (dir, file) = (dir.to_string_lossy(), file.to_string_lossy());
    let args = [
        "build",
        "--network",
        "host",
        "--force-rm",
        "-f",
        &file,
        "-t",
        tag,
        &dir,
    ];
    tracing::info!(%tag, ?packages, "building a container node's image");
    let out = engine.capture(&args, BUILD)?;
    if out.success {
        return Ok(());
    }
    // Layers of the failed build carry the spec's label; none is left behind untagged.
    let filter = format!("label={SPEC_LABEL}={key}");
    let _ = engine.run(&["image", "prune", "-f", "--filter", &filter], QUERY);
    let pip_lines: Vec<&str> = out
        .stdout
        .lines()
        .chain(out.stderr.lines())
        .filter(|l| l.contains("ERROR:"))
        .collect();
    let reason = if pip_lines.is_empty() {
        out.failure()
    } else {
        pip_lines.join("\n")
    };
    Err(ImageError::Pip {
        packages: packages.to_vec(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containerfile_hands_packages_to_pip_as_arguments() {
        let base = Base {
            version: "3.11".into(),
            reference: "localhost/remotemedia-base:py3.11".into(),
        };
        let text = containerfile(
            &base,
            "abc",
            &["scipy==1.14.*".into(), "a b\"c".into()],
            &["PIP_DEFAULT_TIMEOUT=180".into()],
            true,
        );
        assert_eq!(
            text,
            "FROM localhost/remotemedia-base:py3.11\nLABEL remotemedia.spec=\"abc\"\n\
             COPY pip-ca.crt /etc/remotemedia/pip-ca.crt\n\
             RUN [\"env\",\"PIP_DEFAULT_TIMEOUT=180\",\"PIP_CERT=/etc/remotemedia/pip-ca.crt\",\
             \"python3\",\"-m\",\"pip\",\"install\",\"--no-cache-dir\",\"--break-system-packages\",\
             \"--root-user-action=ignore\",\"--disable-pip-version-check\",\"--progress-bar=off\",\
             \"scipy==1.14.*\",\"a b\\\"c\"]\n"
        );
    }
}
