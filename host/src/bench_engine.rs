//! `arrwdb bench-engine` (hidden): the wasmtime side of the runtime benchmark
//! (tests/bench/runtimes.py).
//!
//! It drives the engine component exactly as the server does, through
//! [`crate::component::EngineInstance`] (postcard messages across the `arrw:db/engine`
//! interface), but in process and without HTTP, so that dividing its per-query latency
//! by the native one (`arrwdb-bench-runtimes run`, which calls `arrwdb_core::Engine`)
//! measures what running in wasmtime costs and nothing else. The snapshot it restores
//! is the one the native side wrote, so both search the very same index.
//!
//! It prints one JSON line in the format the native side uses: compile and instantiate
//! times (`compile_ms`, `instantiate_ms`; the compilation cache is off unless asked, so
//! this is a first start), then the cold start (read the file, restore it in the
//! instance, answer query 0), then every query's latency (its fastest of 3 passes), the
//! thread CPU time per query over those passes, and the ids it found.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use arrwdb_core::api::SearchRequest;
use arrwdb_core::{Query, QueryResponse};
use serde_json::{Value, json};

use crate::component::{EngineComponent, EngineInstance, InstanceLimits};

/// Queries run untimed before the timed passes, and timed passes (each query's
/// latency is its fastest pass), as on the native side.
const WARMUP: usize = 20;
const PASSES: usize = 3;
const K: usize = 10;

/// Flags of `arrwdb bench-engine`.
#[derive(Debug, clap::Args)]
pub struct BenchEngineArgs {
    /// The snapshot file to restore (written by `arrwdb-bench-runtimes build`).
    #[arg(long)]
    snapshot: PathBuf,
    /// The dataset directory (its queries.fvecs is read).
    #[arg(long)]
    dataset: PathBuf,
    /// How many queries to time.
    #[arg(long, default_value_t = 100)]
    queries: usize,
    /// Search parameters, as JSON (e.g. `{"ef":64}`).
    #[arg(long, default_value = "{}")]
    params: String,
    /// The engine component. Default: the cargo layout next to this binary.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Use wasmtime's compilation cache (off: measure a first start).
    #[arg(long)]
    compile_cache: bool,
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

/// The first `limit` vectors of an `.fvecs` file (per row: a little-endian `u32`
/// dimension, then that many `f32`).
fn fvecs(path: &std::path::Path, limit: usize) -> anyhow::Result<Vec<Vec<f32>>> {
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while out.len() < limit && rest.len() >= 4 {
        let (head, tail) = rest.split_at(4);
        let d = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        anyhow::ensure!(tail.len() >= d * 4, "{} is truncated", path.display());
        let (row, tail) = tail.split_at(d * 4);
        out.push(
            row.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
        rest = tail;
    }
    Ok(out)
}

/// On-CPU time of this thread so far, in ns (first field of
/// `/proc/thread-self/schedstat`, Linux): unlike wall time, it does not grow while
/// other processes hold the core. The epoch ticker thread is not counted.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn search(instance: &mut EngineInstance, request: SearchRequest) -> anyhow::Result<Vec<u32>> {
    let response = instance
        .query(&Query::Search {
            library: "bench".into(),
            request,
        })
        .map_err(|e| anyhow::anyhow!("search failed: {e:?}"))?;
    let QueryResponse::Search(response) = response else {
        anyhow::bail!("the engine answered a search with another response");
    };
    response
        .hits
        .into_iter()
        .map(|h| {
            h.chunk_id
                .parse::<u32>()
                .with_context(|| format!("chunk id `{}` is not a row number", h.chunk_id))
        })
        .collect()
}

/// Runs the benchmark and prints its JSON line.
///
/// # Errors
/// Unreadable files, a component that does not load, or an engine error.
pub fn run(args: &BenchEngineArgs) -> anyhow::Result<()> {
    let component_path = match &args.component {
        Some(path) => path.clone(),
        None => crate::default_component()?,
    };
    let queries = fvecs(&args.dataset.join("queries.fvecs"), args.queries)?;
    anyhow::ensure!(!queries.is_empty(), "no queries");
    let params: Value = serde_json::from_str(&args.params).context("--params is not JSON")?;
    let requests: Vec<SearchRequest> = queries
        .iter()
        .map(|q| {
            serde_json::from_value(json!({"vector": q, "k": K, "params": params, "include": []}))
        })
        .collect::<Result<_, _>>()
        .context("build the search requests")?;

    let limits = InstanceLimits {
        memory_bytes: 4096 << 20,
        call_timeout: Duration::from_secs(600),
        build_threads: crate::cores(),
    };
    let compiled = Instant::now();
    let component = EngineComponent::load(&component_path, limits, args.compile_cache)?;
    let compile_ms = ms(compiled);
    let instantiated = Instant::now();
    let mut instance = component.instantiate()?;
    let instantiate_ms = ms(instantiated);

    let started = Instant::now();
    let bytes = std::fs::read(&args.snapshot)
        .with_context(|| format!("read {}", args.snapshot.display()))?;
    let read_ms = ms(started);
    let restored = Instant::now();
    instance
        .restore(&bytes)
        .map_err(|e| anyhow::anyhow!("restore failed: {e:?}"))?;
    let restore_ms = ms(restored);
    let first = Instant::now();
    let first_ids = search(&mut instance, requests[0].clone())?;
    let first_query_ms = ms(first);
    let cold_ms = ms(started);
    drop(bytes);

    for request in requests.iter().take(WARMUP) {
        std::hint::black_box(search(&mut instance, request.clone())?);
    }
    let mut latencies = vec![f64::INFINITY; requests.len()];
    let mut ids = vec![Vec::new(); requests.len()];
    let cpu_before = thread_cpu_ns();
    for pass in 0..PASSES {
        // Each pass starts at another query, so a periodic stall (another process's
        // time slice) does not hit the same queries in every pass.
        let start = (pass * (requests.len() / PASSES + 1)) % requests.len();
        for i in 0..requests.len() {
            let q = (start + i) % requests.len();
            let one = Instant::now();
            let found = search(&mut instance, requests[q].clone())?;
            latencies[q] = latencies[q].min(ms(one));
            if pass == 0 {
                ids[q] = found;
            }
        }
    }
    let cpu_ms_per_query = thread_cpu_ns()
        .zip(cpu_before)
        .and_then(|(after, before)| after.checked_sub(before))
        .map(|ns| ns as f64 / 1e6 / (PASSES * requests.len()) as f64);
    anyhow::ensure!(
        ids.first() == Some(&first_ids),
        "the first answer differs from a warm one"
    );
    let line = json!({
        "runtime": "wasmtime", "compile_ms": compile_ms, "instantiate_ms": instantiate_ms,
        "init_ms": compile_ms + instantiate_ms, "read_ms": read_ms, "restore_ms": restore_ms,
        "first_query_ms": first_query_ms, "cold_ms": cold_ms,
        "cpu_ms_per_query": cpu_ms_per_query, "latencies_ms": latencies, "ids": ids,
    });
    #[allow(clippy::print_stdout)] // the benchmark's output
    {
        println!("{line}");
    }
    Ok(())
}
