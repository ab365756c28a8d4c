//! Change events over SSE and WebSocket (issue 7): the real host over HTTP, read with a
//! hand-rolled SSE reader (so the exact wire framing is checked) and a `tungstenite`
//! WebSocket client.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::host::{Server, create_library};
use crate::support::{Http, TEST_ADMIN_KEY, assert_error};

/// One SSE frame (the lines before a blank line).
#[derive(Debug, Clone)]
struct Frame {
    raw: String,
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
}

impl Frame {
    fn parse(raw: String) -> Frame {
        let field = |name: &str| {
            raw.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
        };
        Frame {
            id: field("id"),
            event: field("event"),
            data: field("data"),
            raw,
        }
    }

    fn is_comment(&self) -> bool {
        self.raw.starts_with(':')
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().expect("a data line")).expect("data is JSON")
    }

    fn id(&self) -> u64 {
        self.id
            .as_deref()
            .expect("an id line")
            .parse()
            .expect("numeric id")
    }
}

/// A streaming `GET` of an SSE endpoint over a raw socket; a thread decodes the chunked
/// body into frames.
struct Sse {
    status: u16,
    headers: String,
    frames: mpsc::Receiver<Frame>,
    socket: TcpStream,
    /// The body of a non-streaming (error) answer.
    body: String,
}

impl Sse {
    fn open(base: &str, path: &str, key: Option<&str>, extra: &[(&str, &str)]) -> Sse {
        Self::open_gated(base, path, key, extra, None)
    }

    /// As [`Sse::open`], but the body is not read before `gate` receives (or closes).
    fn open_gated(
        base: &str,
        path: &str,
        key: Option<&str>,
        extra: &[(&str, &str)],
        gate: Option<mpsc::Receiver<()>>,
    ) -> Sse {
        let host = base.trim_start_matches("http://");
        let mut socket = TcpStream::connect(host).expect("connect");
        let mut request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n");
        if let Some(key) = key {
            request.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        socket.write_all(request.as_bytes()).expect("send request");
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut reader = BufReader::new(socket.try_clone().expect("clone"));
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            headers.push_str(&line);
        }
        let status = headers
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let lower = headers.to_ascii_lowercase();
        let (tx, frames) = mpsc::channel();
        let mut body = String::new();
        if let Some(length) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|n| n.trim().parse::<usize>().ok())
        {
            let mut bytes = vec![0; length];
            reader.read_exact(&mut bytes).expect("read body");
            body = String::from_utf8_lossy(&bytes).into_owned();
        } else {
            socket.set_read_timeout(None).expect("no timeout");
            std::thread::spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                read_chunked(reader, tx)
            });
        }
        Sse {
            status,
            headers: lower,
            frames,
            socket,
            body,
        }
    }

    /// The next frame, comments included.
    fn frame(&self, timeout: Duration) -> Option<Frame> {
        self.frames.recv_timeout(timeout).ok()
    }

    /// The next `n` frames that are not comments.
    fn events(&self, n: usize, timeout: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.frame(left) {
                Some(f) if f.is_comment() => {}
                Some(f) => out.push(f),
                None => panic!(
                    "only {} of {n} events within {timeout:?}: {out:?}",
                    out.len()
                ),
            }
        }
        out
    }

    /// Asserts that no event (only comments) arrives within `wait`.
    fn assert_quiet(&self, wait: Duration) {
        let deadline = Instant::now() + wait;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if let Some(f) = self.frame(left) {
                assert!(f.is_comment(), "unexpected event: {}", f.raw);
            }
        }
    }
}

impl Drop for Sse {
    fn drop(&mut self) {
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

/// Decodes `Transfer-Encoding: chunked` and splits the body into SSE frames.
fn read_chunked(mut reader: BufReader<TcpStream>, tx: mpsc::Sender<Frame>) {
    let mut text = String::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return;
        }
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return;
        };
        let mut chunk = vec![0; size + 2];
        if size == 0 || reader.read_exact(&mut chunk).is_err() {
            return;
        }
        text.push_str(&String::from_utf8_lossy(&chunk[..size]));
        while let Some(end) = text.find("\n\n") {
            let raw = text[..end].to_string();
            text.drain(..end + 2);
            if tx.send(Frame::parse(raw)).is_err() {
                return;
            }
        }
    }
}

fn doc(id: &str, group: u64) -> Value {
    json!({"id": id, "metadata": {"g": group}, "chunks": [{"text": format!("text of {id}"), "embedding": [1.0, group as f64, 0.5, 0.25]}]})
}

fn upsert(http: &Http, library: &str, id: &str) {
    let reply = http.post(&format!("/v1/libraries/{library}/documents"), &doc(id, 0));
    assert_eq!(reply.0, 200, "upsert {id}: {}", reply.1);
}

const T: Duration = Duration::from_secs(20);

fn no_auth_server(env: &[(&str, &str)]) -> Server {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Server::start("memory://", &env)
}

#[test]
fn sse_frames_every_change_exactly_and_filters_by_library_and_type() {
    let server = no_auth_server(&[]);
    let http = &server.http;
    let all = Sse::open(&http.base, "/v1/events", None, &[]);
    assert_eq!(all.status, 200, "{}", all.body);
    assert!(
        all.headers.contains("content-type: text/event-stream"),
        "{}",
        all.headers
    );
    assert!(all.headers.contains("cache-control: no-cache"));
    let opening = all.frame(T).expect("opening comment");
    assert_eq!(opening.raw, ": ok");
    let only_a = Sse::open(&http.base, "/v1/events?library=a", None, &[]);
    let docs = Sse::open(
        &http.base,
        "/v1/events?types=document.*,library.deleted",
        None,
        &[],
    );
    let created = Sse::open(
        &http.base,
        "/v1/events?types=library.created&library=b",
        None,
        &[],
    );

    create_library(http, "a", 4);
    create_library(http, "b", 4);
    upsert(http, "a", "d1");
    upsert(http, "b", "d2");
    assert_eq!(http.delete("/v1/libraries/a/documents/d1").0, 204);
    assert_eq!(http.delete("/v1/libraries/b").0, 204);

    let frames = all.events(6, T);
    let kinds: Vec<(&str, &str, u64)> = frames
        .iter()
        .map(|f| {
            let j = f.json();
            let library = j["library"].as_str().expect("library").to_string();
            (
                f.event.as_deref().expect("event line"),
                if library == "a" { "a" } else { "b" },
                j["seq"].as_u64().expect("seq"),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("library.created", "a", 1),
            ("library.created", "b", 1),
            ("document.upserted", "a", 2),
            ("document.upserted", "b", 2),
            ("document.deleted", "a", 3),
            ("library.deleted", "b", 3),
        ]
    );
    // Exact framing: `id`, `event`, `data` (compact JSON on one line), blank line.
    let first = frames[0].id();
    for (i, f) in frames.iter().enumerate() {
        let j = f.json();
        assert_eq!(f.id(), first + i as u64, "ids are consecutive");
        assert_eq!(j["id"], f.id());
        assert_eq!(j["type"].as_str(), f.event.as_deref());
        assert_eq!(j["tenant"], "default");
        assert!(j["time_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000));
        let lines: Vec<&str> = f.raw.split('\n').collect();
        assert_eq!(lines.len(), 3, "{}", f.raw);
        assert_eq!(lines[0], format!("id: {}", f.id()));
        assert_eq!(
            lines[1],
            format!("event: {}", j["type"].as_str().expect("type"))
        );
        assert!(lines[2].starts_with("data: {\"id\":") && lines[2].ends_with('}'));
        assert!(!f.raw.contains('\r'));
    }
    assert!(first < (1u64 << 53), "ids are exact in JavaScript");
    assert_eq!(frames[2].json()["ids"], json!(["d1"]));
    assert_eq!(frames[2].json()["data"]["chunks"], 1);
    assert_eq!(frames[0].json()["data"]["dimension"], 4);
    assert_eq!(frames[4].json()["ids"], json!(["d1"]));

    let a: Vec<String> = only_a
        .events(3, T)
        .iter()
        .map(|f| f.event.clone().expect("event"))
        .collect();
    assert_eq!(
        a,
        ["library.created", "document.upserted", "document.deleted"]
    );
    let d: Vec<String> = docs
        .events(4, T)
        .iter()
        .map(|f| f.event.clone().expect("event"))
        .collect();
    assert_eq!(
        d,
        [
            "document.upserted",
            "document.upserted",
            "document.deleted",
            "library.deleted"
        ]
    );
    let c = created.events(1, T);
    assert_eq!(c[0].json()["library"], "b");
    assert_eq!(c[0].id(), first + 1, "filtered streams keep the global ids");
    created.assert_quiet(Duration::from_millis(300));
    only_a.assert_quiet(Duration::from_millis(100));

    // Bad parameters are JSON errors, not streams.
    for bad in [
        "/v1/events?types=document.nope",
        "/v1/events?types=nope.*",
        "/v1/events?library=no%20spaces",
        "/v1/events?last_event_id=abc",
        "/v1/events?colour=red",
    ] {
        let sse = Sse::open(&http.base, bad, None, &[]);
        assert_eq!(sse.status, 400, "{bad}: {}", sse.body);
        let body: Value = serde_json::from_str(&sse.body).expect("JSON error");
        assert_eq!(body["error"]["kind"], "invalid", "{bad}");
    }
}

#[test]
fn sse_resumes_from_the_buffer_and_from_the_wal_and_says_reset_when_it_cannot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let env = [
        ("ARRWDB_EVENTS_BUFFER".to_string(), "4".to_string()),
        ("ARRWDB_EVENTS_HEARTBEAT_MS".to_string(), "200".to_string()),
    ];
    let server = Server::start(&storage, &env);
    let http = &server.http;
    let live = Sse::open(&http.base, "/v1/events", None, &[]);
    create_library(http, "r", 4);
    for i in 0..9 {
        upsert(http, "r", &format!("d{i}"));
    }
    let original = live.events(10, T);
    let id = |i: usize| original[i].id().to_string();

    // Within the buffer (the last 4 events): header and query parameter.
    let resumed = Sse::open(&http.base, "/v1/events", None, &[("Last-Event-ID", &id(6))]);
    let got = resumed.events(3, T);
    for (g, o) in got.iter().zip(&original[7..]) {
        assert_eq!(g.raw, o.raw);
    }
    resumed.assert_quiet(Duration::from_millis(300));
    let resumed = Sse::open(
        &http.base,
        &format!("/v1/events?last_event_id={}", id(8)),
        None,
        &[],
    );
    assert_eq!(resumed.events(1, T)[0].raw, original[9].raw);

    // Older than the buffer: rebuilt from the WAL, byte for byte.
    let resumed = Sse::open(&http.base, "/v1/events", None, &[("Last-Event-ID", &id(0))]);
    let got = resumed.events(9, T);
    for (g, o) in got.iter().zip(&original[1..]) {
        assert_eq!(g.raw, o.raw, "replayed from the WAL");
    }
    resumed.assert_quiet(Duration::from_millis(300));
    // …with filters applied to the replay.
    let resumed = Sse::open(
        &http.base,
        &format!(
            "/v1/events?types=library.*&last_event_id={}",
            original[0].id() - 1
        ),
        None,
        &[],
    );
    assert_eq!(resumed.events(1, T)[0].raw, original[0].raw);
    resumed.assert_quiet(Duration::from_millis(300));

    // A snapshot event cannot be rebuilt: once it left the buffer, a resume from before
    // it says `reset` (unless the filter excludes it), then goes on live.
    let (status, _) = http.post_bytes("/v1/libraries/r/snapshot");
    assert_eq!(status, 200);
    for i in 9..14 {
        upsert(http, "r", &format!("d{i}"));
    }
    let later = live.events(6, T);
    assert_eq!(later[0].event.as_deref(), Some("snapshot.created"));
    assert_eq!(later[0].json()["seq"], 10);
    let resumed = Sse::open(&http.base, "/v1/events", None, &[("Last-Event-ID", &id(9))]);
    let reset = resumed.events(1, T).remove(0);
    assert_eq!(reset.event.as_deref(), Some("reset"), "{}", reset.raw);
    assert_eq!(
        reset.id(),
        later[5].id(),
        "the stream goes on after the newest event"
    );
    assert!(
        reset.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("cannot be replayed"))
    );
    upsert(http, "r", "after-reset");
    let next = resumed.events(1, T).remove(0);
    assert_eq!(next.id(), later[5].id() + 1);
    let filtered = Sse::open(
        &http.base,
        &format!("/v1/events?types=document.upserted&last_event_id={}", id(9)),
        None,
        &[],
    );
    let got = filtered.events(6, T);
    for (g, o) in got.iter().zip(&later[1..]) {
        assert_eq!(g.raw, o.raw);
    }
    assert_eq!(got[5].id(), next.id());

    // Ids this process never issued: from the future, and from before it started.
    for stale in ["1", &(next.id() + 1000).to_string()] {
        let resumed = Sse::open(&http.base, "/v1/events", None, &[("Last-Event-ID", stale)]);
        let reset = resumed.events(1, T).remove(0);
        assert_eq!(
            reset.event.as_deref(),
            Some("reset"),
            "{stale}: {}",
            reset.raw
        );
        assert_eq!(reset.id(), next.id());
    }

    // A deleted library's history is gone with its WAL: a resume across it resets.
    let old = next.id();
    create_library(http, "gone", 4);
    for i in 0..5 {
        upsert(http, "gone", &format!("g{i}"));
    }
    assert_eq!(http.delete("/v1/libraries/gone").0, 204);
    create_library(http, "gone", 4);
    for i in 0..5 {
        upsert(http, "r", &format!("x{i}"));
    }
    let resumed = Sse::open(
        &http.base,
        "/v1/events?library=gone",
        None,
        &[("Last-Event-ID", &old.to_string())],
    );
    assert_eq!(resumed.events(1, T)[0].event.as_deref(), Some("reset"));
    // Other libraries' replay is unaffected.
    let resumed = Sse::open(
        &http.base,
        "/v1/events?library=r",
        None,
        &[("Last-Event-ID", &old.to_string())],
    );
    let got = resumed.events(5, T);
    assert!(
        got.iter()
            .all(|f| f.event.as_deref() == Some("document.upserted"))
    );

    // Heartbeats are comment lines at the configured interval.
    let idle = Sse::open(&http.base, "/v1/events?library=quiet", None, &[]);
    assert_eq!(idle.frame(T).expect("opening").raw, ": ok");
    let started = Instant::now();
    for _ in 0..3 {
        let f = idle.frame(Duration::from_secs(2)).expect("a heartbeat");
        assert_eq!(f.raw, ": heartbeat");
    }
    assert!(started.elapsed() >= Duration::from_millis(500));
}

#[test]
fn a_slow_sse_reader_catches_up_from_the_buffer_and_the_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    // No background snapshot: its `snapshot.created` (no WAL record) would make a
    // lagging subscriber's refill a `reset`, which the resume test covers.
    let env = [
        ("ARRWDB_EVENTS_BUFFER".to_string(), "500".to_string()),
        (
            "ARRWDB_SNAPSHOT_EVERY_RECORDS".to_string(),
            "1000000".to_string(),
        ),
    ];
    let server = Server::start(&storage, &env);
    let http = &server.http;
    create_library(http, "lag", 4);
    // The client reads nothing while ~16 MB of events are published: the socket
    // fills, the server stops pulling the stream, the subscription falls far behind
    // the broadcast channel (1024 events) and the buffer (500), and must refill from
    // the WAL once the client reads again.
    let (go, gate) = mpsc::channel();
    let sse = Sse::open_gated(
        &http.base,
        "/v1/events?types=document.*,snapshot.*,index.*",
        None,
        &[],
        Some(gate),
    );
    let rounds = 10;
    let per_round = 2500;
    for round in 0..rounds {
        let documents: Vec<Value> = (0..per_round)
            .map(|i| doc(&format!("l{round:02}-{i:05}-{}", "p".repeat(480)), 1))
            .collect();
        let reply = http.post(
            "/v1/libraries/lag/documents/batch",
            &json!({"documents": documents}),
        );
        assert_eq!(reply.0, 200);
    }
    go.send(()).expect("reader waiting");
    let frames = sse.events(rounds * per_round, Duration::from_secs(120));
    let first = frames[0].id();
    for (n, f) in frames.iter().enumerate() {
        assert_eq!(f.id(), first + n as u64, "no gap, no repeat: {}", f.raw);
        assert_eq!(f.event.as_deref(), Some("document.upserted"), "{}", f.raw);
        let want = format!("l{:02}-{:05}-", n / per_round, n % per_round);
        let id = f.json()["ids"][0].as_str().map(str::to_string);
        assert!(id.is_some_and(|id| id.starts_with(&want)), "{}", f.raw);
    }
    sse.assert_quiet(Duration::from_millis(300));
}

fn metric(http: &Http, name: &str) -> f64 {
    let url = format!("{}/metrics", http.base);
    let text = ureq::get(&url)
        .call()
        .expect("metrics")
        .body_mut()
        .read_to_string()
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

fn proc_stat(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .count();
    (rss_kb, fds)
}

fn wait_for_metric(http: &Http, name: &str, value: f64) {
    let deadline = Instant::now() + T;
    loop {
        let now = metric(http, name);
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} stays {now}, expected {value}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_thousand_subscribers_come_and_go_without_leaking() {
    let server = no_auth_server(&[]);
    let http = &server.http;
    let pid = server.guard.child.id();
    create_library(http, "churn", 4);
    let cycle = |i: usize| {
        let sse = Sse::open(&http.base, "/v1/events?library=churn", None, &[]);
        assert_eq!(sse.status, 200);
        assert_eq!(sse.frame(T).expect("opening").raw, ": ok");
        if i.is_multiple_of(100) {
            upsert(http, "churn", &format!("c{i}"));
            assert_eq!(
                sse.events(1, T)[0].event.as_deref(),
                Some("document.upserted")
            );
        }
    };
    for i in 0..100 {
        cycle(i);
    }
    wait_for_metric(http, "arrwdb_events_subscribers", 0.0);
    let (rss_before, fds_before) = proc_stat(pid);
    let held: Vec<Sse> = (0..20)
        .map(|_| Sse::open(&http.base, "/v1/events", None, &[]))
        .collect();
    wait_for_metric(http, "arrwdb_events_subscribers", 20.0);
    drop(held);
    for i in 0..1000 {
        cycle(i);
    }
    wait_for_metric(http, "arrwdb_events_subscribers", 0.0);
    let (rss_after, fds_after) = proc_stat(pid);
    eprintln!(
        "1000 SSE cycles: RSS {rss_before} -> {rss_after} kB, open files {fds_before} -> {fds_after}"
    );
    assert!(
        fds_after <= fds_before + 4,
        "open files grew from {fds_before} to {fds_after}"
    );
    assert!(
        rss_after <= rss_before + 16 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
}

/// Starts a server with auth on and returns it with keys of two tenants.
fn tenants_server(env: &[(&str, &str)]) -> (Server, BTreeMap<&'static str, String>) {
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("ARRWDB_NO_AUTH".into(), "false".into()));
    let server = Server::start("memory://", &env);
    let admin = &server.http;
    let mut keys = BTreeMap::new();
    for tenant in ["ta", "tb"] {
        let reply = admin.post("/v1/admin/tenants", &json!({"name": tenant}));
        assert_eq!(reply.0, 201, "{}", reply.1);
        for (name, scopes) in [
            ("rw", json!(["read", "write"])),
            ("r", json!(["read"])),
            ("w", json!(["write"])),
        ] {
            let reply = admin.post(
                &format!("/v1/admin/tenants/{tenant}/keys"),
                &json!({"scopes": scopes}),
            );
            assert_eq!(reply.0, 201, "{}", reply.1);
            let key = reply.1["key"].as_str().expect("key").to_string();
            keys.insert(
                match (tenant, name) {
                    ("ta", "rw") => "a",
                    ("ta", "r") => "a-read",
                    ("ta", _) => "a-write",
                    ("tb", "rw") => "b",
                    ("tb", "r") => "b-read",
                    _ => "b-write",
                },
                key,
            );
        }
    }
    (server, keys)
}

#[test]
fn sse_is_tenant_scoped_and_needs_the_read_scope() {
    let (server, keys) = tenants_server(&[("ARRWDB_EVENTS_HEARTBEAT_MS", "200")]);
    let base = &server.http.base;
    let a = server.http.with_key(&keys["a"]);
    let b = server.http.with_key(&keys["b"]);

    let a_all = Sse::open(base, "/v1/events", Some(&keys["a-read"]), &[]);
    assert_eq!(a_all.status, 200);
    let b_all = Sse::open(base, "/v1/events", Some(&keys["b-read"]), &[]);
    let b_named = Sse::open(base, "/v1/events?library=secret", Some(&keys["b"]), &[]);
    let admin_all = Sse::open(base, "/v1/events", Some(TEST_ADMIN_KEY), &[]);

    create_library(&a, "secret", 4);
    upsert(&a, "secret", "s1");
    let seen = a_all.events(2, T);
    assert!(seen.iter().all(|f| f.json()["tenant"] == "ta"));
    // Tenant B (and the operator's default tenant) see nothing of it.
    b_all.assert_quiet(Duration::from_millis(600));
    b_named.assert_quiet(Duration::from_millis(100));
    admin_all.assert_quiet(Duration::from_millis(100));
    // B resuming from A's ids gets no replay of A's events either: its own tenant
    // never issued them.
    let b_resume = Sse::open(
        base,
        "/v1/events",
        Some(&keys["b"]),
        &[("Last-Event-ID", &seen[1].id().to_string())],
    );
    let first = b_resume.events(1, T).remove(0);
    assert_eq!(first.event.as_deref(), Some("reset"), "{}", first.raw);
    b_resume.assert_quiet(Duration::from_millis(300));

    // B's own library of the same name is B's.
    create_library(&b, "secret", 4);
    let mine = b_named.events(1, T).remove(0);
    assert_eq!(mine.json()["tenant"], "tb");
    assert_eq!(b_all.events(1, T)[0].raw, mine.raw);
    a_all.assert_quiet(Duration::from_millis(300));

    // Keys: none → 401, a key without `read` → 403, a bad key → 401.
    let none = Sse::open(base, "/v1/events", None, &[]);
    assert_eq!(none.status, 401, "{}", none.body);
    let write_only = Sse::open(base, "/v1/events", Some(&keys["a-write"]), &[]);
    assert_eq!(write_only.status, 403, "{}", write_only.body);
    let bad = Sse::open(
        base,
        "/v1/events",
        Some("arrw_not_a_key_0000000000000000000000000000"),
        &[],
    );
    assert_eq!(bad.status, 401);
    let body: Value = serde_json::from_str(&bad.body).expect("JSON");
    assert_eq!(body["error"]["kind"], "unauthorized");
}

type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

fn ws_connect(base: &str, key: Option<&str>) -> Result<Ws, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest as _;
    let url = format!("{}/v1/ws", base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    if let Some(key) = key {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {key}").parse().expect("header"),
        );
    }
    let (mut ws, _) = tungstenite::connect(request)?;
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(T)).expect("timeout");
    }
    Ok(ws)
}

/// The next text message as JSON (pings are answered by tungstenite).
fn ws_read(ws: &mut Ws) -> Value {
    loop {
        match ws.read().expect("a message") {
            tungstenite::Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("JSON");
            }
            tungstenite::Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// Sends a request and returns its response (events that arrive first are returned
/// too, in order).
fn ws_call(ws: &mut Ws, id: u64, action: &str, data: Value) -> (Value, Vec<Value>) {
    let message = json!({"type": "request", "request_id": id, "action": action, "data": data});
    ws.send(tungstenite::Message::text(message.to_string()))
        .expect("send");
    let mut events = Vec::new();
    loop {
        let m = ws_read(ws);
        if m["type"] == "response" && m["request_id"] == id {
            return (m, events);
        }
        events.push(m);
    }
}

fn ok(reply: &(Value, Vec<Value>)) -> &Value {
    assert_eq!(reply.0["ok"], true, "{}", reply.0);
    &reply.0["result"]
}

fn err_kind(reply: &(Value, Vec<Value>)) -> String {
    assert_eq!(reply.0["ok"], false, "{}", reply.0);
    assert!(
        reply.0["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    reply.0["error"]["kind"].as_str().expect("kind").to_string()
}

#[test]
fn websocket_answers_every_action_and_streams_subscriptions() {
    let (server, keys) = tenants_server(&[]);
    let base = &server.http.base;
    let a = server.http.with_key(&keys["a"]);
    create_library(&a, "w", 4);
    let mut ws = ws_connect(base, Some(&keys["a"])).expect("connect");

    let mut events = Vec::new();
    let mut call = |ws: &mut Ws, id: u64, action: &str, data: Value| {
        let reply = ws_call(ws, id, action, data);
        events.extend(reply.1.iter().cloned());
        reply
    };
    let sub = call(
        &mut ws,
        1,
        "subscribe",
        json!({"library": "w", "types": "document.*"}),
    );
    assert_eq!(ok(&sub)["subscription"], "s1");
    let up = call(
        &mut ws,
        2,
        "upsert",
        json!({"library": "w", "document": doc("d1", 1)}),
    );
    assert_eq!(ok(&up)["id"], "d1");
    let batch = call(
        &mut ws,
        3,
        "upsert",
        json!({"library": "w", "documents": [doc("d2", 2), doc("d3", 2), doc("d4", 3)]}),
    );
    assert_eq!(ok(&batch)["results"].as_array().map(Vec::len), Some(3));
    let got = call(&mut ws, 4, "get", json!({"library": "w", "id": "d2"}));
    assert_eq!(ok(&got)["id"], "d2");
    let info = call(&mut ws, 5, "get", json!({"library": "w"}));
    assert_eq!(ok(&info)["name"], "w");
    let found = call(
        &mut ws,
        6,
        "search",
        json!({"library": "w", "request": {"vector": [1.0, 1.0, 0.5, 0.25], "k": 2}}),
    );
    assert_eq!(ok(&found)["hits"].as_array().map(Vec::len), Some(2));
    assert_eq!(ok(&found)["hits"][0]["document_id"], "d1");
    let del = call(&mut ws, 7, "delete", json!({"library": "w", "id": "d1"}));
    assert_eq!(ok(&del)["deleted"], 1);
    let del = call(
        &mut ws,
        8,
        "delete",
        json!({"library": "w", "filter": {"g": 2}}),
    );
    assert_eq!(ok(&del)["ids"], json!(["d2", "d3"]));
    let del = call(
        &mut ws,
        9,
        "delete",
        json!({"library": "w", "ids": ["d4", "nope"]}),
    );
    assert_eq!(ok(&del)["ids"], json!(["d4"]));

    // Every change arrived as an event of subscription s1, in commit order.
    while events.len() < 7 {
        events.push(ws_read(&mut ws));
    }
    let seen: Vec<(String, Value)> = events
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "event");
            assert_eq!(e["subscription"], "s1");
            assert_eq!(e["event"]["tenant"], "ta");
            (
                e["event"]["type"].as_str().expect("type").to_string(),
                e["event"]["ids"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("document.upserted".into(), json!(["d1"])),
            ("document.upserted".into(), json!(["d2"])),
            ("document.upserted".into(), json!(["d3"])),
            ("document.upserted".into(), json!(["d4"])),
            ("document.deleted".into(), json!(["d1"])),
            ("document.deleted".into(), json!(["d2", "d3"])),
            ("document.deleted".into(), json!(["d4"])),
        ]
    );

    // Unsubscribe: no more events; unknown subscriptions are 404s.
    let un = ws_call(&mut ws, 10, "unsubscribe", json!({"subscription": "s1"}));
    assert_eq!(ok(&un)["unsubscribed"], true);
    assert_eq!(
        err_kind(&ws_call(
            &mut ws,
            11,
            "unsubscribe",
            json!({"subscription": "s1"})
        )),
        "not_found"
    );
    upsert(&a, "w", "quiet");
    let after = ws_call(&mut ws, 12, "get", json!({"library": "w", "id": "quiet"}));
    assert!(
        after.1.is_empty(),
        "events after unsubscribe: {:?}",
        after.1
    );

    // Errors: engine errors, bad data, unknown actions, malformed messages.
    assert_eq!(
        err_kind(&ws_call(
            &mut ws,
            13,
            "get",
            json!({"library": "w", "id": "none"})
        )),
        "not_found"
    );
    assert_eq!(
        err_kind(&ws_call(&mut ws, 14, "get", json!({"library": "nolib"}))),
        "not_found"
    );
    assert_eq!(
        err_kind(&ws_call(&mut ws, 15, "search", json!({"library": "w"}))),
        "invalid"
    );
    assert_eq!(err_kind(&ws_call(&mut ws, 16, "fly", json!({}))), "invalid");
    assert_eq!(
        err_kind(&ws_call(
            &mut ws,
            17,
            "upsert",
            json!({"library": "w", "document": {"chunks": "x"}})
        )),
        "invalid"
    );
    assert_eq!(
        err_kind(&ws_call(&mut ws, 18, "subscribe", json!({"types": "nope"}))),
        "invalid"
    );
    ws.send(tungstenite::Message::text("not json"))
        .expect("send");
    let m = ws_read(&mut ws);
    assert_eq!(m["ok"], false);
    assert_eq!(m["request_id"], Value::Null);
    drop(ws);

    // Scopes: a read key may search and subscribe but not write.
    let mut reader = ws_connect(base, Some(&keys["a-read"])).expect("connect");
    assert_eq!(
        ok(&ws_call(&mut reader, 1, "get", json!({"library": "w"})))["name"],
        "w"
    );
    assert_eq!(
        err_kind(&ws_call(
            &mut reader,
            2,
            "upsert",
            json!({"library": "w", "document": doc("x", 1)})
        )),
        "forbidden"
    );
    assert_eq!(
        err_kind(&ws_call(
            &mut reader,
            3,
            "delete",
            json!({"library": "w", "id": "quiet"})
        )),
        "forbidden"
    );
    // Tenant B's socket sees neither A's library nor A's events.
    let mut other = ws_connect(base, Some(&keys["b"])).expect("connect");
    assert_eq!(
        err_kind(&ws_call(&mut other, 1, "get", json!({"library": "w"}))),
        "not_found"
    );
    ok(&ws_call(&mut other, 2, "subscribe", json!({})));
    upsert(&a, "w", "unseen");
    let (_, events) = ws_call(
        &mut reader,
        4,
        "get",
        json!({"library": "w", "id": "unseen"}),
    );
    assert!(events.is_empty());
    let (_, events) = ws_call(&mut other, 3, "get", json!({"library": "w"}));
    assert!(events.is_empty(), "tenant B saw {events:?}");

    // The upgrade itself needs a key with `read`.
    for (key, status) in [
        (None, 401),
        (Some(keys["a-write"].as_str()), 403),
        (Some("arrw_bogus"), 401),
    ] {
        match ws_connect(base, key) {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), status)
            }
            other => panic!(
                "expected HTTP {status}, got {:?}",
                other.map(|_| "a socket")
            ),
        }
    }
}

#[test]
fn websocket_closes_a_slow_consumer_instead_of_buffering() {
    let server = no_auth_server(&[("ARRWDB_WS_QUEUE", "2")]);
    let http = &server.http;
    create_library(http, "slow", 4);
    let mut ws = ws_connect(&http.base, None).expect("connect");
    ok(&ws_call(&mut ws, 1, "subscribe", json!({})));
    // Produce far more than the socket buffers hold while not reading.
    for round in 0..10 {
        let documents: Vec<Value> = (0..2500)
            .map(|i| doc(&format!("r{round}-{i}-{}", "p".repeat(480)), 1))
            .collect();
        let reply = http.post(
            "/v1/libraries/slow/documents/batch",
            &json!({"documents": documents}),
        );
        assert_eq!(reply.0, 200);
    }
    let mut received = 0;
    let close = loop {
        match ws.read() {
            Ok(tungstenite::Message::Text(_)) => received += 1,
            Ok(tungstenite::Message::Close(frame)) => break frame,
            Ok(_) => {}
            Err(e) => panic!("no close frame after {received} messages: {e}"),
        }
    };
    let close = close.expect("a close frame with a reason");
    assert_eq!(u16::from(close.code), 1008);
    assert!(
        close.reason.as_str().contains("slow consumer"),
        "{}",
        close.reason.as_str()
    );
    assert!(received < 25_000, "received {received}");
    wait_for_metric(http, "arrwdb_events_subscribers", 0.0);
    // The server is fine.
    let mut again = ws_connect(&http.base, None).expect("connect");
    assert_eq!(
        ok(&ws_call(&mut again, 1, "get", json!({"library": "slow"})))["name"],
        "slow"
    );
}

/// `(type, library, seq, ids)` of an event or a WAL record.
type Change = (String, String, u64, Vec<String>);

fn wal_changes(dir: &std::path::Path, library: &str) -> Vec<Change> {
    let wal = dir.join("default").join(library).join("wal");
    let mut files: Vec<_> = std::fs::read_dir(&wal)
        .unwrap_or_else(|e| panic!("{}: {e}", wal.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let bytes = std::fs::read(&file).expect("read segment");
        for record in arrwdb_core::codec::decode_wal_segment(&bytes).expect("segment decodes") {
            use arrwdb_core::WalOp;
            let (kind, ids) = match record.op {
                WalOp::CreateLibrary(_) => ("library.created", vec![]),
                WalOp::DeleteLibrary => ("library.deleted", vec![]),
                WalOp::UpsertDocument(d) => ("document.upserted", vec![d.id]),
                WalOp::DeleteDocument { id } => ("document.deleted", vec![id]),
                WalOp::DeleteDocuments { ids } => ("document.deleted", ids),
                WalOp::RebuildIndex(_) => ("index.rebuilt", vec![]),
                WalOp::Optimize => ("index.optimized", vec![]),
            };
            out.push((kind.to_string(), record.library, record.seq, ids));
        }
    }
    out
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn events_equal_the_committed_wal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = dir.path().to_str().expect("utf-8").to_string();
    let server = Server::start(&storage, &[]);
    let http = server.http.clone();
    let sse = Sse::open(&http.base, "/v1/events", None, &[]);
    let seed = 0x5eed_0000_0000_0007_u64;
    let libraries = ["wa", "wb", "wc"];
    // One thread per library, concurrently, so group commits share segments.
    let workers: Vec<_> = libraries
        .iter()
        .enumerate()
        .map(|(n, &library)| {
            let http = http.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(seed + n as u64);
                create_library(&http, library, 4);
                for _ in 0..40 {
                    let id = format!("d{}", rng.below(12));
                    let path = format!("/v1/libraries/{library}");
                    match rng.below(7) {
                        0 | 1 => {
                            let r =
                                http.post(&format!("{path}/documents"), &doc(&id, rng.below(3)));
                            assert_eq!(r.0, 200, "{}", r.1);
                        }
                        2 => {
                            let docs: Vec<Value> = (0..1 + rng.below(4))
                                .map(|_| doc(&format!("d{}", rng.below(12)), rng.below(3)))
                                .collect();
                            let r = http.post(
                                &format!("{path}/documents/batch"),
                                &json!({"documents": docs}),
                            );
                            assert_eq!(r.0, 200, "{}", r.1);
                        }
                        3 => {
                            let status = http.delete(&format!("{path}/documents/{id}")).0;
                            assert!(status == 204 || status == 404, "{status}");
                        }
                        4 => {
                            let ids = vec![id, format!("d{}", rng.below(12))];
                            let r = http
                                .post(&format!("{path}/documents/delete"), &json!({"ids": ids}));
                            assert_eq!(r.0, 200, "{}", r.1);
                        }
                        5 => {
                            let filter = json!({"filter": {"g": rng.below(3)}});
                            let r = http.post(&format!("{path}/documents/delete"), &filter);
                            assert_eq!(r.0, 200, "{}", r.1);
                        }
                        _ => {
                            let r = http.post(&format!("{path}/optimize"), &json!({}));
                            assert_eq!(r.0, 200, "{}", r.1);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut expected: BTreeMap<String, Vec<Change>> = libraries
        .iter()
        .map(|l| (l.to_string(), wal_changes(dir.path(), l)))
        .collect();
    // Deleting a library removes its WAL; its tombstone comes last.
    let wc = expected.get_mut("wc").expect("wc");
    let tombstone = wc.len() as u64 + 1;
    wc.push(("library.deleted".into(), "wc".into(), tombstone, vec![]));
    assert_eq!(http.delete("/v1/libraries/wc").0, 204);

    let total: usize = expected.values().map(Vec::len).sum();
    let frames = sse.events(total, Duration::from_secs(60));
    sse.assert_quiet(Duration::from_millis(500));
    let first = frames[0].id();
    let mut got: BTreeMap<String, Vec<Change>> = BTreeMap::new();
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.id(), first + i as u64, "no event is lost or repeated");
        let j = f.json();
        let library = j["library"].as_str().expect("library").to_string();
        let ids = j["ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|v| v.as_str().expect("id").to_string())
                    .collect()
            })
            .unwrap_or_default();
        got.entry(library.clone()).or_default().push((
            f.event.clone().expect("type"),
            library,
            j["seq"].as_u64().expect("seq"),
            ids,
        ));
    }
    for (library, want) in &expected {
        assert!(want.len() > 10, "the workload wrote to {library}");
        assert_eq!(
            got.get(library),
            Some(want),
            "events of {library} (seed {seed:#x})"
        );
    }
    assert_eq!(got.len(), expected.len());

    // A resume from the first id replays a library's whole history.
    let resumed = Sse::open(
        &http.base,
        "/v1/events?library=wa",
        None,
        &[("Last-Event-ID", &(first - 1).to_string())],
    );
    let replay = resumed.events(expected["wa"].len(), T);
    let originals: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.json()["library"] == "wa")
        .collect();
    for (r, o) in replay.iter().zip(originals) {
        assert_eq!(r.raw, o.raw);
    }
    assert_error(&http.get("/v1/libraries/wc"), 404, "not_found");
}

#[test]
fn websocket_requests_spend_the_key_s_rate_budget() {
    // 5 searches and 5 writes per second per key (burst 5); the upgrade spends a read.
    let (server, keys) = tenants_server(&[("ARRWDB_SEARCH_RATE", "5"), ("ARRWDB_WRITE_RATE", "5")]);
    let mut ws = ws_connect(&server.http.base, Some(&keys["a"])).expect("connect");
    let mut kinds = Vec::new();
    for i in 0..12 {
        let reply = ws_call(
            &mut ws,
            i,
            "upsert",
            json!({"library": "limited", "document": doc(&format!("d{i}"), 0)}),
        );
        kinds.push(if reply.0["ok"] == true {
            "ok".to_string()
        } else {
            err_kind(&reply)
        });
    }
    assert!(
        kinds.iter().any(|k| k == "rate_limited"),
        "12 writes at once stay under a budget of 5: {kinds:?}"
    );
    assert!(
        kinds.iter().take(4).all(|k| k != "rate_limited"),
        "{kinds:?}"
    );
    // Reads have their own budget: a search is admitted after the writes ran out.
    let reply = ws_call(
        &mut ws,
        100,
        "get",
        json!({"library": "limited", "id": "d0"}),
    );
    assert_ne!(err_kind(&reply), "rate_limited", "{:?}", reply.0);
}
