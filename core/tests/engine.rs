//! Behaviour of the engine that every runtime relies on: exact search, replace and
//! delete semantics, deterministic replay, snapshots, and refusal of bad input.

use std::collections::BTreeMap;

use arrwdb_core::api::{self, SearchRequest, UpsertDocumentRequest};
use arrwdb_core::{
    Command, Engine, Error, ErrorKind, LibraryConfig, Metric, Query, QueryResponse, WalRecord,
    codec,
};
use proptest::prelude::*;

/// Small deterministic generator (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim).map(|_| self.next_f32()).collect()
    }
}

fn config(name: &str, dimension: u32, metric: Metric) -> LibraryConfig {
    let json = serde_json::json!({"name": name, "dimension": dimension, "metric": metric});
    serde_json::from_value::<api::CreateLibraryRequest>(json)
        .expect("valid request")
        .into_config()
        .expect("valid config")
}

/// prepare + apply, returning the record (what a runtime would log).
fn run(engine: &mut Engine, command: Command) -> Result<WalRecord, Error> {
    let record = engine.prepare(command)?;
    engine.apply(&record)?;
    Ok(record)
}

fn doc(id: &str, vectors: &[Vec<f32>]) -> Command {
    let chunks = vectors
        .iter()
        .map(|v| api::ChunkInput {
            id: None,
            text: format!("text of {id}"),
            embedding: v.clone(),
            metadata: Default::default(),
        })
        .collect();
    let request = UpsertDocumentRequest {
        id: None,
        metadata: Default::default(),
        chunks,
    };
    Command::UpsertDocument {
        library: "lib".into(),
        document: request.into_document(id.into()),
    }
}

fn search(engine: &Engine, vector: Vec<f32>, k: u32) -> Result<api::SearchResponse, Error> {
    let query = Query::Search {
        library: "lib".into(),
        request: SearchRequest::vector(vector, k),
    };
    match engine.query(&query)? {
        QueryResponse::Search(found) => Ok(found),
        other => panic!("unexpected response {other:?}"),
    }
}

fn reference_score(metric: Metric, q: &[f32], x: &[f32]) -> f64 {
    let dot: f64 = q
        .iter()
        .zip(x)
        .map(|(a, b)| f64::from(*a) * f64::from(*b))
        .sum();
    let nq: f64 = q.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
    let nx: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum::<f64>().sqrt();
    let l2: f64 = q
        .iter()
        .zip(x)
        .map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2))
        .sum();
    match metric {
        Metric::Cosine => dot / (nq * nx),
        Metric::Dot => dot,
        Metric::L2 => -l2.sqrt(),
    }
}

#[test]
fn flat_search_returns_the_exact_top_k_for_every_metric() {
    for (seed, metric) in [(1u64, Metric::Cosine), (2, Metric::Dot), (3, Metric::L2)] {
        // 37 is deliberately not a multiple of the kernel's 16 lanes.
        let (dim, n, k) = (37usize, 300usize, 10usize);
        let mut rng = Rng(seed);
        let mut engine = Engine::new();
        run(
            &mut engine,
            Command::CreateLibrary(config("lib", dim as u32, metric)),
        )
        .expect("create");
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| rng.vector(dim)).collect();
        for (i, v) in vectors.iter().enumerate() {
            run(&mut engine, doc(&format!("d{i}"), std::slice::from_ref(v))).expect("upsert");
        }
        for _ in 0..20 {
            let q = rng.vector(dim);
            let found = search(&engine, q.clone(), k as u32).expect("search");
            let mut truth: Vec<f64> = vectors
                .iter()
                .map(|x| reference_score(metric, &q, x))
                .collect();
            truth.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(found.hits.len(), k, "seed {seed}");
            for (rank, hit) in found.hits.iter().enumerate() {
                let i: usize = hit.document_id[1..].parse().expect("numeric id");
                let own = reference_score(metric, &q, &vectors[i]);
                assert!(
                    (f64::from(hit.score) - own).abs() < 1e-4,
                    "seed {seed}: score of {i}"
                );
                assert!(
                    (own - truth[rank]).abs() < 1e-4,
                    "seed {seed} {metric:?}: rank {rank} has {own}, exact top-k has {}",
                    truth[rank]
                );
            }
            assert!(
                found.hits.windows(2).all(|w| w[0].score >= w[1].score),
                "sorted by score"
            );
        }
    }
}

#[test]
fn upsert_replaces_a_document_and_delete_removes_it() {
    let mut engine = Engine::new();
    run(
        &mut engine,
        Command::CreateLibrary(config("lib", 2, Metric::Cosine)),
    )
    .expect("create");
    run(&mut engine, doc("a", &[vec![1.0, 0.0], vec![0.0, 1.0]])).expect("upsert");
    run(&mut engine, doc("b", &[vec![0.7, 0.7]])).expect("upsert");
    // Replace `a` with a single chunk: its old chunks must vanish from search.
    run(&mut engine, doc("a", &[vec![-1.0, 0.0]])).expect("replace");
    let found = search(&engine, vec![0.0, 1.0], 10).expect("search");
    let ids: Vec<_> = found.hits.iter().map(|h| h.chunk_id.as_str()).collect();
    assert_eq!(ids, ["b#0", "a#0"]);
    let info = engine.library("lib").expect("library").info();
    assert_eq!((info.documents, info.chunks, info.seq), (2, 2, 4));

    run(
        &mut engine,
        Command::DeleteDocument {
            library: "lib".into(),
            document: "b".into(),
        },
    )
    .expect("delete");
    let found = search(&engine, vec![0.0, 1.0], 10).expect("search");
    assert_eq!(found.hits.len(), 1);
    assert_eq!(found.hits[0].document_id, "a");
    let missing = engine
        .prepare(Command::DeleteDocument {
            library: "lib".into(),
            document: "b".into(),
        })
        .expect_err("already deleted");
    assert_eq!(missing.kind(), ErrorKind::NotFound);
}

#[test]
fn snapshot_restores_identical_state_and_rejects_corruption() {
    let mut engine = Engine::new();
    let mut rng = Rng(7);
    let mut log = vec![
        run(
            &mut engine,
            Command::CreateLibrary(config("lib", 16, Metric::L2)),
        )
        .expect("create"),
    ];
    for i in 0..50 {
        log.push(
            run(&mut engine, doc(&format!("d{}", i % 30), &[rng.vector(16)])).expect("upsert"),
        );
    }
    let bytes = engine.snapshot("lib").expect("snapshot");

    let mut restored = Engine::new();
    assert_eq!(restored.restore(&bytes).expect("restore"), "lib");
    assert_eq!(restored, engine, "snapshot round trip");

    // Replaying the log from nothing gives the same state, bit for bit.
    let mut replayed = Engine::new();
    for record in &log {
        let bytes = codec::to_bytes(record).expect("encode");
        replayed
            .apply(&codec::from_bytes("WAL record", &bytes).expect("decode"))
            .expect("apply");
    }
    assert_eq!(replayed, engine, "replay");
    assert_eq!(
        replayed.snapshot("lib").expect("snapshot"),
        bytes,
        "snapshots are deterministic"
    );

    // Any flipped byte, a truncation or an unknown version is refused, never misread.
    for i in (0..bytes.len()).step_by(97) {
        let mut bad = bytes.clone();
        bad[i] ^= 0x40;
        let err = Engine::new().restore(&bad).expect_err("corrupt snapshot");
        assert_eq!(err.kind(), ErrorKind::Internal, "byte {i}: {err}");
    }
    assert!(Engine::new().restore(&bytes[..bytes.len() - 1]).is_err());
    let mut future = bytes.clone();
    future[4..6].copy_from_slice(&99u16.to_le_bytes());
    let body_len = future.len() - 4;
    let crc = crc32fast::hash(&future[..body_len]);
    future[body_len..].copy_from_slice(&crc.to_le_bytes());
    match Engine::new().restore(&future) {
        Err(Error::UnknownVersion { version: 99, .. }) => {}
        other => panic!("expected an unknown-version error, got {other:?}"),
    }
}

#[test]
fn wal_segments_round_trip_and_detect_damage() {
    let mut engine = Engine::new();
    let records = vec![
        run(
            &mut engine,
            Command::CreateLibrary(config("lib", 3, Metric::Dot)),
        )
        .expect("create"),
        run(&mut engine, doc("a", &[vec![1.0, 2.0, 3.0]])).expect("upsert"),
    ];
    let bytes = codec::encode_wal_segment(&records).expect("encode");
    assert_eq!(&bytes[..4], b"ARWL");
    assert_eq!(codec::decode_wal_segment(&bytes).expect("decode"), records);
    let mut bad = bytes.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    assert!(codec::decode_wal_segment(&bad).is_err());
    // Records must be consecutive.
    assert!(codec::encode_wal_segment(&[records[1].clone(), records[0].clone()]).is_err());
    assert!(codec::encode_wal_segment(&[]).is_err());
}

#[test]
fn bad_input_is_refused_with_the_message_clients_see() {
    let mut engine = Engine::new();
    run(
        &mut engine,
        Command::CreateLibrary(config("lib", 3, Metric::Cosine)),
    )
    .expect("create");
    let message = |r: Result<WalRecord, Error>| {
        let e = r.expect_err("must be refused");
        (e.kind(), e.to_string())
    };
    assert_eq!(
        message(engine.prepare(doc("a", &[vec![1.0, 2.0]]))),
        (
            ErrorKind::Invalid,
            "wrong vector dimension: expected 3, got 2".into()
        )
    );
    assert_eq!(
        message(engine.prepare(doc("a", &[vec![1.0, f32::NAN, 0.0]]))),
        (
            ErrorKind::Invalid,
            "chunks[0].embedding contains a non-finite number (NaN or infinity) at position 1"
                .into()
        )
    );
    assert_eq!(
        message(engine.prepare(doc("a", &[vec![0.0, f32::INFINITY, 0.0]]))).0,
        ErrorKind::Invalid
    );
    assert_eq!(
        message(engine.prepare(doc("a", &[]))).1,
        "a document needs at least one chunk"
    );
    assert_eq!(
        message(engine.prepare(doc("a", &[vec![0.0, 0.0, 0.0]]))).0,
        ErrorKind::Invalid
    );
    assert_eq!(
        message(engine.prepare(Command::CreateLibrary(config("lib", 3, Metric::Dot)))),
        (ErrorKind::Conflict, "library `lib` already exists".into())
    );
    let unknown = Command::DeleteLibrary {
        library: "nope".into(),
    };
    assert_eq!(
        message(engine.prepare(unknown)),
        (ErrorKind::NotFound, "library `nope` not found".into())
    );

    // A chunk id owned by another document is a conflict.
    run(&mut engine, doc("a", &[vec![1.0, 0.0, 0.0]])).expect("upsert");
    let mut stolen = doc("b", &[vec![1.0, 0.0, 0.0]]);
    if let Command::UpsertDocument { document, .. } = &mut stolen {
        document.chunks[0].id = "a#0".into();
    }
    assert_eq!(message(engine.prepare(stolen)).0, ErrorKind::Conflict);

    // Searches: k, dimension, non-finite, a mode without its inputs.
    assert!(search(&engine, vec![1.0, 0.0, 0.0], 0).is_err());
    assert_eq!(
        search(&engine, vec![1.0, 0.0], 3)
            .expect_err("dim")
            .to_string(),
        "wrong vector dimension: expected 3, got 2"
    );
    // `text` alone in vector mode: no embedding provider, so a clear 400.
    let text_only: SearchRequest =
        serde_json::from_str(r#"{"text":"hello","mode":"vector"}"#).expect("parses");
    let err = engine
        .query(&Query::Search {
            library: "lib".into(),
            request: text_only,
        })
        .expect_err("no provider");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("no embedding provider"), "{err}");

    // JSON: syntax errors and shape errors are both client errors.
    let e = api::from_json::<UpsertDocumentRequest>(b"{\"chunks\": [").expect_err("syntax");
    assert!(e.to_string().starts_with("malformed JSON"), "{e}");
    let e = api::from_json::<UpsertDocumentRequest>(b"{\"chunkz\": []}").expect_err("shape");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("chunkz"), "{e}");
    // 1e39 overflows f32 to infinity: refused by validation, not stored.
    let overflow: UpsertDocumentRequest =
        api::from_json(br#"{"chunks":[{"embedding":[1e39,0,0]}]}"#).expect("parses");
    let cmd = Command::UpsertDocument {
        library: "lib".into(),
        document: overflow.into_document("x".into()),
    };
    assert_eq!(message(engine.prepare(cmd)).0, ErrorKind::Invalid);
    assert!(
        api::CreateLibraryRequest {
            name: "bad/name".into(),
            ..config_request()
        }
        .into_config()
        .is_err()
    );
    assert!(
        api::CreateLibraryRequest {
            dimension: 0,
            ..config_request()
        }
        .into_config()
        .is_err()
    );
}

#[test]
fn ivf_pq_must_divide_the_dimension() {
    let bad: api::CreateLibraryRequest = serde_json::from_str(
        r#"{"name":"pq","dimension":8,"index":{"type":"ivf","nlist":2,"nprobe":2,"train_size":4,"pq_m":3}}"#,
    )
    .expect("parses");
    let err = Engine::new()
        .prepare(Command::CreateLibrary(bad.into_config().expect("config")))
        .expect_err("3 does not divide 8");
    assert_eq!(
        err.to_string(),
        "index parameter `pq_m` must divide the dimension 8, got 3"
    );
    let good: api::CreateLibraryRequest = serde_json::from_str(
        r#"{"name":"pq","dimension":8,"index":{"type":"ivf","nlist":2,"nprobe":2,"train_size":4,"pq_m":4}}"#,
    )
    .expect("parses");
    assert!(
        Engine::new()
            .prepare(Command::CreateLibrary(good.into_config().expect("config")))
            .is_ok()
    );
}

fn config_request() -> api::CreateLibraryRequest {
    serde_json::from_str(r#"{"name":"ok","dimension":4}"#).expect("valid")
}

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        doc: u8,
        chunks: Vec<[i8; 4]>,
    },
    Delete {
        doc: u8,
    },
    SnapshotRestore,
    /// Rebuild with index kind `n % 5` (flat, hnsw, ivf, kdtree, lsh).
    Rebuild(u8),
    Optimize,
}

fn index_kind(n: u8) -> arrwdb_core::IndexConfig {
    let json = match n % 5 {
        0 => serde_json::json!({"type": "flat"}),
        1 => serde_json::json!({"type": "hnsw", "m": 4, "ef_construction": 16}),
        2 => serde_json::json!({"type": "ivf", "nlist": 2, "nprobe": 2, "train_size": 4}),
        3 => serde_json::json!({"type": "kdtree", "leaf_size": 2}),
        _ => serde_json::json!({"type": "lsh", "num_tables": 2, "hash_size": 3}),
    };
    serde_json::from_value(json).expect("index config")
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, prop::collection::vec(any::<[i8; 4]>(), 1..4))
            .prop_map(|(doc, chunks)| Op::Upsert { doc, chunks }),
        2 => (0u8..8).prop_map(|doc| Op::Delete { doc }),
        1 => Just(Op::SnapshotRestore),
        1 => any::<u8>().prop_map(Op::Rebuild),
        1 => Just(Op::Optimize),
    ]
}

proptest! {
    /// Random operation sequences (upserts, deletes, rebuilds to every index kind,
    /// optimize, snapshot + restore) against a plain map model: the engine holds exactly
    /// the model's chunks, replaying its log reproduces it bit for bit, snapshots change
    /// nothing.
    #[test]
    fn engine_matches_a_simple_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut engine = Engine::new();
        let mut log = vec![run(&mut engine, Command::CreateLibrary(config("lib", 4, Metric::L2))).expect("create")];
        let mut model: BTreeMap<String, Vec<Vec<f32>>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Upsert { doc: d, chunks } => {
                    let vectors: Vec<Vec<f32>> = chunks.iter().map(|c| c.iter().map(|x| f32::from(*x)).collect()).collect();
                    log.push(run(&mut engine, doc(&format!("d{d}"), &vectors)).expect("upsert"));
                    model.insert(format!("d{d}"), vectors);
                }
                Op::Delete { doc: d } => {
                    let result = run(&mut engine, Command::DeleteDocument { library: "lib".into(), document: format!("d{d}") });
                    prop_assert_eq!(result.is_ok(), model.remove(&format!("d{d}")).is_some());
                    if let Ok(record) = result { log.push(record); }
                }
                Op::SnapshotRestore => {
                    let bytes = engine.snapshot("lib").expect("snapshot");
                    let mut fresh = Engine::new();
                    fresh.restore(&bytes).expect("restore");
                    prop_assert_eq!(&fresh, &engine);
                    engine = fresh;
                }
                Op::Rebuild(kind) => {
                    let command = Command::RebuildIndex { library: "lib".into(), index: index_kind(kind) };
                    log.push(run(&mut engine, command).expect("rebuild"));
                }
                Op::Optimize => {
                    log.push(run(&mut engine, Command::Optimize { library: "lib".into() }).expect("optimize"));
                }
            }
        }
        // Exactness is checked on flat (approximate kinds are covered by the recall tests).
        log.push(run(&mut engine, Command::RebuildIndex { library: "lib".into(), index: index_kind(0) }).expect("rebuild"));
        let info = engine.library("lib").expect("library").info();
        prop_assert_eq!(info.documents as usize, model.len());
        let total: usize = model.values().map(Vec::len).sum();
        prop_assert_eq!(info.chunks as usize, total);
        // Every live chunk, and only those, is found; with L2 each score is exact.
        let found = search(&engine, vec![0.5, -0.5, 1.5, 2.0], 1000).expect("search");
        let mut expected: Vec<(String, f64)> = model.iter().flat_map(|(d, vs)| {
            vs.iter().enumerate().map(move |(i, v)| (format!("{d}#{i}"), reference_score(Metric::L2, &[0.5, -0.5, 1.5, 2.0], v)))
        }).collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        let mut got: Vec<(String, f64)> = found.hits.iter().map(|h| (h.chunk_id.clone(), f64::from(h.score))).collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        prop_assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            prop_assert_eq!(&g.0, &e.0);
            prop_assert!((g.1 - e.1).abs() < 1e-3);
        }
        let mut replayed = Engine::new();
        for record in &log { replayed.apply(record).expect("replay"); }
        prop_assert_eq!(replayed.snapshot("lib").expect("a"), engine.snapshot("lib").expect("b"));
    }

    /// Decoders of outside bytes never panic, whatever the input.
    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Engine::new().restore(&bytes);
        let _ = codec::decode_wal_segment(&bytes);
        let _ = codec::from_bytes::<Command>("command", &bytes);
        let _ = codec::from_bytes::<Query>("query", &bytes);
        let _ = api::from_json::<UpsertDocumentRequest>(&bytes);
        let _ = api::from_json::<SearchRequest>(&bytes);
    }

    /// A valid frame around garbage still never panics (the checksum passes, so this
    /// reaches the postcard decoder and the invariant checks).
    #[test]
    fn framed_garbage_never_panics(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        for magic in [codec::SNAPSHOT_MAGIC, codec::WAL_MAGIC] {
            let mut bytes = magic.to_vec();
            bytes.extend_from_slice(&1u16.to_le_bytes());
            bytes.extend_from_slice(&payload);
            let crc = crc32fast::hash(&bytes);
            bytes.extend_from_slice(&crc.to_le_bytes());
            let _ = Engine::new().restore(&bytes);
            let _ = codec::decode_wal_segment(&bytes);
        }
    }
}

#[test]
fn min_score_and_distance_threshold_drop_far_hits() {
    let mut engine = Engine::new();
    run(
        &mut engine,
        Command::CreateLibrary(config("lib", 2, Metric::Cosine)),
    )
    .expect("create");
    for (id, v) in [("x", [1.0, 0.0]), ("diag", [1.0, 1.0]), ("y", [0.0, 1.0])] {
        run(&mut engine, doc(id, &[v.to_vec()])).expect("upsert");
    }
    let ask = |body: serde_json::Value| -> Result<Vec<String>, Error> {
        let request: SearchRequest = serde_json::from_value(body).expect("request");
        match engine.query(&Query::Search {
            library: "lib".into(),
            request,
        })? {
            QueryResponse::Search(found) => {
                Ok(found.hits.into_iter().map(|h| h.document_id).collect())
            }
            other => panic!("unexpected {other:?}"),
        }
    };
    // cos(x, diag) = 0.707, cos(x, y) = 0
    assert_eq!(
        ask(serde_json::json!({"vector": [1, 0], "k": 3})).expect("all"),
        ["x", "diag", "y"]
    );
    assert_eq!(
        ask(serde_json::json!({"vector": [1, 0], "min_score": 0.5})).expect("min"),
        ["x", "diag"]
    );
    assert_eq!(
        ask(serde_json::json!({"vector": [1, 0], "distance_threshold": 0.1})).expect("dist"),
        ["x"]
    );
    assert_eq!(
        ask(serde_json::json!({"vector": [1, 0], "min_score": 0.5, "distance_threshold": 0.1}))
            .expect("both"),
        ["x"]
    );
    assert_eq!(
        ask(serde_json::json!({"vector": [1, 0], "distance_threshold": 0})).expect("zero"),
        ["x"],
        "the query's own vector is at distance 0"
    );
    // A distance is never negative: a negative bound is a mistake, not an empty answer.
    let err = ask(serde_json::json!({"vector": [1, 0], "distance_threshold": -0.5}))
        .expect_err("negative");
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert_eq!(
        err.to_string(),
        "`distance_threshold` must be a finite number of at least 0"
    );
    // Per-query index parameters: 1 up to the index parameters' own bounds.
    assert_eq!(
        ask(serde_json::json!({"vector": [1, 0], "params": {"ef": 4096, "nprobe": 1}}))
            .expect("in range"),
        ["x", "diag", "y"]
    );
    for (params, message) in [
        (
            serde_json::json!({"ef": 0}),
            "`params.ef` must be between 1 and 4096, got 0",
        ),
        (
            serde_json::json!({"ef": 4097}),
            "`params.ef` must be between 1 and 4096, got 4097",
        ),
        (
            serde_json::json!({"nprobe": 0}),
            "`params.nprobe` must be between 1 and 65536, got 0",
        ),
    ] {
        let err =
            ask(serde_json::json!({"vector": [1, 0], "params": params})).expect_err("out of range");
        assert_eq!(
            (err.kind(), err.to_string()),
            (ErrorKind::Invalid, message.to_string())
        );
    }
    let mut dot = Engine::new();
    run(
        &mut dot,
        Command::CreateLibrary(config("lib", 2, Metric::Dot)),
    )
    .expect("create");
    let request: SearchRequest =
        serde_json::from_value(serde_json::json!({"vector": [1, 0], "distance_threshold": 1.0}))
            .expect("request");
    let err = dot
        .query(&Query::Search {
            library: "lib".into(),
            request,
        })
        .expect_err("dot has no distance");
    assert_eq!(err.kind(), ErrorKind::Invalid);
}
