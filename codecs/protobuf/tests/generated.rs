//! The generated Rust code is checked in (no build script, no `protoc`): this
//! test regenerates it from proto/*.proto with prost-build and protox (a
//! protobuf compiler in Rust) and fails when the checked-in files differ.
//!
//! After editing a .proto file, refresh the code with
//! `UPDATE_GENERATED=1 cargo test -p ws-messaging-protobuf --test generated`.

use std::path::{Path, PathBuf};

use prost_build::Module;

/// The repository's proto/ directory.
fn proto_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto")
}

/// What prost-build makes of `file` (in proto/), configured by `configure`.
fn generate(file: &str, package: &str, configure: impl FnOnce(&mut prost_build::Config)) -> String {
    let descriptors = protox::compile([file], [proto_dir()]).unwrap_or_else(|e| panic!("{file}: {e}"));
    let requests = descriptors
        .file
        .into_iter()
        .filter(|f| f.name() == file)
        .map(|f| (Module::from_protobuf_package_name(f.package()), f))
        .collect();
    let mut config = prost_build::Config::new();
    configure(&mut config);
    let mut modules = config.generate(requests).unwrap();
    modules
        .remove(&Module::from_protobuf_package_name(package))
        .unwrap_or_else(|| panic!("no module for package {package}"))
}

/// Compares `generated` with the checked-in file `path`, or rewrites the file
/// when `UPDATE_GENERATED` is set.
fn check(path: PathBuf, generated: String) {
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, generated).unwrap();
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{} is not what prost-build generates from proto/: run \
         `UPDATE_GENERATED=1 cargo test -p ws-messaging-protobuf --test generated` and commit the result",
        path.display()
    );
}

#[test]
fn envelope_code_is_current() {
    let code = generate("envelope.proto", "ws_messaging", |config| {
        // `bytes::Bytes` fields: decoding from a `Bytes` frame slices it, so
        // arguments, results and errors are zero-copy views of the frame.
        config.bytes(["."]);
    });
    check(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src/generated/ws_messaging.rs"),
        code,
    );
}

/// The example and test messages, used from the root crate's examples and
/// tests, which reach prost through this crate's re-export.
fn example_config(config: &mut prost_build::Config) {
    config.prost_path("::ws_messaging_protobuf::prost");
}

#[test]
fn conformance_code_is_current() {
    let code = generate("conformance.proto", "ws_messaging.conformance", example_config);
    check(proto_dir().join("generated/ws_messaging.conformance.rs"), code);
}

#[test]
fn schema_example_code_is_current() {
    let code = generate("schema_example.proto", "ws_messaging.schema_example", example_config);
    check(proto_dir().join("generated/ws_messaging.schema_example.rs"), code);
}
