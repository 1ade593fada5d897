//! Compiles `proto/` into Rust at build time, in pure Rust: `protox` parses the .proto
//! files (no system `protoc`), `tonic-prost-build` generates the messages (through
//! prost) and the gRPC server and client code into OUT_DIR, included by `src/proto.rs`.

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
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        // prost, except that nested transactions decode to etcd's depth (src/codec.rs).
        .codec_path("crate::codec::EtcdCodec")
        .compile_fds(descriptors)?;
    Ok(())
}
