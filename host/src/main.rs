//! `arrwdb`: the arrwDB server. It runs the edge worker's WebAssembly component under
//! wasmtime (the engine is never linked natively), serves the REST API with axum, and
//! keeps every library durable in object storage as snapshots plus WAL segments.
//!
//! Startup binds the address first (so `/health` answers at once), then loads every
//! library from storage; `/ready` turns 200 when that is done. A corrupt object or a
//! gap in a log stops the server with the object's key. SIGTERM / SIGINT stop
//! accepting requests, let in-flight ones finish, snapshot every changed library and
//! exit 0.

mod component;
mod error;
mod http;
mod storage;
mod tenant;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::component::{EngineComponent, InstanceLimits};
use crate::storage::ObjectStorage;
use crate::tenant::Tenant;

/// arrwDB: a vector database whose one engine runs in browsers, at the edge and here.
#[derive(Debug, Parser)]
#[command(name = "arrwdb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Serve the REST API.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "ARRWDB_ADDR", default_value = "127.0.0.1:7700")]
    addr: SocketAddr,
    /// Where data lives: a directory, file:///abs/path, memory:// or s3://bucket/prefix
    /// (S3 settings from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_REGION).
    #[arg(long, env = "ARRWDB_STORAGE", default_value = "./data")]
    storage: String,
    /// The engine component (arrwdb_edge.wasm). Default: the cargo layout next to this
    /// binary, `<exe dir>/../wasm32-wasip2/release/arrwdb_edge.wasm`.
    #[arg(long, env = "ARRWDB_COMPONENT")]
    component: Option<PathBuf>,
    /// Memory limit of each engine instance, in MiB (wasm32 caps it at 4096).
    #[arg(long, env = "ARRWDB_MEMORY_LIMIT_MB", default_value_t = 4096)]
    memory_limit_mb: usize,
    /// Longest a single engine call may run before it traps, in seconds.
    #[arg(long, env = "ARRWDB_CALL_TIMEOUT_SECS", default_value_t = 60)]
    call_timeout_secs: u64,
    /// Largest accepted request body, in MiB.
    #[arg(long, env = "ARRWDB_MAX_BODY_MB", default_value_t = 64)]
    max_body_mb: usize,
}

fn default_component() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the running executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    Ok(dir.join("../wasm32-wasip2/release/arrwdb_edge.wasm"))
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let Commands::Serve(args) = cli.command;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?
        .block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let component_path = match args.component {
        Some(path) => path,
        None => default_component()?,
    };
    let limits = InstanceLimits {
        memory_bytes: args.memory_limit_mb.saturating_mul(1 << 20),
        call_timeout: Duration::from_secs(args.call_timeout_secs.max(1)),
    };
    let started = Instant::now();
    let component = tokio::task::block_in_place(|| EngineComponent::load(&component_path, limits))?;
    tracing::info!(
        component = %component_path.display(),
        ms = started.elapsed().as_millis() as u64,
        "engine component compiled"
    );
    let storage = ObjectStorage::open(&args.storage)?;
    tracing::info!(storage = %storage.description(), "storage opened");
    let tenant = Arc::new(Tenant::new(
        arrwdb_core::storage::DEFAULT_TENANT,
        Arc::new(component),
        storage,
    ));

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("bind {}", args.addr))?;
    let addr = listener.local_addr()?;
    tracing::info!("listening on http://{addr}");
    #[allow(clippy::print_stdout)] // the one line scripts wait for
    {
        println!("listening on http://{addr}");
    }

    let (load_failed_tx, load_failed_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
    let loader = tenant.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        match loader.load().await {
            Ok(libraries) => tracing::info!(
                libraries,
                ms = started.elapsed().as_millis() as u64,
                "storage loaded; ready"
            ),
            Err(e) => {
                let _ = load_failed_tx.send(anyhow::anyhow!("loading storage failed: {e}"));
            }
        }
    });

    let state = http::AppState {
        tenant: tenant.clone(),
        max_body_bytes: args.max_body_mb << 20,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<Option<anyhow::Error>>();
    tokio::spawn(async move {
        let reason = tokio::select! {
            () = shutdown_signal() => None,
            Ok(e) = load_failed_rx => Some(e),
        };
        let _ = stop_tx.send(reason);
    });
    let (failure_tx, failure_rx) = tokio::sync::oneshot::channel();
    axum::serve(listener, http::router(state))
        .with_graceful_shutdown(async move {
            let reason = stop_rx.await.ok().flatten();
            let _ = failure_tx.send(reason);
        })
        .await
        .context("serve HTTP")?;
    if let Ok(Some(e)) = failure_rx.await {
        tracing::error!(error = %e, "stopping");
        return Err(e);
    }
    tracing::info!("shutting down: snapshotting changed libraries");
    tenant.snapshot_all().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
