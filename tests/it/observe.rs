//! Observability of the `arrwdb` host (issue 7): the Prometheus scrape against the
//! metrics contract, request ids, and the NDJSON streaming endpoints, all against the
//! real release binary.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use crate::host::{Server, create_library};
use crate::support::workspace_root;

/// One sample of a scrape: name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed OpenMetrics text scrape: the `# TYPE` families and the samples.
#[derive(Debug, Default)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses the text format strictly enough that a malformed line fails the test.
    fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape::default();
        assert!(
            text.trim_end().ends_with("# EOF"),
            "an OpenMetrics scrape ends with # EOF"
        );
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split(' ');
                let name = parts.next().expect("TYPE name");
                let kind = parts.next().expect("TYPE kind");
                scrape.types.insert(name.into(), kind.into());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value: {line}"));
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("labels end with }");
                    let mut labels = BTreeMap::new();
                    // Label values here never hold `",`, so a split is exact enough.
                    for pair in body.split("\",").filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once("=\"").expect("label k=\"v\"");
                        labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                    }
                    (name.to_string(), labels)
                }
                None => (series.to_string(), BTreeMap::new()),
            };
            scrape.samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        scrape
    }

    /// Whether a contract family is exported (as check-metrics.sh decides).
    fn exports(&self, family: &str) -> bool {
        let base = |n: &str| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .map(str::to_string)
                .unwrap_or_else(|| n.to_string())
        };
        self.types.contains_key(family)
            || self
                .samples
                .iter()
                .any(|s| s.name == family || base(&s.name) == family)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }
}

/// The metric names of the contract (deploy/monitoring/metrics.txt, or the list in the
/// issue while that file is absent).
fn contract() -> Vec<String> {
    let file = workspace_root().join("deploy/monitoring/metrics.txt");
    let text = std::fs::read_to_string(Path::new(&file)).unwrap_or_else(|_| {
        "arrwdb_http_requests_total\narrwdb_http_request_duration_seconds\narrwdb_ready\n\
         arrwdb_writer_fenced\narrwdb_wal_flush_duration_seconds\narrwdb_wal_flush_records\n\
         arrwdb_wal_segments_written_total\narrwdb_snapshots_written_total\narrwdb_libraries\n\
         arrwdb_documents\narrwdb_chunks\narrwdb_search_duration_seconds\narrwdb_jobs_total\n\
         arrwdb_jobs_running\narrwdb_events_subscribers\narrwdb_replica_lag_records\n\
         arrwdb_storage_errors_total\n"
            .into()
    });
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn scrape(server: &Server) -> Scrape {
    let agent = ureq::Agent::new_with_defaults();
    let mut resp = agent
        .get(format!("{}/metrics", server.http.base))
        .call()
        .expect("GET /metrics");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "content type {content_type}"
    );
    Scrape::parse(&resp.body_mut().read_to_string().expect("scrape body"))
}

#[test]
fn metrics_scrape_exports_the_whole_contract_and_counts_real_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path().to_str().expect("utf-8 path"), &[]);
    let http = &server.http;
    create_library(http, "m", 2);
    for i in 0..3 {
        let reply = http.post(
            "/v1/libraries/m/documents",
            &json!({"id": format!("d{i}"), "chunks": [{"text": "alpha beta", "embedding": [1.0, i as f32]}]}),
        );
        assert_eq!(reply.0, 200, "{}", reply.1);
    }
    for body in [
        json!({"vector": [1.0, 0.0]}),
        json!({"text": "alpha"}),
        json!({"vector": [1.0, 0.0], "text": "alpha"}),
    ] {
        assert_eq!(http.post("/v1/libraries/m/search", &body).0, 200);
    }
    assert_eq!(http.get("/no/such/route").0, 404);
    assert_eq!(http.get("/v1/libraries/nope").0, 404);
    let (status, _) = http.post_bytes("/v1/libraries/m/snapshot");
    assert_eq!(status, 200);

    let s = scrape(&server);
    let missing: Vec<String> = contract()
        .into_iter()
        .filter(|name| !s.exports(name))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");

    let requests = |method: &str, route: &str, status: &str| {
        s.value(
            "arrwdb_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(
        requests("POST", "/v1/libraries/{lib}/documents", "200"),
        Some(3.0)
    );
    assert_eq!(
        requests("POST", "/v1/libraries/{lib}/search", "200"),
        Some(3.0)
    );
    assert_eq!(requests("GET", "unmatched", "404"), Some(1.0));
    assert_eq!(requests("GET", "/v1/libraries/{lib}", "404"), Some(1.0));
    assert!(
        s.value(
            "arrwdb_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/v1/libraries/{lib}/search")]
        ) == Some(3.0)
    );
    for mode in ["vector", "keyword", "hybrid"] {
        assert_eq!(
            s.value(
                "arrwdb_search_duration_seconds_count",
                &[("mode", mode), ("index", "flat")]
            ),
            Some(1.0),
            "mode {mode}"
        );
    }
    assert_eq!(
        s.value(
            "arrwdb_search_duration_seconds_count",
            &[("mode", "vector"), ("index", "hnsw")]
        ),
        Some(0.0)
    );
    // Library "m" is flat: an HNSW library's searches get their own series.
    let reply = http.post(
        "/v1/libraries",
        &json!({"name": "g", "dimension": 2, "index": {"type": "hnsw"}}),
    );
    assert_eq!(reply.0, 201, "{}", reply.1);
    assert_eq!(
        http.post("/v1/libraries/g/search", &json!({"vector": [1.0, 0.0]}))
            .0,
        200
    );
    let after = scrape(&server);
    assert_eq!(
        after.value(
            "arrwdb_search_duration_seconds_count",
            &[("mode", "vector"), ("index", "hnsw")]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.value(
            "arrwdb_events_published_total",
            &[("type", "document.upserted")]
        ),
        Some(3.0)
    );
    assert_eq!(
        after.value(
            "arrwdb_events_published_total",
            &[("type", "library.created")]
        ),
        Some(2.0)
    );
    assert_eq!(after.value("arrwdb_jobs_queued", &[]), Some(0.0));
    // Process metrics agree with what the kernel says about the process.
    let cpu = after.value("process_cpu_seconds_total", &[]).expect("cpu");
    assert!(cpu > 0.0, "cpu {cpu}");
    let rss = after
        .value("process_resident_memory_bytes", &[])
        .expect("rss");
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.guard.child.id()))
        .expect("proc status");
    let kernel_rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .expect("VmRSS")
        * 1024.0;
    assert!(
        (rss / kernel_rss - 1.0).abs() < 0.5,
        "scraped RSS {rss} vs kernel {kernel_rss}"
    );
    assert_eq!(s.value("arrwdb_ready", &[]), Some(1.0));
    assert_eq!(s.value("arrwdb_libraries", &[]), Some(1.0));
    assert_eq!(s.value("arrwdb_documents", &[("library", "m")]), Some(3.0));
    assert_eq!(s.value("arrwdb_chunks", &[("library", "m")]), Some(3.0));
    assert_eq!(
        s.value("arrwdb_writer_fenced", &[("library", "m")]),
        Some(0.0)
    );
    // Create + 3 upserts: at least one segment each flush, 4 records in all.
    let segments = s
        .value("arrwdb_wal_segments_written_total", &[])
        .expect("segments");
    assert!((1.0..=4.0).contains(&segments), "segments {segments}");
    assert_eq!(s.value("arrwdb_wal_flush_records_sum", &[]), Some(4.0));
    assert_eq!(
        s.value("arrwdb_wal_flush_duration_seconds_count", &[]),
        Some(segments)
    );
    assert_eq!(s.value("arrwdb_snapshots_written_total", &[]), Some(1.0));
    assert_eq!(
        s.value("arrwdb_storage_errors_total", &[("op", "wal_put")]),
        Some(0.0)
    );
    assert_eq!(
        s.value(
            "arrwdb_jobs_total",
            &[("type", "import"), ("status", "completed")]
        ),
        Some(0.0)
    );
    // The tenant's instance holds at least a megabyte (the component's own memory and
    // the library) and stays under its 4 GiB limit; no rebuild ran.
    let memory = s
        .value("arrwdb_wasm_memory_bytes", &[("tenant", "default")])
        .expect("instance memory");
    assert!(
        (1e6..4096.0 * 1048576.0).contains(&memory),
        "memory {memory}"
    );
    assert_eq!(
        s.value(
            "arrwdb_index_rebuilds_total",
            &[("runtime", "native"), ("result", "built")]
        ),
        Some(0.0)
    );
}

#[test]
fn responses_carry_a_request_id() {
    let server = Server::start("memory://", &[]);
    let agent = ureq::Agent::new_with_defaults();
    let resp = agent
        .get(format!("{}/health", server.http.base))
        .header("x-request-id", "abc-123")
        .call()
        .expect("GET /health");
    assert_eq!(
        resp.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("abc-123")
    );
    let resp = agent
        .get(format!("{}/health", server.http.base))
        .call()
        .expect("GET /health");
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(id.len(), 32, "generated id {id:?}");
}

/// Posts `body` to `path` and returns the status and the NDJSON lines of the answer.
fn post_ndjson(server: &Server, path: &str, body: impl std::io::Read) -> (u16, Vec<Value>) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut body = body;
    let mut request = agent.post(format!("{}{path}", server.http.base));
    if let Some(key) = &server.http.key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let mut resp = request
        .header("content-type", "application/x-ndjson")
        .send(ureq::SendBody::from_reader(&mut body))
        .expect("POST NDJSON");
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .expect("read the answer");
    let lines = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
        .collect();
    (status, lines)
}

#[test]
fn ndjson_ingest_answers_per_line_and_search_streams_hits() {
    let server = Server::start("memory://", &[]);
    create_library(&server.http, "s", 2);
    let body = [
        r#"{"id":"a","chunks":[{"text":"alpha","embedding":[1,0]}]}"#,
        "",
        r#"{"id":"b","chunks":[{"text":"beta","embedding":[0,1]}]}"#,
        r#"{"id":"c","chunks":[{"text":"x","embedding":[1,2,3]}]}"#,
        r#"{not json"#,
        r#"{"id":"d","chunks":[{"text":"delta","embedding":[1,1]}],"extra":1}"#,
        r#"{"id":"e","chunks":[{"text":"eps","embedding":[0.5,0.5]}]}"#,
    ]
    .join("\n");
    let (status, lines) = post_ndjson(&server, "/v1/libraries/s/documents/stream", body.as_bytes());
    assert_eq!(status, 200, "{lines:?}");
    let by_line: BTreeMap<u64, &Value> = lines
        .iter()
        .filter_map(|l| l["line"].as_u64().map(|n| (n, l)))
        .collect();
    assert_eq!(
        by_line.keys().copied().collect::<Vec<_>>(),
        [1, 3, 4, 5, 6, 7]
    );
    assert_eq!(by_line[&1]["id"], "a");
    assert_eq!(by_line[&3]["id"], "b");
    assert_eq!(by_line[&7]["chunk_ids"][0], "e#0");
    for bad in [4, 5, 6] {
        assert_eq!(by_line[&bad]["error"]["kind"], "invalid", "line {bad}");
    }
    let summary = lines.last().expect("summary");
    assert_eq!(summary["done"], true);
    assert_eq!(summary["lines"], 7);
    assert_eq!(summary["upserted"], 3);
    assert_eq!(summary["failed"], 3);
    assert_eq!(server.http.get("/v1/libraries/s").1["documents"], 3);

    let (status, hits) = post_ndjson(
        &server,
        "/v1/libraries/s/search/stream",
        br#"{"vector":[1,0],"k":2}"#.as_slice(),
    );
    assert_eq!(status, 200);
    assert_eq!(hits.len(), 3, "{hits:?}");
    assert_eq!(hits[0]["document_id"], "a");
    assert_eq!(hits[2]["done"], true);
    assert_eq!(hits[2]["hits"], 2);

    // An unknown library is refused before the body is processed, and the client
    // still gets the answer rather than a broken pipe, also while it is sending a body
    // of several socket buffers (the server reads and drops up to 1 MiB first).
    let mut large = String::new();
    while large.len() < 768 << 10 {
        large.push_str(&body);
    }
    for body in [body.as_bytes(), large.as_bytes()] {
        let (status, lines) = post_ndjson(&server, "/v1/libraries/nope/documents/stream", body);
        assert_eq!(status, 404, "{lines:?}");
    }
}

/// A body of `total` bytes, generated as it is read: every 64th line a valid document,
/// the others 64 KiB lines the server rejects.
struct LargeBody {
    total: usize,
    sent: usize,
    line: u64,
    buf: Vec<u8>,
    at: usize,
}

impl std::io::Read for LargeBody {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at == self.buf.len() {
            if self.sent >= self.total {
                return Ok(0);
            }
            self.line += 1;
            self.buf = if self.line.is_multiple_of(64) {
                format!(
                    "{{\"id\":\"doc{}\",\"chunks\":[{{\"text\":\"t\",\"embedding\":[1,{}]}}]}}\n",
                    self.line, self.line
                )
                .into_bytes()
            } else {
                let filler = "x".repeat(64 * 1024);
                format!("{{\"id\":\"big{}\",\"unknown\":\"{filler}\"}}\n", self.line).into_bytes()
            };
            self.at = 0;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        self.sent += n;
        Ok(n)
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn ndjson_ingest_of_a_large_body_keeps_memory_bounded() {
    const TOTAL: usize = 1 << 30;
    let server = Server::start("memory://", &[]);
    create_library(&server.http, "big", 2);
    let pid = server.guard.child.id();
    let before = peak_rss_kib(pid);
    let started = std::time::Instant::now();
    let body = LargeBody {
        total: TOTAL,
        sent: 0,
        line: 0,
        buf: Vec::new(),
        at: 0,
    };
    let (status, lines) = post_ndjson(&server, "/v1/libraries/big/documents/stream", body);
    let took = started.elapsed();
    assert_eq!(status, 200);
    let summary = lines.last().expect("summary");
    let total_lines = summary["lines"].as_u64().expect("lines");
    assert_eq!(summary["upserted"].as_u64(), Some(total_lines / 64));
    assert_eq!(lines.len() as u64, total_lines + 1);
    let after = peak_rss_kib(pid);
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!(
        "streamed {} MiB ({total_lines} lines) in {took:?}: peak RSS {} -> {} MiB (+{grown_mib} MiB)",
        TOTAL >> 20,
        before / 1024,
        after / 1024
    );
    assert!(
        grown_mib < 96,
        "peak RSS grew by {grown_mib} MiB for a {} MiB body",
        TOTAL >> 20
    );
    let info = server.http.get("/v1/libraries/big").1;
    assert_eq!(info["documents"].as_u64(), Some(total_lines / 64));
}
