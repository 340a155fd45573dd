//! Generates the gRPC server stubs of EventStoreDB's `Streams` and `ServerFeatures` services from
//! the vendored `.proto` files (the `eventstore` crate only ships client stubs).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    println!("cargo:rerun-if-changed=proto");

    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // Payloads as `Bytes`, like the client.
    config.bytes(["."]);

    tonic_build::configure()
        .build_client(false)
        .build_server(true)
        // The client maps the protocol's `Empty` to `()`; do the same.
        .extern_path(".event_store.client.Empty", "()")
        .compile_protos_with_config(
            config,
            &["proto/streams.proto", "proto/serverfeatures.proto"],
            &[std::path::PathBuf::from("proto"), well_known],
        )?;
    Ok(())
}
