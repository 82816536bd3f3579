//! The `docker` block of a Python node, as the manifest gives it:
//!
//! ```json
//! "docker": { "python_version": "3.11", "python_packages": ["numpy", "scipy==1.14.*"],
//!             "resource_limits": { "memory_mb": 512, "cpu_cores": 0.5 } }
//! ```

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// A container node's image and limits.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerSpec {
    /// `None`: the Python of the base image (when there is exactly one).
    pub python_version: Option<String>,
    /// pip requirements, installed in a layer over the base image.
    pub python_packages: Vec<String>,
    /// The container's memory limit (no swap beyond it): the kernel kills past it.
    pub memory_mb: Option<u64>,
    /// The container's CPU quota, in cores.
    pub cpu_cores: Option<f64>,
}

/// What is wrong with a `docker` block.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ContainerSpecError {
    #[error(
        "docker must be an object {{\"python_version\", \"python_packages\", \"resource_limits\"}}, got {0}"
    )]
    NotObject(Value),
    #[error(
        "docker: unknown field {0:?} (known: python_version, python_packages, resource_limits)"
    )]
    Field(String),
    #[error("docker.python_version must be a version like \"3.11\", got {0}")]
    PythonVersion(Value),
    #[error("docker.python_packages must be a list of pip requirements, got {0}")]
    Packages(Value),
    #[error(
        "docker.python_packages: {0:?} is not a pip requirement (a name with optional extras and version)"
    )]
    Package(String),
    #[error("docker.resource_limits must be an object {{\"memory_mb\", \"cpu_cores\"}}, got {0}")]
    Limits(Value),
    #[error("docker.resource_limits: unknown field {0:?} (known: memory_mb, cpu_cores)")]
    LimitField(String),
    #[error("docker.resource_limits.memory_mb must be an integer within 6..1048576, got {0}")]
    MemoryMb(Value),
    #[error("docker.resource_limits.cpu_cores must be a number within 0.01..1024, got {0}")]
    CpuCores(Value),
}

/// A requirement is handed to pip as one argument; this keeps options (`-r file`, `--index-url`)
/// and anything that is not a requirement out.
fn is_requirement(s: &str) -> bool {
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-[],<>=!~*+ ;:@/'\"()".contains(c))
}

fn python_version(v: Option<&Value>) -> Result<Option<String>, ContainerSpecError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.split('.').count() <= 3
                && s.split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())) =>
        {
            Ok(Some(s.clone()))
        }
        // A bare number is read as the version it spells (3.11 would lose a trailing zero).
        Some(other) => Err(ContainerSpecError::PythonVersion(other.clone())),
    }
}

fn packages(v: Option<&Value>) -> Result<Vec<String>, ContainerSpecError> {
    let list = match v {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(ContainerSpecError::Packages(other.clone())),
    };
    list.iter()
        .map(|p| match p {
            Value::String(s) if is_requirement(s.trim()) => Ok(s.trim().to_string()),
            Value::String(s) => Err(ContainerSpecError::Package(s.clone())),
            other => Err(ContainerSpecError::Packages(other.clone())),
        })
        .collect()
}

type Limits = (Option<u64>, Option<f64>);

fn limits(v: Option<&Value>) -> Result<Limits, ContainerSpecError> {
    let obj = match v {
        None | Some(Value::Null) => return Ok((None, None)),
        Some(Value::Object(o)) => o,
        Some(other) => return Err(ContainerSpecError::Limits(other.clone())),
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["memory_mb", "cpu_cores"].contains(&k.as_str()))
    {
        return Err(ContainerSpecError::LimitField(k.clone()));
    }
    let memory = match obj.get("memory_mb") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|mb| (6..=1_048_576).contains(mb))
                .ok_or_else(|| ContainerSpecError::MemoryMb(v.clone()))?,
        ),
    };
    let cpus = match obj.get("cpu_cores") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|c| (0.01..=1024.0).contains(c))
                .ok_or_else(|| ContainerSpecError::CpuCores(v.clone()))?,
        ),
    };
    Ok((memory, cpus))
}

impl ContainerSpec {
    /// Reads a `docker` block; every problem is returned.
    pub fn from_value(v: &Value) -> Result<Self, Vec<ContainerSpecError>> {
        let Value::Object(obj) = v else {
            return Err(vec![ContainerSpecError::NotObject(v.clone())]);
        };
        let mut errors: Vec<ContainerSpecError> = obj
            .keys()
            .filter(|k| {
                !["python_version", "python_packages", "resource_limits"].contains(&k.as_str())
            })
            .map(|k| ContainerSpecError::Field(k.clone()))
            .collect();
        let version = python_version(obj.get("python_version")).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let python_packages = packages(obj.get("python_packages")).unwrap_or_else(|e| {
            errors.push(e);
            Vec::new()
        });
        let (memory_mb, cpu_cores) = limits(obj.get("resource_limits")).unwrap_or_else(|e| {
            errors.push(e);
            (None, None)
        });
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            python_version: version,
            python_packages,
            memory_mb,
            cpu_cores,
        })
    }

    /// The packages in a canonical order: the image does not depend on how they were listed.
    pub fn sorted_packages(&self) -> Vec<String> {
        let mut p = self.python_packages.clone();
        p.sort();
        p.dedup();
        p
    }
}

/// A short hex digest of `parts`, for image tags and container names.
pub fn digest<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a node entry's `docker` field, if it has one.
pub fn from_entry(
    obj: &Map<String, Value>,
) -> Result<Option<ContainerSpec>, Vec<ContainerSpecError>> {
    match obj.get("docker") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => ContainerSpec::from_value(v).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_block_is_read() {
        let spec = ContainerSpec::from_value(&json!({
            "python_version": "3.11", "python_packages": ["numpy", "scipy==1.14.*"],
            "resource_limits": {"memory_mb": 512, "cpu_cores": 0.5}}))
        .unwrap();
        assert_eq!(spec.python_version.as_deref(), Some("3.11"));
        assert_eq!(spec.python_packages, ["numpy", "scipy==1.14.*"]);
        assert_eq!((spec.memory_mb, spec.cpu_cores), (Some(512), Some(0.5)));
        let empty = ContainerSpec::from_value(&json!({})).unwrap();
        assert_eq!(empty.python_version, None);
        assert!(empty.python_packages.is_empty());
    }

    #[test]
    fn every_problem_is_named() {
        let errors = ContainerSpec::from_value(&json!({
            "python_version": 3.11, "python_packages": ["-r /etc/passwd", "ok", 5],
            "resource_limits": {"memory_mb": 2, "cpu_cores": "half", "disk": 1}, "gpu": true}))
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "docker: unknown field \"gpu\" (known: python_version, python_packages, resource_limits)",
                "docker.python_version must be a version like \"3.11\", got 3.11",
                "docker.python_packages: \"-r /etc/passwd\" is not a pip requirement (a name with optional extras and version)",
                "docker.resource_limits: unknown field \"disk\" (known: memory_mb, cpu_cores)",
            ]
        );
        let errors = ContainerSpec::from_value(&json!({
            "resource_limits": {"memory_mb": 2}}))
        .unwrap_err();
        assert_eq!(errors, [ContainerSpecError::MemoryMb(json!(2))]);
        let errors = ContainerSpec::from_value(&json!({
            "resource_limits": {"cpu_cores": 0}}))
        .unwrap_err();
        assert_eq!(errors, [ContainerSpecError::CpuCores(json!(0))]);
        assert_eq!(
            ContainerSpec::from_value(&json!("python:3.11")).unwrap_err(),
            [ContainerSpecError::NotObject(json!("python:3.11"))]
        );
    }

    #[test]
    fn requirements_with_extras_markers_and_urls_pass() {
        for ok in [
            "numpy",
            "scipy==1.14.*",
            "uvicorn[standard]>=0.30",
            "pkg; python_version<'3.12'",
            "name @ https://x/y.whl",
        ] {
            assert!(is_requirement(ok), "{ok}");
        }
        for bad in ["", "--index-url=http://x", "a\nb", "$(rm -rf /)"] {
            assert!(!is_requirement(bad), "{bad}");
        }
    }

    #[test]
    fn the_digest_is_stable_and_order_of_packages_does_not_matter() {
        let a = ContainerSpec::from_value(&json!({"python_packages": ["b", "a"]})).unwrap();
        let b = ContainerSpec::from_value(&json!({"python_packages": ["a", "b", "a"]})).unwrap();
        assert_eq!(a.sorted_packages(), b.sorted_packages());
        assert_eq!(digest(["a", "bc"]).len(), 16);
        assert_ne!(digest(["a", "bc"]), digest(["ab", "c"]));
        assert_eq!(digest(["x"]), digest(["x"]));
    }
}
