//! Hosts the top-level `tests/` (the workspace root is a virtual manifest): see `Cargo.toml`.
#![forbid(unsafe_code)]
