//! Compiles the .proto files with protox (a protobuf compiler in Rust, so no protoc is needed)
//! and keeps the descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: [&str; 4] = [
    "proto/remotemedia/v1/types.proto",
    "proto/remotemedia/v1/execution.proto",
    "proto/remotemedia/v1/streaming.proto",
    "proto/remotemedia/v1/webrtc/signaling.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("remotemedia_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
