//! arrwDB's end-to-end tests: one integration binary (see ../shared/STYLE.md).
//!
//! They drive the real artifacts that `cargo xtask test` builds first: the `arrwdb`
//! host binary, the edge component under `wasmtime serve`, the npm package under Node,
//! and a real local S3 server (SeaweedFS). A missing artifact fails the test with the
//! command that builds it; nothing is skipped silently.

mod support;

mod auth;
mod cli;
mod conformance;
mod cross_runtime;
mod durability;
mod edge;
mod edge_s3;
mod embed;
mod events;
mod host;
mod isolation;
mod jobs;
mod observe;
mod openapi;
