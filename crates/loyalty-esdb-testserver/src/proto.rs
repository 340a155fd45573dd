//! Code generated from the vendored `.proto` files (see `build.rs`).
#![allow(
    dead_code,
    clippy::all,
    clippy::pedantic,
    missing_debug_implementations
)]

pub mod event_store {
    pub mod client {
        tonic::include_proto!("event_store.client");

        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }

        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}
