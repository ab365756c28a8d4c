//! Logging setup (skeleton; issue 7's observability work adds JSON logs and the
//! slow-query log).

/// Installs the global `tracing` subscriber (stderr; `RUST_LOG` filter, default
/// `info`).
pub fn init() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
}
