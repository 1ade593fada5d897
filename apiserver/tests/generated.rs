//! The descriptor set of `proto/k8s.proto` that the server decodes kubectl's protobuf
//! bodies with is checked in (`src/protobuf/k8s.bin`), so that a first build compiles no
//! proto compiler (protox and what it needs). This test compiles the proto again, as a
//! build script did on every cold build before, and fails when the checked-in file is
//! not the same: `UPDATE_GENERATED=1 cargo test -p apiserver --test generated` rewrites
//! it.

use std::path::Path;

#[test]
fn the_checked_in_descriptor_set_is_what_the_proto_compiles_to() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = manifest.join("proto");
    let descriptors =
        protox::compile([include.join("k8s.proto")], [&include]).expect("k8s.proto compiles");
    let fresh = prost::Message::encode_to_vec(&descriptors);

    let path = manifest.join("src/protobuf/k8s.bin");
    if std::fs::read(&path).ok().as_ref() == Some(&fresh) {
        return;
    }
    if std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("src/protobuf/ is writable");
        return;
    }
    panic!(
        "src/protobuf/k8s.bin is not what proto/k8s.proto compiles to; run \
         `UPDATE_GENERATED=1 cargo test -p apiserver --test generated` and commit the result"
    );
}
