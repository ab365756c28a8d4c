//! `arrwdb-bench-runtimes`: the native side of the runtime benchmark
//! (tests/bench/runtimes.py). It calls `arrwdb_core::Engine` directly, in process, so
//! its numbers are the baseline that the same engine inside wasmtime
//! (`arrwdb bench-engine`) and inside Node (wasm/bench/coldstart.mjs) are divided by.
//!
//! Three subcommands, each printing one JSON line on stdout:
//!
//! - `build --dataset DIR --n N --index flat|hnsw --out FILE`: builds the library from
//!   the first N base vectors (one document per vector, ids = row numbers, metric dot,
//!   HNSW at its defaults M=16 efC=200) and writes its snapshot to FILE. The snapshot
//!   is built once and loaded by every runtime, so all of them search the same graph.
//! - `read --snapshot FILE [--repeat R]`: reads the file into memory R times (the page
//!   cache is warm after the first) and prints each time: the "raw read" baseline.
//! - `run --snapshot FILE --dataset DIR --queries Q [--params JSON]`: the cold start
//!   (read the file, restore it, answer query 0; each timed) and then the per-query
//!   latency of every query (its fastest of 3 passes), the thread CPU time per query
//!   over those passes, plus the ids found, in the format every runtime shares:
//!   `{"read_ms", "restore_ms", "first_query_ms", "latencies_ms": [..], "ids": [[..]]}`.
//!   The caller computes percentiles and recall.
//! - `ndjson --dataset DIR --n N --out FILE`: writes the first N vectors as the body of
//!   `POST /v1/libraries/{lib}/documents/stream` (one single-chunk document per line,
//!   ids = row numbers, no text), for the ingest measurement. Written here because
//!   serde_json prints 38 M floats in about a second, and the file is made before the
//!   clock starts.

use std::path::PathBuf;
use std::time::Instant;

use arrwdb_core::api::SearchRequest;
use arrwdb_core::{Engine, IndexConfig};
use arrwdb_tests::{engine_with_library, fvecs, search_rows, upsert_rows};
use serde_json::{Value, json};

const K: usize = 10;
/// Queries run untimed before the timed passes (caches, branch predictors).
const WARMUP: usize = 20;
/// Timed passes over the queries; each query's latency is its fastest pass, which
/// filters out the moments other processes held the core.
const PASSES: usize = 3;

#[derive(Default)]
struct Args {
    dataset: PathBuf,
    n: usize,
    queries: usize,
    index: String,
    out: PathBuf,
    snapshot: PathBuf,
    params: String,
    repeat: usize,
}

fn args() -> (String, Args) {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_default();
    let mut args = Args {
        n: 100_000,
        queries: 100,
        index: "hnsw".into(),
        params: "{}".into(),
        repeat: 5,
        ..Args::default()
    };
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value.into(),
            "--n" => args.n = value.parse().expect("--n is a number"),
            "--queries" => args.queries = value.parse().expect("--queries is a number"),
            "--index" => args.index = value,
            "--out" => args.out = value.into(),
            "--snapshot" => args.snapshot = value.into(),
            "--params" => args.params = value,
            "--repeat" => args.repeat = value.parse().expect("--repeat is a number"),
            other => panic!("unknown flag {other}"),
        }
    }
    (command, args)
}

fn print(line: &Value) {
    #[allow(clippy::print_stdout)] // the benchmark's output
    {
        println!("{line}");
    }
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1e3
}

fn build(args: &Args) {
    let base = fvecs(&args.dataset.join("base.fvecs"), args.n);
    let index: IndexConfig =
        serde_json::from_value(json!({"type": args.index})).expect("index kind");
    let mut engine = engine_with_library(
        "bench",
        base[0].len() as u32,
        index,
        arrwdb_core::api::QuantizationConfig::None,
    )
    .expect("create library");
    let started = Instant::now();
    upsert_rows(&mut engine, "bench", &base, None);
    let build_s = started.elapsed().as_secs_f64();
    let bytes = engine.snapshot("bench").expect("snapshot");
    std::fs::write(&args.out, &bytes).expect("write the snapshot");
    print(&json!({"index": args.index, "n": base.len(), "build_s": build_s, "bytes": bytes.len()}));
}

fn read(args: &Args) {
    let mut times = Vec::with_capacity(args.repeat);
    let mut bytes = 0;
    for _ in 0..args.repeat.max(1) {
        let started = Instant::now();
        let data = std::fs::read(&args.snapshot).expect("read the snapshot");
        times.push(ms(started));
        bytes = std::hint::black_box(data).len();
    }
    print(&json!({"read_ms": times, "bytes": bytes}));
}

/// On-CPU time of this thread so far, in ns: the first field of
/// `/proc/thread-self/schedstat` (Linux). Unlike wall time it does not grow while other
/// processes hold the core, which on a shared machine is most of the noise.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Milliseconds of thread CPU per query since `before`, over `PASSES` passes.
fn cpu_per_query(before: Option<u64>, queries: usize) -> Option<f64> {
    let spent = thread_cpu_ns()?.checked_sub(before?)?;
    Some(spent as f64 / 1e6 / (PASSES * queries.max(1)) as f64)
}

/// Query indices of one pass: all of them, starting at a different one in each pass.
fn rotated(queries: usize, pass: usize) -> impl Iterator<Item = usize> {
    let start = (pass * (queries / PASSES + 1)) % queries.max(1);
    (0..queries).map(move |i| (start + i) % queries)
}

fn search(engine: &Engine, request: &SearchRequest) -> Vec<u32> {
    search_rows(engine, "bench", request)
}

fn run(args: &Args) {
    let queries = fvecs(&args.dataset.join("queries.fvecs"), args.queries);
    let params: Value = serde_json::from_str(&args.params).expect("--params is JSON");
    let requests: Vec<SearchRequest> = queries
        .iter()
        .map(|q| {
            serde_json::from_value(json!({"vector": q, "k": K, "params": params, "include": []}))
                .expect("request")
        })
        .collect();

    let started = Instant::now();
    let bytes = std::fs::read(&args.snapshot).expect("read the snapshot");
    let read_ms = ms(started);
    let restored = Instant::now();
    let mut engine = Engine::new();
    engine.restore(&bytes).expect("restore");
    let restore_ms = ms(restored);
    let first = Instant::now();
    let first_ids = search(&engine, &requests[0]);
    let first_query_ms = ms(first);
    let cold_ms = ms(started);
    drop(bytes);

    for request in requests.iter().take(WARMUP) {
        std::hint::black_box(search(&engine, request));
    }
    let mut latencies = vec![f64::INFINITY; requests.len()];
    let mut ids = vec![Vec::new(); requests.len()];
    let cpu_before = thread_cpu_ns();
    for pass in 0..PASSES {
        // Each pass starts at another query, so a periodic stall (another process's
        // time slice) does not hit the same queries in every pass.
        for q in rotated(requests.len(), pass) {
            let one = Instant::now();
            let found = search(&engine, &requests[q]);
            latencies[q] = latencies[q].min(ms(one));
            if pass == 0 {
                ids[q] = found;
            }
        }
    }
    let cpu_ms_per_query = cpu_per_query(cpu_before, requests.len());
    assert_eq!(
        ids[0], first_ids,
        "the first answer differs from a warm one"
    );
    print(&json!({
        "runtime": "native", "init_ms": 0.0, "read_ms": read_ms, "restore_ms": restore_ms,
        "first_query_ms": first_query_ms, "cold_ms": cold_ms,
        "cpu_ms_per_query": cpu_ms_per_query, "latencies_ms": latencies, "ids": ids,
    }));
}

fn ndjson(args: &Args) {
    use std::io::Write as _;
    let base = fvecs(&args.dataset.join("base.fvecs"), args.n);
    let file = std::fs::File::create(&args.out).expect("create the NDJSON file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    for (i, v) in base.iter().enumerate() {
        let line = json!({"id": i.to_string(), "chunks": [{"id": i.to_string(), "embedding": v}]});
        serde_json::to_writer(&mut out, &line).expect("write NDJSON");
        out.write_all(b"\n").expect("write NDJSON");
    }
    out.flush().expect("write NDJSON");
    print(
        &json!({"n": base.len(), "bytes": std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0)}),
    );
}

fn main() {
    let (command, args) = args();
    match command.as_str() {
        "build" => build(&args),
        "read" => read(&args),
        "run" => run(&args),
        "ndjson" => ndjson(&args),
        other => {
            panic!("usage: arrwdb-bench-runtimes build|read|run|ndjson [flags] (got `{other}`)")
        }
    }
}
