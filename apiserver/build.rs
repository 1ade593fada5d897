//! Compiles proto/k8s.proto into a descriptor set in pure Rust (protox): the apiserver
//! decodes kubectl's protobuf request bodies with it at run time (prost-reflect).

fn main() {
    println!("cargo:rerun-if-changed=proto/k8s.proto");
    let descriptors =
        protox::compile(["proto/k8s.proto"], ["proto"]).expect("proto/k8s.proto compiles");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bytes = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out.join("k8s.bin"), bytes).expect("OUT_DIR is writable");
}
