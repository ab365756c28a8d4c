//! The client side of `arrwdb`: `import`, `export`, `search`, `libraries`, `keys`,
//! `snapshot`, `completions` and `bench` (docs/cli.md).
//!
//! Key choices:
//! - Every command is a sequence of HTTP-shaped calls to the REST API, sent either to a
//!   running server (`--url`, with reqwest) or, with `--storage`, to the very router
//!   `arrwdb serve` builds, run in this process (axum's `Router` is a tower `Service`,
//!   driven with `ServiceExt::oneshot`). Both modes therefore validate, answer and fail
//!   exactly alike, and no second code path can drift from the server's.
//! - `import` streams: a reader thread turns the file (NDJSON, a JSON array, or CSV with
//!   an embedding column) into NDJSON documents and feeds them to
//!   `POST /v1/libraries/{lib}/documents/stream` as the request body; nothing holds the
//!   whole file. Records the client itself cannot convert are sent as blank lines (the
//!   server skips them but counts them), so the server's line numbers stay the file's.
//! - Well-kept crates do the fiddly parts: `csv` (quoting, multi-line fields),
//!   `indicatif` (progress bars, shown only when stderr is a terminal), `clap_complete`
//!   (shell completions).
//! - Errors never panic: the server's `{"error":{"kind","message"}}` is printed as
//!   `error: message (kind)` and the process exits 1.

use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::body::Bytes;
use futures::StreamExt as _;
use futures::stream::BoxStream;
use serde_json::{Map, Value, json};

use crate::component::{EngineComponent, InstanceLimits};
use crate::storage::ObjectStorage;
use crate::tenant::{DurabilityConfig, Role, Tenant};

/// Where a client command sends its requests.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// The server to talk to.
    #[arg(
        long,
        env = "ARRWDB_URL",
        default_value = "http://127.0.0.1:7700",
        global = true
    )]
    pub url: String,
    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "ARRWDB_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Work directly on this storage instead of a server (a directory, file://,
    /// memory://, s3://…; same syntax as `serve --storage`). Only when no server is
    /// running on it: this process becomes its writer for the command's duration.
    #[arg(long, global = true)]
    pub storage: Option<String>,
    /// With --storage: the engine component (default: next to this binary, as for
    /// `serve`).
    #[arg(long, env = "ARRWDB_COMPONENT", global = true)]
    pub component: Option<PathBuf>,
}

/// The client commands (flattened into `arrwdb`'s commands).
#[derive(Debug, clap::Subcommand)]
pub enum ClientCommand {
    /// Import documents from an NDJSON, JSON-array or CSV file (streamed).
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
    /// Export a library's documents as NDJSON (importable again).
    #[command(after_help = "EXAMPLES:
  arrwdb export --library docs --output docs.ndjson --with-embeddings
  arrwdb export --library docs | jq .id")]
    Export(ExportArgs),
    /// Search a library by vector, text or both.
    #[command(after_help = "EXAMPLES:
  arrwdb search --library docs --vector '[0.1, 0.2, 0.3]' --k 5
  arrwdb search --library docs --text 'rust wasm' --mode keyword --filter '{\"lang\":\"en\"}'
  arrwdb search --library docs --vector '[0.1, 0.2, 0.3]' --json | jq '.hits[0]'")]
    Search(SearchArgs),
    /// List, show, create or delete libraries.
    #[command(after_help = "EXAMPLES:
  arrwdb libraries
  arrwdb libraries get docs
  arrwdb libraries create docs --dimension 384 --metric cosine --index hnsw
  arrwdb libraries create docs --dimension 384 --index '{\"type\":\"hnsw\",\"m\":32}'
  arrwdb libraries delete docs")]
    Libraries(LibrariesArgs),
    /// Create, list, rotate or revoke API keys (needs an admin key).
    #[command(after_help = "EXAMPLES:
  arrwdb keys create --scopes read,write --name ingest
  arrwdb keys list --tenant acme
  arrwdb keys rotate key_0123abcd
  arrwdb keys revoke key_0123abcd")]
    Keys(KeysArgs),
    /// Save a library's snapshot (the engine's checksummed binary format) to a file.
    #[command(after_help = "EXAMPLE:
  arrwdb snapshot --library docs --output docs.snapshot")]
    Snapshot(SnapshotArgs),
    /// Print a shell completion script.
    #[command(after_help = "EXAMPLES:
  arrwdb completions bash > /etc/bash_completion.d/arrwdb
  arrwdb completions zsh > \"${fpath[1]}/_arrwdb\"")]
    Completions(CompletionsArgs),
    /// A small search benchmark: fills a scratch library, searches it, prints QPS and
    /// latency percentiles, deletes the library.
    #[command(after_help = "EXAMPLES:
  arrwdb bench --vectors 5000 --dimension 128 --queries 1000
  arrwdb bench --index flat --concurrency 4 --json
  arrwdb bench --dataset vectors.ndjson --vectors 10000")]
    Bench(BenchArgs),
}

const IMPORT_HELP: &str = "FORMATS:
  ndjson  one JSON object per line; a line with `chunks` is a document as
          POST /v1/libraries/{lib}/documents takes it, any other object is a flat
          record (see below).
  json    a JSON array of such objects (streamed element by element).
  csv     a header row, then one record per row.
  A flat record becomes a one-chunk document: the --id-column value is its id, the
  --text-column value its text, the --embedding-column value its vector (a JSON array,
  or in CSV also numbers separated by spaces, `;` or `,`), and every other column its
  metadata (CSV cells that read as integers, decimals or true/false become numbers and
  booleans; empty cells are left out).
  Failures are reported by line (NDJSON, CSV) or element (JSON array) number; the
  exit code is 1 if any failed, and every other record is imported.

EXAMPLES:
  arrwdb import docs.ndjson --library docs
  arrwdb import items.csv --library docs --embedding-column vector --id-column sku
  arrwdb import export.json --library docs --format json
  cat docs.ndjson | arrwdb import - --library docs --format ndjson";

/// `arrwdb import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The file to import (`-` for standard input).
    file: PathBuf,
    /// The library to import into (it must exist).
    #[arg(long, short)]
    library: String,
    /// The file's format (auto: by extension, else by its first character).
    #[arg(long, value_enum, default_value_t = Format::Auto)]
    format: Format,
    /// The column (field) holding a flat record's vector.
    #[arg(long, default_value = "embedding")]
    embedding_column: String,
    /// The column (field) holding a flat record's id (without one the server makes one).
    #[arg(long, default_value = "id")]
    id_column: String,
    /// The column (field) holding a flat record's text.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// CSV field delimiter (one byte).
    #[arg(long, default_value_t = ',')]
    delimiter: char,
}

/// Input formats of `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Auto,
    Ndjson,
    Json,
    Csv,
}

/// `arrwdb export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The library to export.
    #[arg(long, short)]
    library: String,
    /// Write here (replaced once complete) instead of standard output.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Include every chunk's vector (needed to import into a library without an
    /// embedding provider).
    #[arg(long)]
    with_embeddings: bool,
    /// Only documents with a chunk matching this metadata filter (JSON).
    #[arg(long)]
    filter: Option<String>,
}

/// `arrwdb search`.
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The library to search.
    #[arg(long, short)]
    library: String,
    /// Query text (keyword search, or embedded by the library's provider).
    #[arg(long, required_unless_present = "vector")]
    text: Option<String>,
    /// Query vector, as a JSON array.
    #[arg(long)]
    vector: Option<String>,
    /// Number of hits.
    #[arg(long, short, default_value_t = 10)]
    k: u32,
    /// vector, keyword or hybrid (default: from what is given).
    #[arg(long)]
    mode: Option<String>,
    /// Metadata filter (JSON object).
    #[arg(long)]
    filter: Option<String>,
    /// Print the server's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

/// `arrwdb libraries`.
#[derive(Debug, clap::Args)]
pub struct LibrariesArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Option<LibrariesAction>,
}

/// What `arrwdb libraries` does (default: list).
#[derive(Debug, clap::Subcommand)]
pub enum LibrariesAction {
    /// List the libraries.
    List,
    /// Show one library.
    Get {
        /// The library's name.
        name: String,
    },
    /// Create a library.
    Create {
        /// The library's name (A-Z, a-z, 0-9, `_`, `-`).
        name: String,
        /// Vector dimension.
        #[arg(long)]
        dimension: u32,
        /// cosine, dot or l2.
        #[arg(long)]
        metric: Option<String>,
        /// Index: a kind (flat, hnsw, ivf, kd_tree, lsh) or its JSON config.
        #[arg(long)]
        index: Option<String>,
    },
    /// Delete a library and every document in it.
    Delete {
        /// The library's name.
        name: String,
    },
}

/// `arrwdb keys`.
#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    action: KeysAction,
}

/// What `arrwdb keys` does.
#[derive(Debug, clap::Subcommand)]
pub enum KeysAction {
    /// Create a key; prints it once (only its hash is stored).
    Create {
        /// The tenant the key belongs to.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Scopes: read, write, admin (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "read,write")]
        scopes: Vec<String>,
        /// A name to recognise the key by.
        #[arg(long)]
        name: Option<String>,
        /// Expiry, in days from now.
        #[arg(long)]
        expires_in_days: Option<u64>,
    },
    /// List a tenant's keys (never the keys themselves).
    List {
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Replace a key by a new one with the same scopes; prints the new key once.
    Rotate {
        /// The key's id.
        id: String,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// `arrwdb snapshot`.
#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The library.
    #[arg(long, short)]
    library: String,
    /// The file to write (replaced once complete).
    #[arg(long, short)]
    output: PathBuf,
}

/// `arrwdb completions`.
#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// bash, elvish, fish, powershell or zsh.
    shell: clap_complete::Shell,
}

/// `arrwdb bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Vectors to insert (at most 200000).
    #[arg(long, default_value_t = 2000)]
    vectors: usize,
    /// Dimension of the random vectors (ignored with --dataset).
    #[arg(long, default_value_t = 64)]
    dimension: u32,
    /// Searches to run (at most 100000).
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Hits per search.
    #[arg(long, short, default_value_t = 10)]
    k: u32,
    /// Index of the scratch library: a kind or its JSON config.
    #[arg(long, default_value = "hnsw")]
    index: String,
    /// Metric of the scratch library.
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Unmeasured searches first (index warm-up, read instances starting).
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Seed of the random vectors and of the query choice.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Vectors from this NDJSON file instead (each line a JSON array, or an object
    /// with an `embedding`); queries are drawn from them.
    #[arg(long)]
    dataset: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Largest `bench --vectors`.
const MAX_BENCH_VECTORS: usize = 200_000;
/// Largest `bench --queries`.
const MAX_BENCH_QUERIES: usize = 100_000;
/// Failures listed by name in `import`'s summary.
const SHOWN_FAILURES: usize = 10;

/// Runs a client command; prints any error and returns the process exit code (0 on
/// success, 1 on failure).
pub fn run(command: ClientCommand) -> i32 {
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = match runtime.block_on(dispatch(command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            1
        }
    };
    let _ = std::io::stdout().flush();
    // Background tasks of the in-process server (--storage) are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(5));
    code
}

/// Warnings and errors only (RUST_LOG overrides): the in-process server of
/// `--storage` would otherwise fill stderr with its startup lines.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(filter)
        .try_init();
}

/// An error message with its causes, as one line.
fn describe(e: &anyhow::Error) -> String {
    if let Some(api) = e.downcast_ref::<ApiFailure>() {
        return api.to_string();
    }
    format!("{e:#}")
}

async fn dispatch(command: ClientCommand) -> anyhow::Result<i32> {
    match command {
        ClientCommand::Completions(args) => completions(args.shell).map(|()| 0),
        ClientCommand::Import(args) => {
            let client = Client::open(&args.target).await?;
            let result = import(&client, &args).await;
            client.close().await;
            result
        }
        ClientCommand::Export(args) => with_client(&args.target, |c| export(c, &args)).await,
        ClientCommand::Search(args) => with_client(&args.target, |c| search(c, &args)).await,
        ClientCommand::Libraries(args) => with_client(&args.target, |c| libraries(c, &args)).await,
        ClientCommand::Keys(args) => with_client(&args.target, |c| keys(c, &args.action)).await,
        ClientCommand::Snapshot(args) => {
            with_client(&args.target, |c| snapshot(c, &args.library, &args.output)).await
        }
        ClientCommand::Bench(args) => with_client(&args.target, |c| bench(c, &args)).await,
    }
}

/// Opens the target, runs `f`, closes the target (snapshotting in direct mode).
async fn with_client<'a, F, Fut>(target: &TargetArgs, f: F) -> anyhow::Result<i32>
where
    F: FnOnce(&'a Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'a,
{
    // The client lives for the whole command; leaking one small value per process
    // keeps the borrow simple.
    let client: &'a Client = Box::leak(Box::new(Client::open(target).await?));
    let result = f(client).await;
    client.close().await;
    result.map(|()| 0)
}

// ---------------------------------------------------------------------------------
// Transport

/// The server's error answer.
#[derive(Debug)]
struct ApiFailure {
    status: u16,
    kind: String,
    message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, HTTP {})", self.message, self.kind, self.status)
    }
}

impl std::error::Error for ApiFailure {}

/// A request body.
enum Body {
    Empty,
    Json(Vec<u8>),
    Stream(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

/// A response whose body is still to be read.
struct Reply {
    status: u16,
    body: BoxStream<'static, anyhow::Result<Bytes>>,
}

impl Reply {
    /// The whole body (bounded: answers other than snapshots are small).
    async fn bytes(mut self) -> anyhow::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = self.body.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    /// Fails with the server's error unless the status is 2xx.
    async fn ok(self) -> anyhow::Result<Reply> {
        if (200..300).contains(&self.status) {
            return Ok(self);
        }
        let status = self.status;
        let bytes = self.bytes().await?;
        Err(api_failure(status, &bytes).into())
    }
}

fn api_failure(status: u16, bytes: &[u8]) -> ApiFailure {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let text = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    ApiFailure {
        status,
        kind: text("kind").unwrap_or_else(|| "unknown".into()),
        message: text("message").unwrap_or_else(|| {
            let body = String::from_utf8_lossy(bytes);
            let body = body.trim();
            if body.is_empty() {
                format!("the server answered HTTP {status}")
            } else {
                truncate(body, 300)
            }
        }),
    }
}

/// The in-process server of `--storage`.
struct Direct {
    router: axum::Router,
    auth: Arc<crate::auth::Auth>,
}

enum Transport {
    Remote {
        client: reqwest::Client,
        base: String,
        key: Option<String>,
    },
    Direct(Box<Direct>),
}

/// Sends the REST API's requests to a server or to the in-process router.
struct Client {
    transport: Transport,
}

/// Flags of `serve` that the in-process server takes from the environment (their
/// defaults otherwise), parsed by the same definitions.
#[derive(Debug, clap::Parser)]
struct ServerDefaults {
    #[command(flatten)]
    jobs: crate::jobs::JobsArgs,
    #[command(flatten)]
    events: crate::events::EventsArgs,
    #[command(flatten)]
    embedding: crate::embed::EmbedArgs,
}

fn default_component() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locate the running executable")?;
    let dir = exe.parent().context("the executable has no directory")?;
    Ok(dir.join("../wasm32-wasip2/release/arrwdb_edge.wasm"))
}

/// `hostname:pid:uuid`, as `serve` names its writer, marked as the CLI.
fn writer_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("arrwdb-cli:{}:{}", std::process::id(), &uuid[..12])
}

impl Client {
    async fn open(target: &TargetArgs) -> anyhow::Result<Client> {
        let transport = match &target.storage {
            Some(spec) => Transport::Direct(Box::new(open_direct(target, spec).await?)),
            None => {
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .context("build the HTTP client")?;
                Transport::Remote {
                    client,
                    base: target.url.trim_end_matches('/').to_string(),
                    key: target.api_key.clone().filter(|k| !k.is_empty()),
                }
            }
        };
        Ok(Client { transport })
    }

    /// Direct mode: snapshots what changed, so the next start loads fast.
    async fn close(&self) {
        if let Transport::Direct(direct) = &self.transport {
            direct.auth.tenants.snapshot_all().await;
        }
    }

    async fn send(&self, method: &str, path: &str, body: Body) -> anyhow::Result<Reply> {
        let method = axum::http::Method::from_bytes(method.as_bytes())
            .with_context(|| format!("bad HTTP method {method}"))?;
        let content_type = match &body {
            Body::Empty => None,
            Body::Json(_) => Some("application/json"),
            Body::Stream(_) => Some("application/x-ndjson"),
        };
        match &self.transport {
            Transport::Remote { client, base, key } => {
                let url = format!("{base}{path}");
                let mut request = client.request(method, &url);
                if let Some(key) = key {
                    request = request.bearer_auth(key);
                }
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                request = match body {
                    Body::Empty => request,
                    Body::Json(bytes) => request.body(bytes),
                    Body::Stream(stream) => request.body(reqwest::Body::wrap_stream(stream)),
                };
                let response = request.send().await.map_err(|e| {
                    let mut message = format!("cannot reach the server at {base}: {e}");
                    let mut source = std::error::Error::source(&e);
                    while let Some(cause) = source {
                        let _ = write!(message, ": {cause}");
                        source = cause.source();
                    }
                    anyhow::anyhow!(
                        "{message} (start one with `arrwdb serve`, set --url / ARRWDB_URL, or use --storage DIR without a server)"
                    )
                })?;
                let status = response.status().as_u16();
                let body = response
                    .bytes_stream()
                    .map(|chunk| chunk.map_err(|e| anyhow::anyhow!("reading the answer: {e}")))
                    .boxed();
                Ok(Reply { status, body })
            }
            Transport::Direct(direct) => {
                use tower::ServiceExt as _;
                let body = match body {
                    Body::Empty => axum::body::Body::empty(),
                    Body::Json(bytes) => axum::body::Body::from(bytes),
                    Body::Stream(stream) => axum::body::Body::from_stream(stream),
                };
                let mut request = axum::http::Request::builder().method(method).uri(path);
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                let request = request.body(body).context("build the request")?;
                let response = match direct.router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .into_data_stream()
                    .map(|chunk| chunk.map_err(|e| anyhow::anyhow!("reading the answer: {e}")))
                    .boxed();
                Ok(Reply { status, body })
            }
        }
    }

    /// One JSON call: the parsed answer (`null` for an empty one) or the server's error.
    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let body = match body {
            Some(value) => Body::Json(serde_json::to_vec(value)?),
            None => Body::Empty,
        };
        let bytes = self
            .send(method, path, body)
            .await?
            .ok()
            .await?
            .bytes()
            .await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).context("the server's answer is not JSON")
    }
}

/// Builds what `serve` builds (component, storage, default tenant, auth switched
/// off, jobs, router) and waits until storage is loaded.
async fn open_direct(target: &TargetArgs, spec: &str) -> anyhow::Result<Direct> {
    let path = match &target.component {
        Some(path) => path.clone(),
        None => default_component()?,
    };
    if !path.exists() {
        anyhow::bail!(
            "the engine component {} does not exist (pass --component or ARRWDB_COMPONENT; `cargo xtask build-edge` builds it)",
            path.display()
        );
    }
    let limits = InstanceLimits {
        memory_bytes: 4096 << 20,
        call_timeout: Duration::from_secs(60),
        build_threads: crate::cores(),
    };
    let component = tokio::task::block_in_place(|| EngineComponent::load(&path, limits, true))
        .map_err(|e| anyhow::anyhow!("load the engine component {}: {e:#}", path.display()))?;
    let component = Arc::new(component);
    let storage = ObjectStorage::open(spec)?;
    let defaults = <ServerDefaults as clap::Parser>::try_parse_from(["arrwdb"])
        .map_err(|e| anyhow::anyhow!("server settings from the environment: {e}"))?;
    crate::embed::install(crate::embed::Providers::from_args(&defaults.embedding)?);
    crate::events::bus().init(&defaults.events, storage.clone());
    let role = Role::Writer { id: writer_id() };
    let config = DurabilityConfig::default();
    let tenant = Tenant::start(
        arrwdb_core::storage::DEFAULT_TENANT,
        component.clone(),
        storage.clone(),
        role.clone(),
        config.clone(),
    );
    let mut attempts = 0;
    loop {
        match tenant.load().await {
            Ok(_) => break,
            Err(crate::log::RecoveryError::Storage(e)) if attempts < 25 => {
                attempts += 1;
                tracing::warn!(error = %e, "loading storage failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => anyhow::bail!("loading {spec} failed: {e}"),
        }
    }
    let tenants =
        crate::auth::Tenants::new(component, storage.clone(), role, config, tenant.clone());
    let (auth, _) = crate::auth::Auth::open(
        storage.clone(),
        tenants,
        false,
        None,
        crate::ratelimit::Rates::default(),
    )
    .await
    .context("load tenants and API keys")?;
    let auth = Arc::new(auth);
    let jobs = crate::jobs::Jobs::start(&defaults.jobs, auth.clone(), storage);
    let state = crate::http::AppState {
        tenant,
        auth: auth.clone(),
        jobs,
        events: defaults.events,
        max_body_bytes: 64 << 20,
    };
    let router = crate::http::router(state);
    Ok(Direct { router, auth })
}

/// Percent-encodes a path segment (everything but RFC 3986's unreserved characters).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// At most `max` characters of `text`, with `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("write to standard output"),
    }
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// A left-aligned text table (numbers are pre-formatted by the caller).
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut row = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count());
            row.push_str(cell);
            row.push_str(&" ".repeat(pad + 2));
        }
        text.push_str(row.trim_end());
        text.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

fn parse_json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).with_context(|| format!("--{flag} is not valid JSON"))
}

/// `--index hnsw` or `--index '{"type":"hnsw","m":32}'`.
fn index_config(text: &str) -> anyhow::Result<Value> {
    if text.trim_start().starts_with('{') {
        parse_json_arg("index", text)
    } else {
        Ok(json!({ "type": text }))
    }
}

// ---------------------------------------------------------------------------------
// import

/// One record that failed, client- or server-side.
#[derive(Debug, Clone, PartialEq)]
struct Failure {
    line: u64,
    kind: String,
    message: String,
}

/// Failures: how many, and the first few by line.
#[derive(Debug, Default)]
struct Failures {
    count: u64,
    first: Vec<Failure>,
}

impl Failures {
    fn push(&mut self, failure: Failure) {
        self.count += 1;
        self.first.push(failure);
        if self.first.len() > SHOWN_FAILURES * 4 {
            self.trim();
        }
    }

    fn trim(&mut self) {
        self.first.sort_by_key(|f| f.line);
        self.first.truncate(SHOWN_FAILURES);
    }
}

/// How the reader thread turns records into documents.
#[derive(Debug, Clone)]
struct Columns {
    id: String,
    text: String,
    embedding: String,
}

/// The NDJSON line of a JSON record: a document (`chunks` present) as is, a flat
/// record converted.
fn record_document(record: Value, columns: &Columns) -> Result<Value, String> {
    let Value::Object(mut fields) = record else {
        return Err("a record must be a JSON object".into());
    };
    if fields.contains_key("chunks") {
        return Ok(Value::Object(fields));
    }
    let id = match fields.remove(&columns.id) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(format!("`{}` must be a string or a number", columns.id)),
    };
    let text = match fields.remove(&columns.text) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(_) => return Err(format!("`{}` must be a string", columns.text)),
    };
    let embedding = match fields.remove(&columns.embedding) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(parse_vector(&s).map_err(|e| format!("`{}`: {e}", columns.embedding))?)
        }
        Some(Value::Array(items)) => Some(Value::Array(items)),
        Some(_) => {
            return Err(format!(
                "`{}` must be an array of numbers",
                columns.embedding
            ));
        }
    };
    Ok(flat_document(id, text, embedding, fields))
}

fn flat_document(
    id: Option<String>,
    text: String,
    embedding: Option<Value>,
    metadata: Map<String, Value>,
) -> Value {
    let mut chunk = Map::new();
    chunk.insert("text".into(), Value::String(text));
    if let Some(embedding) = embedding {
        chunk.insert("embedding".into(), embedding);
    }
    let mut document = Map::new();
    if let Some(id) = id {
        document.insert("id".into(), Value::String(id));
    }
    document.insert("metadata".into(), Value::Object(metadata));
    document.insert("chunks".into(), Value::Array(vec![Value::Object(chunk)]));
    Value::Object(document)
}

/// A vector written as a JSON array, or as numbers separated by spaces, `;` or `,`.
fn parse_vector(text: &str) -> Result<Value, String> {
    let text = text.trim();
    if text.starts_with('[') {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not a JSON array of numbers: {e}"))?;
        return match value {
            Value::Array(items) if items.iter().all(Value::is_number) => Ok(Value::Array(items)),
            _ => Err("not a JSON array of numbers".into()),
        };
    }
    let mut items = Vec::new();
    for part in text
        .split(|c: char| c == ';' || c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        let n: f64 = part
            .parse()
            .map_err(|_| format!("`{}` is not a number", truncate(part, 40)))?;
        let n = serde_json::Number::from_f64(n).ok_or_else(|| format!("`{part}` is not finite"))?;
        items.push(Value::Number(n));
    }
    if items.is_empty() {
        return Err("the vector is empty".into());
    }
    Ok(Value::Array(items))
}

/// A CSV cell as metadata: integers, decimals and booleans typed, others strings.
fn cell_value(cell: &str) -> Value {
    if let Ok(n) = cell.parse::<i64>()
        && n.to_string() == cell
    {
        return Value::from(n);
    }
    if cell.contains(['.', 'e', 'E'])
        && !cell.starts_with(['+', '.'])
        && let Ok(f) = cell.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    match cell {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(cell.into()),
    }
}

/// Sends converted lines into the request body, in chunks of about 64 KiB.
struct LineSink {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buffer: Vec<u8>,
    /// Lines written so far (the server's line numbers).
    lines: u64,
}

impl LineSink {
    fn line(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.buffer.extend_from_slice(bytes);
        self.buffer.push(b'\n');
        self.lines += 1;
        if self.buffer.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(())
    }

    /// Blank lines up to (not including) line `n`.
    fn pad_to(&mut self, n: u64) -> Result<(), Stop> {
        while self.lines + 1 < n {
            self.line(b"")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Stop> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.buffer));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| Stop::Closed)
    }
}

/// Why the reader thread stopped early.
#[derive(Debug)]
enum Stop {
    /// The request ended (its error is reported by the caller).
    Closed,
    /// The file cannot be read further.
    Fatal(String),
}

/// What the reader thread reports.
#[derive(Debug, Default)]
struct ReadOutcome {
    failures: Failures,
    records: u64,
    fatal: Option<String>,
}

/// Which number `import` reports: lines for NDJSON and CSV, elements for JSON arrays.
fn unit(format: Format) -> &'static str {
    if format == Format::Json {
        "element"
    } else {
        "line"
    }
}

/// The format from `--format`, the extension, or the first non-blank byte.
fn detect_format(format: Format, path: &Path, first: Option<u8>) -> Format {
    if format != Format::Auto {
        return format;
    }
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("ndjson" | "jsonl") => return Format::Ndjson,
        Some("csv" | "tsv") => return Format::Csv,
        _ => {}
    }
    match first {
        Some(b'[') => Format::Json,
        Some(b'{') => Format::Ndjson,
        _ => Format::Csv,
    }
}

/// Reads `input` in `format`, writing one NDJSON document per record.
fn convert(
    input: Box<dyn std::io::BufRead + Send>,
    format: Format,
    columns: &Columns,
    delimiter: u8,
    sink: &mut LineSink,
) -> ReadOutcome {
    let mut outcome = ReadOutcome::default();
    let result = match format {
        Format::Json => convert_json(input, columns, sink, &mut outcome),
        Format::Csv => convert_csv(input, columns, delimiter, sink, &mut outcome),
        Format::Ndjson | Format::Auto => convert_ndjson(input, columns, sink, &mut outcome),
    };
    let result = result.and_then(|()| sink.flush());
    if let Err(Stop::Fatal(message)) = result {
        outcome.fatal = Some(message);
    }
    outcome
}

fn local_failure(outcome: &mut ReadOutcome, line: u64, message: String) {
    outcome.failures.push(Failure {
        line,
        kind: "invalid".into(),
        message,
    });
}

fn convert_ndjson(
    mut input: Box<dyn std::io::BufRead + Send>,
    columns: &Columns,
    sink: &mut LineSink,
    outcome: &mut ReadOutcome,
) -> Result<(), Stop> {
    let mut line = Vec::new();
    let mut number = 0u64;
    loop {
        line.clear();
        let read = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Stop::Fatal(format!("line {}: cannot read: {e}", number + 1)))?;
        if read == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            sink.line(b"")?;
            continue;
        }
        outcome.records += 1;
        match serde_json::from_slice::<Value>(text) {
            // A document goes as is, so the server's own checks and messages apply.
            Ok(Value::Object(fields)) if fields.contains_key("chunks") => sink.line(text)?,
            Ok(record) => match record_document(record, columns) {
                Ok(document) => sink.line(&serde_json::to_vec(&document).unwrap_or_default())?,
                Err(message) => {
                    local_failure(outcome, number, message);
                    sink.line(b"")?;
                }
            },
            // Not JSON: the server says why, under this line's number.
            Err(_) => sink.line(text)?,
        }
    }
}

/// Streams the elements of a top-level JSON array, one at a time.
struct Elements<'a> {
    columns: &'a Columns,
    sink: &'a mut LineSink,
    outcome: &'a mut ReadOutcome,
    stop: Option<Stop>,
}

fn convert_json(
    input: Box<dyn std::io::BufRead + Send>,
    columns: &Columns,
    sink: &mut LineSink,
    outcome: &mut ReadOutcome,
) -> Result<(), Stop> {
    use serde::Deserializer as _;
    let mut deserializer = serde_json::Deserializer::from_reader(input);
    let mut elements = Elements {
        columns,
        sink,
        outcome,
        stop: None,
    };
    // `&mut Elements` is not a Visitor; pass it by value and read `stop` back.
    let visitor = ElementsRef(&mut elements);
    let result = deserializer.deserialize_seq(visitor);
    if let Some(stop) = elements.stop.take() {
        return Err(stop);
    }
    result.map_err(|e| Stop::Fatal(format!("the file is not a JSON array: {e}")))?;
    deserializer
        .end()
        .map_err(|e| Stop::Fatal(format!("after the JSON array: {e}")))
}

/// Lets [`Elements`] be used by reference, so its `stop` can be read afterwards.
struct ElementsRef<'a, 'b>(&'a mut Elements<'b>);

impl<'de> serde::de::Visitor<'de> for ElementsRef<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of documents or records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let this = self.0;
        let mut number = 0u64;
        loop {
            let element = match seq.next_element::<Value>() {
                Ok(Some(element)) => element,
                Ok(None) => return Ok(()),
                Err(e) => {
                    this.stop = Some(Stop::Fatal(format!(
                        "element {}: the JSON array is malformed: {e}",
                        number + 1
                    )));
                    return Ok(());
                }
            };
            number += 1;
            this.outcome.records += 1;
            let line = match record_document(element, this.columns) {
                Ok(document) => serde_json::to_vec(&document).unwrap_or_default(),
                Err(message) => {
                    local_failure(this.outcome, number, message);
                    Vec::new()
                }
            };
            if let Err(stop) = this.sink.line(&line) {
                this.stop = Some(stop);
                return Ok(());
            }
        }
    }
}

fn convert_csv(
    input: Box<dyn std::io::BufRead + Send>,
    columns: &Columns,
    delimiter: u8,
    sink: &mut LineSink,
    outcome: &mut ReadOutcome,
) -> Result<(), Stop> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(false)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| Stop::Fatal(format!("line 1: cannot read the CSV header: {e}")))?
        .clone();
    if !headers.iter().any(|h| h == columns.embedding) {
        tracing::warn!(
            column = %columns.embedding,
            "the CSV has no embedding column; the library's embedding provider must embed the text"
        );
    }
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line().max(2);
        match reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(line, csv::Position::line);
                sink.pad_to(line)?;
                outcome.records += 1;
                match csv_document(&headers, &record, columns) {
                    Ok(document) => {
                        sink.line(&serde_json::to_vec(&document).unwrap_or_default())?;
                    }
                    Err(message) => {
                        local_failure(outcome, line, message);
                        sink.line(b"")?;
                    }
                }
            }
            Err(e) => {
                let line = e.position().map_or(line, csv::Position::line);
                if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    // One bad row: report it and carry on.
                    sink.pad_to(line)?;
                    outcome.records += 1;
                    local_failure(outcome, line, format!("{e}"));
                    sink.line(b"")?;
                } else {
                    return Err(Stop::Fatal(format!("line {line}: {e}")));
                }
            }
        }
    }
}

fn csv_document(
    headers: &csv::StringRecord,
    record: &csv::StringRecord,
    columns: &Columns,
) -> Result<Value, String> {
    let mut id = None;
    let mut text = String::new();
    let mut embedding = None;
    let mut metadata = Map::new();
    for (name, cell) in headers.iter().zip(record.iter()) {
        if name == columns.id {
            id = (!cell.is_empty()).then(|| cell.to_string());
        } else if name == columns.text {
            text = cell.to_string();
        } else if name == columns.embedding {
            if !cell.trim().is_empty() {
                embedding = Some(parse_vector(cell).map_err(|e| format!("`{name}`: {e}"))?);
            }
        } else if !cell.is_empty() {
            metadata.insert(name.to_string(), cell_value(cell));
        }
    }
    Ok(flat_document(id, text, embedding, metadata))
}

/// A progress bar on stderr, or nothing when stderr is not a terminal.
fn progress(length: Option<u64>, template: &str) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match length {
        Some(length) => indicatif::ProgressBar::new(length),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn import(client: &Client, args: &ImportArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let stdin = args.file.as_os_str() == "-";
    let (mut input, length): (Box<dyn std::io::BufRead + Send>, Option<u64>) = if stdin {
        (Box::new(std::io::BufReader::new(std::io::stdin())), None)
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("open {}", args.file.display()))?;
        let length = file.metadata().ok().map(|m| m.len());
        (
            Box::new(std::io::BufReader::with_capacity(1 << 16, file)),
            length,
        )
    };
    let first = input
        .fill_buf()
        .ok()
        .and_then(|b| b.iter().copied().find(|c| !c.is_ascii_whitespace()));
    let format = detect_format(args.format, &args.file, first);
    let delimiter = u8::try_from(args.delimiter)
        .ok()
        .filter(u8::is_ascii)
        .context("--delimiter must be one ASCII character")?;
    // Fail on an unknown library before reading the file.
    client
        .call(
            "GET",
            &format!("/v1/libraries/{}", segment(&args.library)),
            None,
        )
        .await?;
    let bar = progress(
        length,
        "{spinner} {elapsed_precise} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
    );
    let input: Box<dyn std::io::BufRead + Send> =
        Box::new(std::io::BufReader::new(bar.wrap_read(input)));
    let columns = Columns {
        id: args.id_column.clone(),
        text: args.text_column.clone(),
        embedding: args.embedding_column.clone(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let reader = tokio::task::spawn_blocking(move || {
        let mut sink = LineSink {
            tx,
            buffer: Vec::new(),
            lines: 0,
        };
        convert(input, format, &columns, delimiter, &mut sink)
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    })
    .boxed();
    let path = format!("/v1/libraries/{}/documents/stream", segment(&args.library));
    let reply = client.send("POST", &path, Body::Stream(body)).await;
    bar.set_message("waiting for the results");
    let reply = match reply {
        Ok(reply) => reply.ok().await,
        Err(e) => Err(e),
    };
    let mut failures = Failures::default();
    let mut upserted = 0u64;
    let result = match reply {
        Ok(reply) => read_results(reply, &mut failures, &mut upserted).await,
        Err(e) => Err(e),
    };
    bar.finish_and_clear();
    let outcome = reader.await.context("the file reader stopped")?;
    result?;
    failures.count += outcome.failures.count;
    failures.first.extend(outcome.failures.first);
    failures.trim();
    let unit = unit(format);
    let mut text = format!(
        "imported {upserted} of {} records into `{}` in {:.2} s",
        outcome.records,
        args.library,
        started.elapsed().as_secs_f64()
    );
    if failures.count > 0 {
        let _ = write!(text, "; {} failed:", failures.count);
    }
    text.push('\n');
    for f in &failures.first {
        let _ = writeln!(text, "  {unit} {}: {} ({})", f.line, f.message, f.kind);
    }
    if failures.count > failures.first.len() as u64 {
        let _ = writeln!(
            text,
            "  … and {} more",
            failures.count - failures.first.len() as u64
        );
    }
    out(&text)?;
    if let Some(fatal) = outcome.fatal {
        anyhow::bail!("{} stopped: {fatal}", args.file.display());
    }
    if failures.count > 0 {
        eprintln!(
            "error: {} of {} records failed",
            failures.count, outcome.records
        );
        return Ok(1);
    }
    Ok(0)
}

/// Reads the stream endpoint's NDJSON answer: one result per line, then a summary.
async fn read_results(
    mut reply: Reply,
    failures: &mut Failures,
    upserted: &mut u64,
) -> anyhow::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut take = |line: &[u8]| -> anyhow::Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let value: Value =
            serde_json::from_slice(line).context("the server's result line is not JSON")?;
        if value.get("done").is_some() {
            return Ok(());
        }
        let failed = value.get("error").is_some() || value.get("ok") == Some(&Value::Bool(false));
        if failed {
            let error = value.get("error");
            let text = |key: &str| {
                error
                    .and_then(|e| e.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
                    .to_string()
            };
            failures.push(Failure {
                line: value.get("line").and_then(Value::as_u64).unwrap_or(0),
                kind: text("kind"),
                message: text("message"),
            });
        } else {
            *upserted += 1;
        }
        Ok(())
    };
    while let Some(chunk) = reply.body.next().await {
        pending.extend_from_slice(&chunk?);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            take(&pending[..end])?;
            pending.drain(..=end);
        }
    }
    take(&pending)
}

// ---------------------------------------------------------------------------------
// export

async fn export(client: &Client, args: &ExportArgs) -> anyhow::Result<()> {
    let library = segment(&args.library);
    let info = client
        .call("GET", &format!("/v1/libraries/{library}"), None)
        .await?;
    let total = info.get("documents").and_then(Value::as_u64);
    let filter = match &args.filter {
        Some(text) => Some(serde_json::to_string(&parse_json_arg("filter", text)?)?),
        None => None,
    };
    let (mut writer, temp): (Box<dyn std::io::Write>, Option<tempfile::NamedTempFile>) =
        match &args.output {
            Some(path) => {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let temp = tempfile::NamedTempFile::new_in(dir)
                    .with_context(|| format!("create a file in {}", dir.display()))?;
                let file = temp.reopen().context("open the output file")?;
                (Box::new(std::io::BufWriter::new(file)), Some(temp))
            }
            None => (Box::new(std::io::BufWriter::new(std::io::stdout())), None),
        };
    let bar = progress(
        total,
        "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} documents",
    );
    let mut cursor: Option<String> = None;
    let mut exported = 0u64;
    loop {
        let mut query = format!("limit={}", arrwdb_core::api::MAX_LIST_LIMIT);
        if let Some(cursor) = &cursor {
            let _ = write!(query, "&cursor={}", segment(cursor));
        }
        if let Some(filter) = &filter {
            let _ = write!(query, "&filter={}", segment(filter));
        }
        let page = client
            .call(
                "GET",
                &format!("/v1/libraries/{library}/documents?{query}"),
                None,
            )
            .await?;
        let ids: Vec<String> = page
            .get("documents")
            .and_then(Value::as_array)
            .map(|docs| {
                docs.iter()
                    .filter_map(|d| d.get("id").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let library = &library;
        let mut documents = futures::stream::iter(ids)
            .map(|id| async move {
                client
                    .call(
                        "GET",
                        &format!("/v1/libraries/{library}/documents/{}", segment(&id)),
                        None,
                    )
                    .await
            })
            .buffered(8);
        while let Some(document) = documents.next().await {
            let line = export_line(document?, args.with_embeddings);
            let mut bytes = serde_json::to_vec(&line)?;
            bytes.push(b'\n');
            match writer.write_all(&bytes) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && temp.is_none() => {
                    return Ok(());
                }
                other => other.context("write the export")?,
            }
            exported += 1;
            bar.inc(1);
        }
        cursor = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    match writer.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe && temp.is_none() => return Ok(()),
        other => other.context("write the export")?,
    }
    drop(writer);
    bar.finish_and_clear();
    if let (Some(temp), Some(path)) = (temp, &args.output) {
        temp.as_file().sync_all().ok();
        temp.persist(path)
            .map_err(|e| anyhow::anyhow!("write {}: {}", path.display(), e.error))?;
        eprintln!(
            "exported {exported} documents of `{}` to {}",
            args.library,
            path.display()
        );
    }
    Ok(())
}

/// A stored document as an upsert body (chunk vectors only when asked for; empty
/// metadata left out).
fn export_line(mut document: Value, with_embeddings: bool) -> Value {
    if let Some(fields) = document.as_object_mut()
        && fields.get("metadata").is_some_and(Value::is_null)
    {
        fields.remove("metadata");
    }
    if let Some(chunks) = document.get_mut("chunks").and_then(Value::as_array_mut) {
        for chunk in chunks.iter_mut().filter_map(Value::as_object_mut) {
            if !with_embeddings {
                chunk.remove("embedding");
            }
            if chunk.get("metadata").is_some_and(Value::is_null) {
                chunk.remove("metadata");
            }
        }
    }
    document
}

// ---------------------------------------------------------------------------------
// search, libraries, keys, snapshot, completions

async fn search(client: &Client, args: &SearchArgs) -> anyhow::Result<()> {
    let mut request = Map::new();
    request.insert("k".into(), Value::from(args.k));
    if let Some(text) = &args.text {
        request.insert("text".into(), Value::String(text.clone()));
    }
    if let Some(vector) = &args.vector {
        request.insert("vector".into(), parse_json_arg("vector", vector)?);
    }
    if let Some(mode) = &args.mode {
        request.insert("mode".into(), Value::String(mode.clone()));
    }
    if let Some(filter) = &args.filter {
        request.insert("filter".into(), parse_json_arg("filter", filter)?);
    }
    let path = format!("/v1/libraries/{}/search", segment(&args.library));
    let found = client
        .call("POST", &path, Some(&Value::Object(request)))
        .await?;
    if args.json {
        return out(&format!("{found}\n"));
    }
    let hits = found
        .get("hits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = hits
        .iter()
        .enumerate()
        .map(|(i, hit)| {
            let text = |key: &str| hit.get(key).and_then(Value::as_str).unwrap_or("");
            let metadata = match hit.get("metadata") {
                Some(Value::Object(m)) if !m.is_empty() => {
                    truncate(&Value::Object(m.clone()).to_string(), 40)
                }
                _ => String::new(),
            };
            vec![
                (i + 1).to_string(),
                hit.get("score")
                    .and_then(Value::as_f64)
                    // `+ 0.0` turns -0 into 0.
                    .map_or_else(String::new, |s| format!("{:.4}", s + 0.0)),
                text("document_id").to_string(),
                text("chunk_id").to_string(),
                truncate(&text("text").replace(['\n', '\r', '\t'], " "), 60),
                metadata,
            ]
        })
        .collect();
    let mut text = table(
        &["#", "score", "document", "chunk", "text", "metadata"],
        &rows,
    );
    let took = found.get("took_ms").and_then(Value::as_f64).unwrap_or(0.0);
    let _ = writeln!(text, "{} hits in {took:.2} ms", hits.len());
    out(&text)
}

fn library_row(library: &Value) -> Vec<String> {
    let field = |key: &str| match library.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    };
    let index = library
        .get("index")
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    vec![
        field("name"),
        field("dimension"),
        field("metric"),
        index,
        field("documents"),
        field("chunks"),
    ]
}

async fn libraries(client: &Client, args: &LibrariesArgs) -> anyhow::Result<()> {
    let action = args.action.as_ref().unwrap_or(&LibrariesAction::List);
    match action {
        LibrariesAction::List => {
            let list = client.call("GET", "/v1/libraries", None).await?;
            if args.json {
                return out(&pretty(&list));
            }
            let rows: Vec<Vec<String>> = list
                .get("libraries")
                .and_then(Value::as_array)
                .map(|l| l.iter().map(library_row).collect())
                .unwrap_or_default();
            out(&table(
                &[
                    "name",
                    "dimension",
                    "metric",
                    "index",
                    "documents",
                    "chunks",
                ],
                &rows,
            ))
        }
        LibrariesAction::Get { name } => {
            let info = client
                .call("GET", &format!("/v1/libraries/{}", segment(name)), None)
                .await?;
            out(&pretty(&info))
        }
        LibrariesAction::Create {
            name,
            dimension,
            metric,
            index,
        } => {
            let mut request = json!({ "name": name, "dimension": dimension });
            if let Some(metric) = metric {
                request["metric"] = Value::String(metric.clone());
            }
            if let Some(index) = index {
                request["index"] = index_config(index)?;
            }
            let info = client.call("POST", "/v1/libraries", Some(&request)).await?;
            if args.json {
                return out(&pretty(&info));
            }
            out(&format!("created library `{name}`\n"))
        }
        LibrariesAction::Delete { name } => {
            client
                .call("DELETE", &format!("/v1/libraries/{}", segment(name)), None)
                .await?;
            out(&format!("deleted library `{name}`\n"))
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM` (UTC).
fn date(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (h, m) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}")
}

async fn keys(client: &Client, action: &KeysAction) -> anyhow::Result<()> {
    match action {
        KeysAction::Create {
            tenant,
            scopes,
            name,
            expires_in_days,
        } => {
            let mut request = json!({ "scopes": scopes });
            if let Some(name) = name {
                request["name"] = Value::String(name.clone());
            }
            if let Some(days) = expires_in_days {
                request["expires_at_ms"] =
                    Value::from(now_ms().saturating_add(days.saturating_mul(86_400_000)));
            }
            let view = client
                .call(
                    "POST",
                    &format!("/v1/admin/tenants/{}/keys", segment(tenant)),
                    Some(&request),
                )
                .await?;
            eprintln!("the key is shown only now; store it safely");
            out(&pretty(&view))
        }
        KeysAction::List { tenant, json } => {
            let list = client
                .call(
                    "GET",
                    &format!("/v1/admin/tenants/{}/keys", segment(tenant)),
                    None,
                )
                .await?;
            if *json {
                return out(&pretty(&list));
            }
            let rows: Vec<Vec<String>> = list
                .get("keys")
                .and_then(Value::as_array)
                .map(|keys| {
                    keys.iter()
                        .map(|k| {
                            let text = |key: &str| {
                                k.get(key).and_then(Value::as_str).unwrap_or("").to_string()
                            };
                            let when = |key: &str| {
                                k.get(key)
                                    .and_then(Value::as_u64)
                                    .map(date)
                                    .unwrap_or_default()
                            };
                            let scopes: Vec<&str> = k
                                .get("scopes")
                                .and_then(Value::as_array)
                                .map(|s| s.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            let status = if k.get("revoked_at_ms").is_some_and(|v| !v.is_null()) {
                                "revoked"
                            } else if k
                                .get("expires_at_ms")
                                .and_then(Value::as_u64)
                                .is_some_and(|t| t <= now_ms())
                            {
                                "expired"
                            } else {
                                "active"
                            };
                            vec![
                                text("id"),
                                text("name"),
                                scopes.join(","),
                                status.to_string(),
                                when("created_at_ms"),
                                when("last_used_at_ms"),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out(&table(
                &["id", "name", "scopes", "status", "created", "last used"],
                &rows,
            ))
        }
        KeysAction::Rotate { id } => {
            let view = client
                .call(
                    "POST",
                    &format!("/v1/admin/keys/{}/rotate", segment(id)),
                    None,
                )
                .await?;
            eprintln!("the new key is shown only now; store it safely");
            out(&pretty(&view))
        }
        KeysAction::Revoke { id } => {
            let view = client
                .call(
                    "POST",
                    &format!("/v1/admin/keys/{}/revoke", segment(id)),
                    None,
                )
                .await?;
            out(&pretty(&view))
        }
    }
}

async fn snapshot(client: &Client, library: &str, output: &Path) -> anyhow::Result<()> {
    let path = format!("/v1/libraries/{}/snapshot", segment(library));
    let mut reply = client.send("POST", &path, Body::Empty).await?.ok().await?;
    let dir = output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("create a file in {}", dir.display()))?;
    let mut file = std::io::BufWriter::new(temp.reopen().context("open the output file")?);
    let mut written = 0u64;
    while let Some(chunk) = reply.body.next().await {
        let chunk = chunk?;
        file.write_all(&chunk).context("write the snapshot")?;
        written += chunk.len() as u64;
    }
    file.flush().context("write the snapshot")?;
    drop(file);
    temp.as_file().sync_all().context("write the snapshot")?;
    temp.persist(output)
        .map_err(|e| anyhow::anyhow!("write {}: {}", output.display(), e.error))?;
    out(&format!(
        "wrote the snapshot of `{library}` ({written} bytes) to {}\n",
        output.display()
    ))
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut command = <crate::Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "arrwdb", &mut script);
    out(&String::from_utf8_lossy(&script))
}

// ---------------------------------------------------------------------------------
// bench

/// SplitMix64: a tiny, seedable generator for benchmark vectors (quality is
/// irrelevant here, reproducibility is not).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The `q`-quantile (0..=1) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn read_dataset(path: &Path, limit: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let file = std::fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let mut vectors = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        if vectors.len() >= limit {
            break;
        }
        let line = line.with_context(|| format!("read {}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let vector = value.get("embedding").unwrap_or(&value);
        let vector: Vec<f32> = serde_json::from_value(vector.clone()).with_context(|| {
            format!(
                "{} line {}: expected an array of numbers or an object with `embedding`",
                path.display(),
                i + 1
            )
        })?;
        if let Some(first) = vectors.first().map(Vec::len)
            && first != vector.len()
        {
            anyhow::bail!(
                "{} line {}: dimension {} differs from the first vector's {first}",
                path.display(),
                i + 1,
                vector.len()
            );
        }
        vectors.push(vector);
    }
    if vectors.is_empty() {
        anyhow::bail!("{} holds no vectors", path.display());
    }
    Ok(vectors)
}

async fn bench(client: &Client, args: &BenchArgs) -> anyhow::Result<()> {
    if args.vectors == 0 || args.vectors > MAX_BENCH_VECTORS {
        anyhow::bail!("--vectors must be between 1 and {MAX_BENCH_VECTORS}");
    }
    if args.queries == 0 || args.queries > MAX_BENCH_QUERIES {
        anyhow::bail!("--queries must be between 1 and {MAX_BENCH_QUERIES}");
    }
    let mut rng = SplitMix(args.seed);
    let vectors: Vec<Vec<f32>> = match &args.dataset {
        Some(path) => read_dataset(path, args.vectors)?,
        None => (0..args.vectors)
            .map(|_| (0..args.dimension).map(|_| rng.unit()).collect())
            .collect(),
    };
    let dimension = vectors.first().map_or(0, Vec::len);
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    let library = format!("bench-{}", &uuid[..12]);
    let request = json!({
        "name": library,
        "dimension": dimension,
        "metric": args.metric,
        "index": index_config(&args.index)?,
    });
    client.call("POST", "/v1/libraries", Some(&request)).await?;
    let result = bench_in(client, args, &library, &vectors, &mut rng).await;
    let deleted = client
        .call("DELETE", &format!("/v1/libraries/{library}"), None)
        .await;
    let report = result?;
    if let Err(e) = deleted {
        eprintln!(
            "warning: could not delete the scratch library `{library}`: {}",
            describe(&e)
        );
    }
    if args.json {
        return out(&format!("{report}\n"));
    }
    let number = |key: &str| report.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    out(&format!(
        "library   {library} ({}, {}, {} vectors × {dimension})\n\
         upsert    {:.0} vectors/s ({:.2} s)\n\
         search    {} queries, k={}, concurrency {}: {:.1} QPS\n\
         latency   p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n",
        args.index,
        args.metric,
        vectors.len(),
        number("upsert_per_sec"),
        number("upsert_secs"),
        args.queries,
        args.k,
        args.concurrency.max(1),
        number("qps"),
        number("p50_ms"),
        number("p99_ms"),
        number("max_ms"),
    ))
}

async fn bench_in(
    client: &Client,
    args: &BenchArgs,
    library: &str,
    vectors: &[Vec<f32>],
    rng: &mut SplitMix,
) -> anyhow::Result<Value> {
    let bar = progress(
        Some((vectors.len() + args.queries) as u64),
        "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} {msg}",
    );
    bar.set_message("upserts");
    let started = Instant::now();
    let path = format!("/v1/libraries/{library}/documents/batch");
    for (batch_number, batch) in vectors.chunks(500).enumerate() {
        let documents: Vec<Value> = batch
            .iter()
            .enumerate()
            .map(|(i, v)| {
                json!({
                    "id": format!("v{}", batch_number * 500 + i),
                    "chunks": [{ "embedding": v }],
                })
            })
            .collect();
        let answer = client
            .call("POST", &path, Some(&json!({ "documents": documents })))
            .await?;
        if let Some(error) = answer
            .get("results")
            .and_then(Value::as_array)
            .and_then(|r| r.iter().find_map(|item| item.get("error")))
        {
            anyhow::bail!("an upsert failed: {error}");
        }
        bar.inc(batch.len() as u64);
    }
    let upsert_secs = started.elapsed().as_secs_f64();
    bar.set_message("searches");
    let queries: Vec<usize> = (0..args.queries)
        .map(|_| rng.below(vectors.len()))
        .collect();
    let search_path = format!("/v1/libraries/{library}/search");
    // Warm-up at the same concurrency, so read instances start before measuring.
    let warmup: Vec<usize> = (0..args.warmup.min(MAX_BENCH_QUERIES))
        .map(|_| rng.below(vectors.len()))
        .collect();
    futures::stream::iter(warmup)
        .map(|q| {
            let body = json!({ "vector": vectors.get(q), "k": args.k, "include": [] });
            let search_path = &search_path;
            async move { client.call("POST", search_path, Some(&body)).await }
        })
        .buffer_unordered(args.concurrency.clamp(1, 256))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let mut latencies: Vec<f64> = futures::stream::iter(queries)
        .map(|q| {
            let body = json!({ "vector": vectors.get(q), "k": args.k, "include": [] });
            let search_path = &search_path;
            let bar = &bar;
            async move {
                let start = Instant::now();
                client.call("POST", search_path, Some(&body)).await?;
                bar.inc(1);
                Ok::<f64, anyhow::Error>(start.elapsed().as_secs_f64() * 1e3)
            }
        })
        .buffer_unordered(args.concurrency.clamp(1, 256))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let search_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    latencies.sort_by(f64::total_cmp);
    Ok(json!({
        "library": library,
        "vectors": vectors.len(),
        "dimension": vectors.first().map_or(0, Vec::len),
        "index": args.index,
        "metric": args.metric,
        "upsert_secs": upsert_secs,
        "upsert_per_sec": vectors.len() as f64 / upsert_secs.max(1e-9),
        "queries": latencies.len(),
        "k": args.k,
        "concurrency": args.concurrency.max(1),
        "warmup": args.warmup.min(MAX_BENCH_QUERIES),
        "qps": latencies.len() as f64 / search_secs.max(1e-9),
        "p50_ms": quantile(&latencies, 0.50),
        "p99_ms": quantile(&latencies, 0.99),
        "max_ms": latencies.last().copied().unwrap_or(0.0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns {
        Columns {
            id: "id".into(),
            text: "text".into(),
            embedding: "embedding".into(),
        }
    }

    /// Runs `convert` on `input` and returns the lines it sent.
    fn convert_text(input: &str, format: Format) -> (Vec<String>, ReadOutcome) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let mut sink = LineSink {
            tx,
            buffer: Vec::new(),
            lines: 0,
        };
        let reader: Box<dyn std::io::BufRead + Send> =
            Box::new(std::io::Cursor::new(input.as_bytes().to_vec()));
        let outcome = convert(reader, format, &columns(), b',', &mut sink);
        drop(sink);
        let mut all = Vec::new();
        while let Ok(Ok(chunk)) = rx.try_recv() {
            all.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&all).to_string();
        let lines = text.lines().map(str::to_string).collect();
        (lines, outcome)
    }

    #[test]
    fn csv_rows_become_documents_on_their_file_lines() {
        let input = "id,text,embedding,year,lang,note\n\
                     a,hello,\"[1,2]\",2020,en,\n\
                     b,\"multi\nline\",1 2,3.5,fr,x\n\
                     c,bad,\"[1,\",2021,en,\n\
                     d,short\n";
        let (lines, outcome) = convert_text(input, Format::Csv);
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[0], "");
        let a: Value = serde_json::from_str(&lines[1]).unwrap_or_default();
        assert_eq!(
            a,
            json!({"id":"a","metadata":{"year":2020,"lang":"en"},
                   "chunks":[{"text":"hello","embedding":[1,2]}]})
        );
        let b: Value = serde_json::from_str(&lines[2]).unwrap_or_default();
        assert_eq!(b["chunks"][0]["embedding"], json!([1.0, 2.0]));
        assert_eq!(b["metadata"]["year"], json!(3.5));
        assert_eq!(lines[3], "", "the line after a two-line record is padded");
        assert_eq!(lines[4], "", "a bad vector is a blank line");
        assert_eq!(lines[5], "", "a short row is a blank line");
        assert_eq!(outcome.records, 4);
        assert_eq!(outcome.failures.count, 2);
        let failed: Vec<u64> = outcome.failures.first.iter().map(|f| f.line).collect();
        assert_eq!(failed, vec![5, 6]);
        assert!(outcome.fatal.is_none());
    }

    #[test]
    fn json_arrays_stream_elements_and_ndjson_keeps_line_numbers() {
        let (lines, outcome) = convert_text(
            r#"[{"id":"x","embedding":[1,2],"tag":"t"},{"chunks":[]},{"embedding":"nope!"}, 7]"#,
            Format::Json,
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(
            serde_json::from_str::<Value>(&lines[0]).unwrap_or_default(),
            json!({"id":"x","metadata":{"tag":"t"},"chunks":[{"text":"","embedding":[1,2]}]})
        );
        assert_eq!(lines[1], r#"{"chunks":[]}"#);
        assert_eq!(outcome.failures.count, 2);
        assert!(outcome.fatal.is_none());

        let (lines, outcome) = convert_text(
            "{\"chunks\":[],\"id\":\"k\"}\n\n not json\n{\"text\":\"t\"}\r\n",
            Format::Ndjson,
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0], "{\"chunks\":[],\"id\":\"k\"}",
            "documents pass as is"
        );
        assert_eq!(lines[1], "");
        assert_eq!(lines[2], " not json", "the server reports bad JSON");
        assert_eq!(outcome.records, 3);

        let (_, outcome) = convert_text("[{\"id\":1}, {", Format::Json);
        assert!(outcome.fatal.is_some_and(|f| f.contains("element 2")));
    }

    #[test]
    fn helpers() {
        assert_eq!(segment("a b/c#d-é"), "a%20b%2Fc%23d-%C3%A9");
        assert_eq!(cell_value("007"), json!("007"));
        assert_eq!(cell_value("-12"), json!(-12));
        assert_eq!(cell_value("1e3"), json!(1000.0));
        assert_eq!(cell_value("true"), json!(true));
        assert_eq!(cell_value("v1.2"), json!("v1.2"));
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_700_000_000_000), "2023-11-14 22:13");
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.99), 4.0);
        assert_eq!(
            detect_format(Format::Auto, Path::new("x.txt"), Some(b'[')),
            Format::Json
        );
        assert_eq!(
            detect_format(Format::Auto, Path::new("x.jsonl"), Some(b'[')),
            Format::Ndjson
        );
        assert_eq!(index_config("hnsw").ok(), Some(json!({"type":"hnsw"})));
        let failure = api_failure(404, br#"{"error":{"kind":"not_found","message":"no"}}"#);
        assert_eq!(failure.to_string(), "no (not_found, HTTP 404)");
        assert_eq!(
            api_failure(502, b"").message,
            "the server answered HTTP 502"
        );
        let t = table(&["a", "bb"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "a    bb\nxyz  1\n");
    }
}
