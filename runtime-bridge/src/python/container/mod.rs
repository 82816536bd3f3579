//! Python nodes in containers: a node with a `docker` block runs its worker inside a container
//! built for that block (a base image with Debian's Python, plus the node's pip packages),
//! started through the Docker CLI or podman. The worker is the same program on the same
//! iceoryx2 channel as a local one: `/dev/shm` and iceoryx2's directory are shared with the
//! container, so data still crosses without a copy.
//!
//! - `spec`: what the manifest's `docker` block says, and the keys images and containers are
//!   cached under.
//! - `engine`: finding and calling the container CLI.
//! - `image`: the base images on hand and the per-spec images built on them.
//! - `pool`: running containers, shared by the sessions of one process, and the janitor that
//!   removes what a dead process left behind.

use crate::node::NodeError;

mod engine;
mod image;
mod pool;
mod spec;

pub use engine::{Engine, EngineError};
pub use image::{BASE_LABEL, ImageError};
pub use pool::{Container, acquire};
pub use spec::{ContainerSpec, ContainerSpecError, from_entry};

/// Why a container node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("cannot find the remotemedia package for the container: {0}")]
    Package(String),
    #[error("cannot prepare the directory shared with containers ({path}): {cause}")]
    SharedDir { path: String, cause: String },
}

impl From<ContainerError> for NodeError {
    /// What the user has to change (an engine, a base image, the Python version, a package pip
    /// cannot install) is configuration; an engine command that failed or hung, or a directory
    /// that cannot be written, is a failure of the run.
    fn from(e: ContainerError) -> Self {
        let config = matches!(
            &e,
            ContainerError::Engine(EngineError::NotFound | EngineError::Named(_))
                | ContainerError::Image(
                    ImageError::NoBase
                        | ImageError::PythonVersion { .. }
                        | ImageError::Ambiguous(_)
                        | ImageError::Pip { .. }
                        | ImageError::Engine(EngineError::NotFound | EngineError::Named(_))
                )
                | ContainerError::Package(_)
        );
        if config {
            NodeError::Config(e.to_string())
        } else {
            NodeError::Failed(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ErrorCode;

    #[test]
    fn what_the_user_must_change_is_config_and_a_failing_engine_is_a_pipeline_error() {
        let code = |e: ContainerError| NodeError::from(e).code();
        assert_eq!(code(EngineError::NotFound.into()), ErrorCode::Config);
        let pip = ImageError::Pip {
            packages: vec!["nonexistent-pkg".into()],
            reason: "No matching distribution".into(),
        };
        assert_eq!(code(pip.into()), ErrorCode::Config);
        let hung = EngineError::TimedOut {
            command: "podman run".into(),
            after: Duration::from_secs(60),
        };
        assert_eq!(code(hung.clone().into()), ErrorCode::Pipeline);
        assert_eq!(code(ImageError::Engine(hung).into()), ErrorCode::Pipeline);
        let failed = EngineError::Failed {
            command: "podman exec".into(),
            cause: "container is paused".into(),
        };
        let err = NodeError::from(ContainerError::from(failed));
        assert_eq!(err.code(), ErrorCode::Pipeline);
        assert!(err.to_string().contains("podman exec"), "{err}");
    }
}
