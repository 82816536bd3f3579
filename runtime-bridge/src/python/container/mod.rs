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

mod engine;
mod image;
mod pool;
mod spec;

pub use engine::{Engine, EngineError};
pub use image::{BASE_LABEL, ImageError};
pub use pool::{Container, acquire};
pub use spec::{ContainerSpec, ContainerSpecError, from_entry};

/// Why a container node cannot start; reported at load time as a configuration error.
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
