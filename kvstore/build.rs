//! Compiles `proto/` into Rust structs at build time, in pure Rust: `protox` parses the
//! .proto files (no system `protoc`), `prost-build` turns the descriptors into code that
//! lands in OUT_DIR and is included by `src/proto.rs`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/mvccpb/kv.proto",
        "proto/etcdserverpb/rpc.proto",
        "proto/etcdserverpb/raft_internal.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
