//! What the bench's two binaries share. `loyalty-bench` drives the server with the HTTP load
//! generator in its own process (the in-process figures) and also starts `loyalty-load`, the
//! same generator as a process of its own, so that the server's CPU is measured alone.
#![forbid(unsafe_code)]
// Rates and percentiles are measurements, not money or points: floats are right here.
#![allow(clippy::float_arithmetic)]

use std::net::SocketAddr;
use std::time::Duration;

use hyper::{Method, StatusCode};

pub mod cpu;
pub mod generator;
pub mod latency;
pub mod workload;

/// What the load generator and the CPU readings can fail with. The messages leave the cause
/// to `source()`, which anyhow prints after them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the server at {addr}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP/1.1 handshake with {addr} failed")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("cannot build the request {method} {path}")]
    Build {
        method: Method,
        path: String,
        source: hyper::http::Error,
    },
    /// The connection failed or closed while sending a request or reading its answer.
    #[error("{method} {path} failed")]
    Request {
        method: Method,
        path: String,
        source: hyper::Error,
    },
    /// An answer that is neither a success nor a refusal (4xx): a 5xx, or a redirect.
    #[error("the server answered {status} to {method} {path}")]
    Status {
        status: StatusCode,
        method: Method,
        path: String,
    },
    #[error("a load generator task failed")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot read {path}")]
    Proc {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("{path} is not as expected: {text:?}")]
    ProcFormat { path: &'static str, text: String },
}

/// Events (or requests) per second; the bench reports rates as plain numbers, the core never
/// sees them.
pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}
