//! `arrwdb`: the arrwDB server. It runs the edge worker's WebAssembly component under
//! wasmtime (the engine is never linked natively), serves the REST API with axum, and
//! keeps every library durable in object storage as snapshots plus WAL segments.
//!
//! Startup binds the address first (so `/health` answers at once), then loads every
//! library from storage; `/ready` turns 200 when that is done. A corrupt object or a
//! gap in a log stops the server with the object's key (a torn *tail* does not: it is
//! reported in the log and in `/ready`). SIGTERM / SIGINT stop accepting requests, let
//! in-flight ones finish, snapshot every changed library and exit 0.
//!
//! `arrwdb serve --replica-of URL` serves a library read-only, following its writer;
//! `arrwdb backup` / `arrwdb restore` copy a consistent snapshot + WAL range between
//! stores. docs/durability.md describes the storage design.

mod admin;
mod auth;
mod backup;
mod bench_engine;
mod cli;
mod component;
mod embed;
mod error;
mod events;
mod faults;
mod http;
mod jobs;
mod log;
mod metrics;
mod native_build;
mod openapi;
mod ratelimit;
mod storage;
mod stream;
mod telemetry;
mod tenant;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::component::{EngineComponent, InstanceLimits};
use crate::log::RecoveryError;
use crate::storage::ObjectStorage;
use crate::tenant::{DurabilityConfig, Role, Tenant};

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
    Serve(Box<ServeArgs>),
    /// Copy every library (newest snapshot + the WAL after it, verified) from
    /// `--storage` to `--to`.
    Backup(BackupArgs),
    /// Copy every library from a backup (`--from`) into `--storage`.
    Restore(RestoreArgs),
    /// Client commands (import, export, search, libraries, keys, snapshot, completions, bench).
    #[command(flatten)]
    Client(cli::ClientCommand),
    /// The engine component's search and snapshot restore, timed in process
    /// (tests/bench/runtimes.py).
    #[command(hide = true)]
    BenchEngine(bench_engine::BenchEngineArgs),
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The live storage to read (same syntax as `serve --storage`).
    #[arg(long, env = "ARRWDB_STORAGE", default_value = "./data")]
    storage: String,
    /// Where the backup goes (a directory, file://, s3://, gs://, az://). Must not
    /// hold any of the libraries yet.
    #[arg(long)]
    to: String,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    /// The backup to read.
    #[arg(long)]
    from: String,
    /// The storage to restore into. Must not hold any of the libraries yet.
    #[arg(long, env = "ARRWDB_STORAGE", default_value = "./data")]
    storage: String,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "CONFIG FILE:
  --config FILE (or ARRWDB_CONFIG) reads settings from a TOML file. Keys are the long
  flag names above, in snake_case or kebab-case (`flush_interval_ms = 10` or
  `flush-interval-ms = 10`); booleans are `true`/`false`, e.g.

      addr = \"0.0.0.0:7700\"
      storage = \"s3://bucket/arrwdb\"
      read_instances = 4
      no_fsync = true

  Precedence: command-line flag > environment variable > file > built-in default.
  An unknown key is an error naming it.")]
struct ServeArgs {
    /// A TOML file of `serve` settings (see CONFIG FILE below).
    #[arg(long, env = "ARRWDB_CONFIG")]
    config: Option<PathBuf>,
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
    /// Most native threads one full index rebuild (`/rebuild`, `/optimize`) may use;
    /// all rebuilds together use at most the machine's cores. 0 rebuilds inside the
    /// engine component, on one thread. Default: the machine's cores.
    #[arg(long, env = "ARRWDB_BUILD_THREADS")]
    build_threads: Option<usize>,
    /// Largest accepted request body, in MiB.
    #[arg(long, env = "ARRWDB_MAX_BODY_MB", default_value_t = 64)]
    max_body_mb: usize,
    /// Serve read-only, following the writer of this storage (same syntax as
    /// `--storage`, which it replaces): polls its manifests and WAL.
    #[arg(long, env = "ARRWDB_REPLICA_OF")]
    replica_of: Option<String>,
    /// Group commit: the longest a write waits for others to share its WAL segment.
    #[arg(long, env = "ARRWDB_FLUSH_INTERVAL_MS", default_value_t = 5)]
    flush_interval_ms: u64,
    /// Group commit: flush at once when a batch holds this many commands.
    #[arg(long, env = "ARRWDB_FLUSH_MAX_RECORDS", default_value_t = 1024)]
    flush_max_records: usize,
    /// Group commit: flush at once when a batch holds about this many bytes.
    #[arg(long, env = "ARRWDB_FLUSH_MAX_BYTES", default_value_t = 8 << 20)]
    flush_max_bytes: usize,
    /// Write a snapshot once this many records follow a library's last one.
    #[arg(long, env = "ARRWDB_SNAPSHOT_EVERY_RECORDS", default_value_t = 10_000)]
    snapshot_every_records: u64,
    /// Write a snapshot once this many bytes of WAL follow a library's last one.
    #[arg(long, env = "ARRWDB_SNAPSHOT_EVERY_BYTES", default_value_t = 64 << 20)]
    snapshot_every_bytes: u64,
    /// Delete superseded snapshots, covered WAL segments and old manifests only when
    /// older than this many seconds.
    #[arg(long, env = "ARRWDB_GC_GRACE_SECS", default_value_t = 600)]
    gc_grace_secs: u64,
    /// Replicas: how often to poll the manifest and the WAL.
    #[arg(long, env = "ARRWDB_POLL_INTERVAL_MS", default_value_t = 100)]
    poll_interval_ms: u64,
    /// Local directory only: do not fsync objects (faster; an acknowledged write then
    /// survives a process crash but not a power loss or kernel crash).
    #[arg(long, env = "ARRWDB_NO_FSYNC")]
    no_fsync: bool,
    /// The operator's admin API key (`arrw_…`, at least 32 characters). Without it,
    /// the first start creates one, prints it once and stores only its hash.
    #[arg(long, env = "ARRWDB_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// LOCAL DEVELOPMENT ONLY: accept every request without a key, as the default
    /// tenant with every scope.
    #[arg(long, env = "ARRWDB_NO_AUTH")]
    no_auth: bool,
    /// Reads and searches per second per API key (burst: one second's worth); 0 =
    /// unlimited. A tenant record's `rates` overrides it.
    #[arg(long, env = "ARRWDB_SEARCH_RATE", default_value_t = 1000)]
    search_rate: u32,
    /// Writes per second per API key (burst: one second's worth); 0 = unlimited.
    #[arg(long, env = "ARRWDB_WRITE_RATE", default_value_t = 1000)]
    write_rate: u32,
    /// Do not cache compiled machine code of the component (wasmtime's cache in the
    /// user's cache directory, which makes restarts start in milliseconds).
    #[arg(long, env = "ARRWDB_NO_COMPILE_CACHE")]
    no_compile_cache: bool,
    /// Engine instances that answer reads and searches, per tenant. 1: the writer
    /// instance answers them (reads of a tenant run one at a time); N > 1: up to N
    /// concurrent reads, each on its own instance fed with the committed log (each
    /// costs the tenant's memory again; created on first concurrent use). Default:
    /// the number of CPU cores.
    #[arg(long, env = "ARRWDB_READ_INSTANCES")]
    read_instances: Option<usize>,
    #[command(flatten)]
    embedding: embed::EmbedArgs,
    #[command(flatten)]
    jobs: jobs::JobsArgs,
    #[command(flatten)]
    events: events::EventsArgs,
    #[command(flatten)]
    telemetry: telemetry::TelemetryArgs,
}

/// `hostname:pid:uuid`: who holds a writer epoch.
fn writer_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &uuid[..12])
}

fn default_component() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the running executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    Ok(dir.join("../wasm32-wasip2/release/arrwdb_edge.wasm"))
}

/// Parses the command line; for `serve --config FILE`, the file's settings become the
/// defaults of their flags (clap still lets the flag and its environment variable
/// override them), so one parser handles the precedence and every value's checks.
fn parse_cli() -> anyhow::Result<Cli> {
    let cli = Cli::parse();
    let Commands::Serve(args) = &cli.command else {
        return Ok(cli);
    };
    let Some(path) = &args.config else {
        return Ok(cli);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the config file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("the config file {} is not valid TOML", path.display()))?;
    let command = Cli::command();
    let serve = command
        .find_subcommand("serve")
        .context("the serve command is missing")?;
    let known: Vec<(String, String)> = serve
        .get_arguments()
        .filter_map(|a| Some((a.get_long()?.replace('-', "_"), a.get_id().to_string())))
        .filter(|(long, _)| !matches!(long.as_str(), "config" | "help" | "version"))
        .collect();
    let mut defaults: Vec<(String, Vec<String>)> = Vec::new();
    for (key, value) in table {
        let normalized = key.replace('-', "_");
        let Some((_, id)) = known.iter().find(|(long, _)| *long == normalized) else {
            anyhow::bail!(
                "the config file {}: unknown key `{key}` (keys are the long flag names of `arrwdb serve`, see --help)",
                path.display()
            );
        };
        let scalar = |v: &toml::Value| match v {
            toml::Value::String(s) => Ok(s.clone()),
            toml::Value::Integer(i) => Ok(i.to_string()),
            toml::Value::Float(f) => Ok(f.to_string()),
            toml::Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(anyhow::anyhow!(
                "the config file {}: `{key}` must be a string, number or boolean",
                path.display()
            )),
        };
        let values = match &value {
            toml::Value::Array(items) => items.iter().map(scalar).collect::<Result<_, _>>()?,
            other => vec![scalar(other)?],
        };
        defaults.push((id.clone(), values));
    }
    let command = command.mut_subcommand("serve", |mut serve| {
        for (id, values) in defaults {
            serve = serve.mut_arg(id, |arg| arg.default_values(values));
        }
        serve
    });
    let matches = command.get_matches();
    Cli::from_arg_matches(&matches).map_err(|e| e.exit())
}

/// The machine's cores (1 if unknown): the default of `--read-instances` and
/// `--build-threads`, and the native threads all index rebuilds share.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

fn main() -> anyhow::Result<()> {
    let cli = parse_cli()?;
    // Client commands run their own runtime and quiet logging, and exit with their code.
    let command = match cli.command {
        Commands::Client(command) => std::process::exit(crate::cli::run(command)),
        Commands::BenchEngine(args) => return bench_engine::run(&args),
        other => other,
    };
    match &command {
        Commands::Serve(args) => telemetry::init_with(&args.telemetry),
        _ => telemetry::init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    match command {
        Commands::Serve(args) => runtime.block_on(serve(*args)),
        Commands::Backup(args) => runtime.block_on(copy(&args.storage, &args.to)),
        Commands::Restore(args) => runtime.block_on(copy(&args.from, &args.storage)),
        Commands::Client(_) | Commands::BenchEngine(_) => Ok(()), // handled above
    }
}

async fn copy(from: &str, to: &str) -> anyhow::Result<()> {
    let source = ObjectStorage::open(from)?;
    let target = ObjectStorage::open(to)?;
    let copied =
        backup::copy_tenant(&source, &target, arrwdb_core::storage::DEFAULT_TENANT).await?;
    for library in &copied {
        tracing::info!(library = %library.name, snapshot = ?library.snapshot, records = ?library.records, objects = library.objects, "copied");
    }
    #[allow(clippy::print_stdout)] // the summary scripts read
    {
        println!(
            "copied {} libraries from {} to {}",
            copied.len(),
            source.description(),
            target.description()
        );
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let component_path = match args.component {
        Some(path) => path,
        None => default_component()?,
    };
    let limits = InstanceLimits {
        memory_bytes: args.memory_limit_mb.saturating_mul(1 << 20),
        call_timeout: Duration::from_secs(args.call_timeout_secs.max(1)),
        build_threads: args.build_threads.unwrap_or_else(cores),
    };
    let started = Instant::now();
    let cache = !args.no_compile_cache;
    let component =
        tokio::task::block_in_place(|| EngineComponent::load(&component_path, limits, cache))?;
    tracing::info!(
        component = %component_path.display(),
        ms = started.elapsed().as_millis() as u64,
        "engine component compiled"
    );
    let (spec, role) = match &args.replica_of {
        Some(source) => (
            source.clone(),
            Role::Replica {
                source: source.clone(),
            },
        ),
        None => (args.storage.clone(), Role::Writer { id: writer_id() }),
    };
    let mut storage = ObjectStorage::open(&spec)?;
    if args.no_fsync {
        storage = storage.without_fsync();
    }
    tracing::info!(storage = %storage.description(), role = ?role, "storage opened");
    let config = DurabilityConfig {
        flush_interval: Duration::from_millis(args.flush_interval_ms),
        flush_max_records: args.flush_max_records.max(1),
        flush_max_bytes: args.flush_max_bytes.max(1),
        snapshot_every_records: args.snapshot_every_records.max(1),
        snapshot_every_bytes: args.snapshot_every_bytes.max(1),
        gc_grace: Duration::from_secs(args.gc_grace_secs),
        poll_interval: Duration::from_millis(args.poll_interval_ms.max(1)),
        read_instances: args.read_instances.unwrap_or_else(cores).max(1),
    };
    tracing::info!(
        read_instances = config.read_instances,
        "read instances per tenant"
    );
    if args.replica_of.is_none() {
        let stale = storage.clone();
        let age = config.gc_grace;
        tokio::task::spawn_blocking(move || {
            let removed =
                stale.remove_stale_staging_files(arrwdb_core::storage::DEFAULT_TENANT, age);
            if removed > 0 {
                tracing::info!(removed, "removed staging files of interrupted uploads");
            }
        });
    }
    embed::install(embed::Providers::from_args(&args.embedding)?);
    events::bus().init(&args.events, storage.clone());
    let component = Arc::new(component);
    let tenant = Tenant::start(
        arrwdb_core::storage::DEFAULT_TENANT,
        component.clone(),
        storage.clone(),
        role.clone(),
        config.clone(),
    );
    let tenants = auth::Tenants::new(component, storage.clone(), role, config, tenant.clone());
    if args.no_auth {
        tracing::warn!(
            "!!! --no-auth: EVERY REQUEST IS ACCEPTED WITHOUT AN API KEY. Local development only; never expose this server. !!!"
        );
    }
    let (auth, created) = auth::Auth::open(
        storage.clone(),
        tenants,
        !args.no_auth,
        args.admin_key.as_deref(),
        ratelimit::Rates {
            search_per_sec: Some(args.search_rate),
            write_per_sec: Some(args.write_rate),
        },
    )
    .await
    .context("load tenants and API keys")?;
    let auth = Arc::new(auth);
    if let Some(key) = created {
        #[allow(clippy::print_stdout)] // shown once, by design
        {
            println!("created the admin API key (shown only now, stored as a hash): {key}");
            println!(
                "to choose the admin key yourself, start with ARRWDB_ADMIN_KEY=arrw_... or --admin-key"
            );
        }
    }

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
        loop {
            match loader.load().await {
                Ok(libraries) => {
                    tracing::info!(
                        libraries,
                        ms = started.elapsed().as_millis() as u64,
                        "storage loaded; ready"
                    );
                    break;
                }
                // Storage that fails now may answer in a moment; a corrupt log will not.
                Err(RecoveryError::Storage(e)) => {
                    metrics::metrics().storage_error("load");
                    tracing::warn!(error = %e, "loading storage failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    let _ = load_failed_tx.send(anyhow::anyhow!("loading storage failed: {e}"));
                    break;
                }
            }
        }
    });

    let jobs = jobs::Jobs::start(&args.jobs, auth.clone(), storage);
    let state = http::AppState {
        tenant: tenant.clone(),
        auth: auth.clone(),
        jobs,
        events: args.events.clone(),
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
    // PATCH /v1/admin/tenants/{t} lives in admin.rs until http::router registers it.
    let app = http::router(state);
    axum::serve(listener, app)
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
    events::bus().shutdown();
    tracing::info!("shutting down: snapshotting changed libraries");
    auth.tenants.snapshot_all().await;
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
