//! `arrwdb-load`: the load check of the host server. Starts the real `arrwdb` binary on
//! loopback (local directory storage, `ARRWDB_NO_AUTH=true`, no rate limits), loads the
//! first `--n` documents of the pypi-minilm dataset, then for each `--read-instances`
//! setting (the server is restarted on the same storage) runs search clients at each
//! concurrency for `--secs` seconds and prints QPS and p50 / p99 latency.
//!
//! Usage (after `cargo build --release -p arrwdb-host` and the edge component):
//! `cargo run --release -p arrwdb-tests --bin arrwdb-load -- [--n 20000] [--secs 5]
//! [--clients 1,8,32] [--instances 1,2] [--index flat] [--dataset DIR]`
//!
//! The HTTP client is a few lines over `std::net::TcpStream` (keep-alive, one
//! connection per client thread) so the bin needs no dependency beyond the test
//! crate's.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const DIM: usize = 384;

struct Args {
    dataset: PathBuf,
    n: usize,
    secs: u64,
    clients: Vec<usize>,
    instances: Vec<usize>,
    index: String,
}

fn args() -> Args {
    let root = workspace_root();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut args = Args {
        dataset: root.join("../shared/datasets/pypi-minilm"),
        n: 20_000,
        secs: 5,
        clients: vec![1, 8, 32],
        instances: vec![1, cores.max(2)],
        index: "flat".into(),
    };
    let list = |v: &str| -> Vec<usize> {
        v.split(',')
            .map(|x| x.trim().parse().expect("a list of numbers"))
            .collect()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--dataset" => args.dataset = value.into(),
            "--n" => args.n = value.parse().expect("--n is a number"),
            "--secs" => args.secs = value.parse::<u64>().expect("--secs is a number").min(60),
            "--clients" => args.clients = list(&value),
            "--instances" => args.instances = list(&value),
            "--index" => args.index = value,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The first `limit` vectors of an `.fvecs` file, each of the dataset's dimension.
fn fvecs(path: &Path, limit: usize) -> Vec<Vec<f32>> {
    let vectors = arrwdb_tests::fvecs(path, limit);
    assert!(
        vectors.iter().all(|v| v.len() == DIM),
        "unexpected dimension"
    );
    vectors
}

fn documents(dataset: &Path, n: usize) -> Vec<Value> {
    let vectors = fvecs(&dataset.join("base.fvecs"), n);
    let docs = BufReader::new(File::open(dataset.join("docs.jsonl")).expect("docs.jsonl"));
    docs.lines()
        .take(n)
        .zip(vectors)
        .map(|(line, v)| {
            let doc: Value = serde_json::from_str(&line.expect("read")).expect("JSON line");
            let id = doc["id"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| doc["id"].to_string());
            json!({"id": id, "metadata": doc["metadata"], "chunks": [{"text": doc["text"], "embedding": v}]})
        })
        .collect()
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Conn {
            stream: BufReader::new(stream),
            host: format!("127.0.0.1:{port}"),
        }
    }

    fn request(&mut self, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).expect("send");
        stream.write_all(body).expect("send");
        let mut line = String::new();
        self.stream.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.stream.read_line(&mut line).expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().expect("content-length");
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut out = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).expect("chunk size");
                let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
                let mut chunk = vec![0; size + 2];
                self.stream.read_exact(&mut chunk).expect("chunk");
                out.extend_from_slice(&chunk[..size]);
                if size == 0 {
                    break;
                }
            }
        } else {
            out.resize(length, 0);
            self.stream.read_exact(&mut out).expect("body");
        }
        (status, out)
    }

    fn json(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let (status, bytes) = self.request(method, path, &serde_json::to_vec(body).expect("json"));
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

/// The host process; SIGTERM (a clean snapshot) and reaped on drop.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(storage: &Path, read_instances: usize) -> (Host, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let bin = target_dir().join("release/arrwdb");
    let wasm = target_dir().join("wasm32-wasip2/release/arrwdb_edge.wasm");
    assert!(
        bin.exists() && wasm.exists(),
        "build first: cargo build --release -p arrwdb-host && cargo build --release -p arrwdb-edge --target wasm32-wasip2"
    );
    let child = Command::new(bin)
        .arg("serve")
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--storage")
        .arg(storage)
        .arg("--component")
        .arg(wasm)
        .args(["--read-instances", &read_instances.to_string()])
        .args(["--search-rate", "0", "--write-rate", "0", "--no-fsync"])
        .env("ARRWDB_NO_AUTH", "true")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start arrwdb");
    let host = Host(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            drop(stream);
            if Conn::open(port).request("GET", "/ready", &[]).0 == 200 {
                return (host, port);
            }
        }
        assert!(Instant::now() < deadline, "arrwdb not ready after 120 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// `clients` threads searching for `secs`; returns (QPS, p50, p99, errors).
fn run(
    port: u16,
    queries: &Arc<Vec<Vec<u8>>>,
    clients: usize,
    secs: u64,
) -> (f64, Duration, Duration, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (stop, queries) = (stop.clone(), queries.clone());
            std::thread::spawn(move || {
                let mut conn = Conn::open(port);
                let (mut samples, mut errors) = (Vec::new(), 0);
                let mut i = c * 7;
                while !stop.load(Ordering::Relaxed) {
                    let body = &queries[i % queries.len()];
                    i += 1;
                    let t = Instant::now();
                    let (status, _) = conn.request("POST", "/v1/libraries/load/search", body);
                    samples.push(t.elapsed());
                    if status != 200 {
                        errors += 1;
                    }
                }
                (samples, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for t in threads {
        let (samples, e) = t.join().expect("client");
        all.extend(samples);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    (
        all.len() as f64 / elapsed,
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        errors,
    )
}

#[allow(clippy::print_stdout)] // the load check's output is its table
fn main() {
    let args = args();
    let storage = std::env::temp_dir().join(format!("arrwdb-load-{}", std::process::id()));
    std::fs::create_dir_all(&storage).expect("storage dir");
    let queries: Arc<Vec<Vec<u8>>> = Arc::new(
        fvecs(&args.dataset.join("queries.fvecs"), 200)
            .into_iter()
            .map(|q| {
                serde_json::to_vec(&json!({"vector": q, "k": 10, "include": []})).expect("json")
            })
            .collect(),
    );
    {
        let started = Instant::now();
        let (_host, port) = start(&storage, 1);
        let mut conn = Conn::open(port);
        let created = conn.json(
            "POST",
            "/v1/libraries",
            &json!({"name": "load", "dimension": DIM, "metric": "cosine", "index": {"type": args.index}}),
        );
        assert_eq!(created.0, 201, "create: {}", created.1);
        for batch in documents(&args.dataset, args.n).chunks(500) {
            let reply = conn.json(
                "POST",
                "/v1/libraries/load/documents/batch",
                &json!({ "documents": batch }),
            );
            assert_eq!(reply.0, 200, "batch: {}", reply.1);
        }
        let (status, _) = conn.request("POST", "/v1/libraries/load/snapshot", &[]);
        assert_eq!(status, 200, "snapshot");
        eprintln!(
            "loaded {} documents ({} index) in {:.1} s",
            args.n,
            args.index,
            started.elapsed().as_secs_f64()
        );
    }
    println!("| read instances | clients | QPS | p50 ms | p99 ms | errors |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for &instances in &args.instances {
        let (host, port) = start(&storage, instances);
        // Warm-up: every read instance built (image + restore) before measuring.
        run(port, &queries, instances.max(1), 1);
        for &clients in &args.clients {
            let (qps, p50, p99, errors) = run(port, &queries, clients, args.secs);
            println!(
                "| {instances} | {clients} | {qps:.0} | {:.2} | {:.2} | {errors} |",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
        drop(host);
    }
    let _ = std::fs::remove_dir_all(&storage);
}
