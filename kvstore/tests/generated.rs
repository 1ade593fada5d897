//! The gRPC code in `src/proto/generated/` is checked in, so that a first build compiles
//! no code generator (protox, tonic-prost-build and what they need were a sixth of a cold
//! build). This test generates it again from `proto/` into a temporary directory, as a
//! build script did on every cold build before, and fails when the checked-in files are
//! not the same: `UPDATE_GENERATED=1 cargo test -p kvstore --test generated` rewrites
//! them.
//!
//! The test links the crate built from the checked-in code, so change a proto, rewrite
//! the code, and only then change the Rust that uses it.

use std::collections::BTreeSet;
use std::path::Path;

const PROTOS: [&str; 3] = [
    "mvccpb/kv.proto",
    "etcdserverpb/rpc.proto",
    "etcdserverpb/raft_internal.proto",
];

fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn the_checked_in_grpc_code_is_what_the_protos_generate() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = manifest.join("proto");
    let files = PROTOS.map(|file| include.join(file));
    let descriptors = protox::compile(files, [&include]).expect("the protos compile");
    let out = tempfile::tempdir().expect("a temporary directory");
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .generate_default_stubs(true)
        // prost, except that nested transactions decode to etcd's depth (src/codec.rs).
        .codec_path("crate::codec::EtcdCodec")
        .out_dir(out.path())
        .compile_fds(descriptors)
        .expect("tonic-prost-build generates the code");

    let update = std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1");
    let checked_in = manifest.join("src/proto/generated");
    let generated = file_names(out.path());
    let mut stale = Vec::new();
    for name in &generated {
        let fresh = std::fs::read(out.path().join(name)).expect("a generated file");
        let path = checked_in.join(name);
        if std::fs::read(&path).ok().as_ref() != Some(&fresh) {
            if update {
                std::fs::write(&path, &fresh).expect("src/proto/generated is writable");
            } else {
                stale.push(name.clone());
            }
        }
    }
    for name in file_names(&checked_in).difference(&generated) {
        if update {
            std::fs::remove_file(checked_in.join(name)).expect("src/proto/generated is writable");
        } else {
            stale.push(format!("{name} (no longer generated)"));
        }
    }
    assert!(
        stale.is_empty(),
        "src/proto/generated/ is not what proto/ generates ({}); run \
         `UPDATE_GENERATED=1 cargo test -p kvstore --test generated` and commit the result",
        stale.join(", ")
    );
}
