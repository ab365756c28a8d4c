//! # arrwdb-edge
//!
//! arrwDB as one WebAssembly component with two faces:
//!
//! - `arrw:db/engine` ([`engine_export`]): the engine's byte-oriented interface. The
//!   `arrwdb` host instantiates this component once per tenant and drives it through
//!   these exports; the host owns storage.
//! - `wasi:http/incoming-handler` ([`http`]): the data API served directly by any
//!   wasi:http runtime (Spin, `wasmtime serve`). Runtimes create a fresh instance per
//!   request, so each request loads the library it touches from storage ([`log`]
//!   over [`store`]: a mounted directory or an S3 bucket through outbound wasi:http,
//!   [`s3`]), checks the request's API key ([`auth`]), and acknowledges a write only
//!   once its WAL segment exists. [`config`] says where the data is.

// The exports only exist in the component: a native build (tests, clippy) has the
// routing and storage logic without export symbols, which a native linker rejects.
pub mod auth;
pub mod config;
#[cfg(target_arch = "wasm32")]
pub mod engine_export;
pub mod http;
pub mod log;
pub mod pinned;
pub mod s3;
pub mod store;
pub mod timing;

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)] // the spin-sdk macro generates the wasi:http export glue
mod handler {
    use spin_sdk::http::{IntoResponse, Request};
    use spin_sdk::http_component;

    /// The wasi:http entry point.
    #[http_component]
    fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
        Ok(super::http::handle(&request))
    }
}

/// Milliseconds since 1970 from the runtime's clock (`wasi:clocks` in the component),
/// for searches that rank by recency and did not say what time it is.
pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
