//! The maintenance commands (`RebuildIndex`, `Optimize`) and the request limits: what a
//! user relies on is that rebuilding or compacting never loses or resurrects a chunk,
//! keeps exact results exact, replays identically from the log, and that oversized
//! requests are refused with an `invalid` error naming the limit.

use arrwdb_core::api::{self, ChunkInput, SearchRequest, UpsertDocumentRequest};
use arrwdb_core::{
    Command, Engine, Error, ErrorKind, HnswParams, IndexConfig, IvfParams, LibraryConfig, Metric,
    Outcome, Query, QueryResponse, WalRecord,
};

const SEED: u64 = 0xc0ff_ee11;
const DIM: usize = 16;

/// splitmix64, so every run (and every failure) reproduces from `SEED`.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn vector(&mut self, dim: usize) -> Vec<f32> {
        (0..dim)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0)
            .collect()
    }
}

/// prepare + apply; returns the record a runtime would log and the outcome.
fn run(engine: &mut Engine, log: &mut Vec<WalRecord>, command: Command) -> Outcome {
    let record = engine.prepare(command).expect("prepare");
    let outcome = engine.apply(&record).expect("apply");
    log.push(record);
    outcome
}

fn upsert(id: &str, vectors: &[Vec<f32>]) -> Command {
    let request = UpsertDocumentRequest {
        id: None,
        metadata: serde_json::from_value(serde_json::json!({"doc": id})).expect("metadata"),
        chunks: vectors
            .iter()
            .map(|v| ChunkInput {
                id: None,
                text: format!("text of {id}"),
                embedding: v.clone(),
                metadata: Default::default(),
            })
            .collect(),
    };
    Command::UpsertDocument {
        library: "lib".into(),
        document: request.into_document(id.into()),
    }
}

/// A library of `docs` documents with two chunks each, then `deleted` of them removed
/// (every `docs / deleted`-th) and a few replaced, so it holds tombstones.
fn build(index: IndexConfig, docs: usize, deleted: usize) -> (Engine, Vec<WalRecord>) {
    let mut engine = Engine::new();
    let mut log = Vec::new();
    let config = LibraryConfig {
        name: "lib".into(),
        dimension: DIM as u32,
        metric: Metric::Cosine,
        index,
        quantization: arrwdb_core::api::QuantizationConfig::None,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    run(&mut engine, &mut log, Command::CreateLibrary(config));
    let mut rng = Rng(SEED);
    for d in 0..docs {
        let vectors = [rng.vector(DIM), rng.vector(DIM)];
        run(&mut engine, &mut log, upsert(&format!("d{d}"), &vectors));
    }
    for d in (0..docs).step_by(docs / deleted.max(1)).take(deleted) {
        let command = Command::DeleteDocument {
            library: "lib".into(),
            document: format!("d{d}"),
        };
        run(&mut engine, &mut log, command);
    }
    for d in [1, 5, 9] {
        let vectors = [rng.vector(DIM), rng.vector(DIM)];
        run(&mut engine, &mut log, upsert(&format!("d{d}"), &vectors));
    }
    (engine, log)
}

fn queries() -> Vec<Vec<f32>> {
    let mut rng = Rng(SEED ^ 0xabcd);
    (0..20).map(|_| rng.vector(DIM)).collect()
}

/// Chunk ids and score bits of a search, best first.
fn results(engine: &Engine, vector: &[f32], k: u32) -> Vec<(String, u32)> {
    let query = Query::Search {
        library: "lib".into(),
        request: SearchRequest::vector(vector.to_vec(), k),
    };
    match engine.query(&query).expect("search") {
        QueryResponse::Search(found) => found
            .hits
            .into_iter()
            .map(|h| (h.chunk_id, h.score.to_bits()))
            .collect(),
        other => panic!("unexpected {other:?}"),
    }
}

fn info(engine: &Engine) -> api::LibraryInfo {
    engine.library("lib").expect("library").info()
}

/// Every live chunk id (through the documents), sorted.
fn live_ids(engine: &Engine, docs: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for d in 0..docs {
        let query = Query::GetDocument {
            library: "lib".into(),
            document: format!("d{d}"),
        };
        if let Ok(QueryResponse::Document(doc)) = engine.query(&query) {
            ids.extend(doc.chunks.into_iter().map(|c| c.id));
        }
    }
    ids.sort();
    ids
}

fn recall(found: &[(String, u32)], truth: &[(String, u32)]) -> f64 {
    let hits = found
        .iter()
        .filter(|(id, _)| truth.iter().any(|(t, _)| t == id))
        .count();
    hits as f64 / truth.len().max(1) as f64
}

/// Applies `log` to a fresh engine: the state every other runtime would rebuild.
fn replay(log: &[WalRecord]) -> Engine {
    let mut engine = Engine::new();
    for record in log {
        engine.apply(record).expect("replay");
    }
    engine
}

fn ivf() -> IndexConfig {
    IndexConfig::Ivf(IvfParams {
        nlist: 16,
        nprobe: 16,
        train_size: 256,
        pq_m: 0,
        seed: 7,
    })
}

#[test]
fn rebuild_flat_hnsw_ivf_flat_keeps_the_live_set_and_exact_results() {
    const DOCS: usize = 600;
    eprintln!("seed {SEED:#x}");
    let (mut engine, mut log) = build(IndexConfig::Flat, DOCS, 60);
    let before = info(&engine);
    let ids = live_ids(&engine, DOCS);
    let k = 10;
    let exact: Vec<_> = queries().iter().map(|q| results(&engine, q, k)).collect();

    let hnsw = IndexConfig::Hnsw(HnswParams::default());
    for (index, min_recall) in [(hnsw, 0.9), (ivf(), 0.99), (IndexConfig::Flat, 1.0)] {
        let command = Command::RebuildIndex {
            library: "lib".into(),
            index: index.clone(),
        };
        let Outcome::IndexRebuilt(rebuilt) = run(&mut engine, &mut log, command) else {
            panic!("expected IndexRebuilt");
        };
        assert_eq!(rebuilt.index, index);
        assert_eq!(info(&engine), rebuilt);
        assert_eq!(
            (rebuilt.documents, rebuilt.chunks),
            (before.documents, before.chunks)
        );
        assert_eq!(
            live_ids(&engine, DOCS),
            ids,
            "{index:?} changed the live set"
        );
        let mut total = 0.0;
        for (q, truth) in queries().iter().zip(&exact) {
            let found = results(&engine, q, k);
            assert!(found.len() == k as usize, "{index:?} returned {found:?}");
            assert!(
                found.iter().all(|(id, _)| ids.binary_search(id).is_ok()),
                "{index:?} returned a deleted chunk: {found:?}"
            );
            total += recall(&found, truth);
        }
        let mean = total / exact.len() as f64;
        eprintln!("{index:?}: recall@{k} {mean:.3}");
        assert!(
            mean >= min_recall,
            "{index:?}: recall {mean} < {min_recall}"
        );
        // The new config is what a snapshot keeps.
        let mut restored = Engine::new();
        restored
            .restore(&engine.snapshot("lib").expect("snapshot"))
            .expect("restore");
        assert_eq!(restored, engine);
        assert_eq!(info(&restored).index, index);
    }
    // Back on flat: bit-identical to the results before any rebuild.
    for (q, truth) in queries().iter().zip(&exact) {
        assert_eq!(&results(&engine, q, k), truth);
    }
    assert_eq!(replay(&log), engine, "replaying the log differs");
}

#[test]
fn optimize_after_deleting_30_percent_keeps_results_and_shrinks_the_snapshot() {
    const DOCS: usize = 500;
    eprintln!("seed {SEED:#x}");
    let (mut engine, mut log) = build(IndexConfig::Flat, DOCS, 150);
    let before = info(&engine);
    let ids = live_ids(&engine, DOCS);
    let snapshot = engine.snapshot("lib").expect("snapshot");
    let exact: Vec<_> = queries().iter().map(|q| results(&engine, q, 10)).collect();

    let command = Command::Optimize {
        library: "lib".into(),
    };
    let Outcome::Optimized(optimized) = run(&mut engine, &mut log, command) else {
        panic!("expected Optimized");
    };
    assert_eq!(
        (
            optimized.documents,
            optimized.chunks,
            optimized.index.clone()
        ),
        (before.documents, before.chunks, before.index.clone())
    );
    assert_eq!(optimized.seq, before.seq + 1);
    assert_eq!(live_ids(&engine, DOCS), ids);
    for (q, truth) in queries().iter().zip(&exact) {
        assert_eq!(&results(&engine, q, 10), truth);
    }
    let compacted = engine.snapshot("lib").expect("snapshot");
    eprintln!(
        "snapshot {} -> {} bytes after optimize",
        snapshot.len(),
        compacted.len()
    );
    assert!(compacted.len() < snapshot.len() * 85 / 100);
    // The compacted snapshot is valid (restore checks every invariant).
    let mut restored = Engine::new();
    restored.restore(&compacted).expect("restore");
    assert_eq!(restored, engine);

    // Writes after optimize reuse nothing stale: replace, delete and insert still work.
    let mut rng = Rng(SEED ^ 1);
    run(&mut engine, &mut log, upsert("d2", &[rng.vector(DIM)]));
    run(&mut engine, &mut log, upsert("new", &[rng.vector(DIM)]));
    let command = Command::DeleteDocument {
        library: "lib".into(),
        document: "d4".into(),
    };
    run(&mut engine, &mut log, command);
    // d2: 2 chunks -> 1; "new": +1; d4: -2.
    assert_eq!(info(&engine).chunks, before.chunks - 2);

    // An optimized approximate index still finds the exact neighbours.
    let command = Command::RebuildIndex {
        library: "lib".into(),
        index: IndexConfig::Hnsw(HnswParams::default()),
    };
    run(&mut engine, &mut log, command);
    run(
        &mut engine,
        &mut log,
        Command::Optimize {
            library: "lib".into(),
        },
    );
    let reference = replay(&log);
    assert_eq!(reference, engine, "replaying the log differs");
    assert_eq!(
        reference.snapshot("lib").expect("snapshot"),
        engine.snapshot("lib").expect("snapshot")
    );
}

#[test]
fn optimize_and_rebuild_replay_identically_for_every_index_kind() {
    let kinds = [
        IndexConfig::Hnsw(HnswParams::default()),
        ivf(),
        IndexConfig::Ivf(IvfParams {
            pq_m: 4,
            ..match ivf() {
                IndexConfig::Ivf(p) => p,
                _ => unreachable!(),
            }
        }),
        IndexConfig::KdTree(Default::default()),
        IndexConfig::Lsh(Default::default()),
    ];
    for index in kinds {
        let (mut engine, mut log) = build(index.clone(), 300, 90);
        let command = Command::Optimize {
            library: "lib".into(),
        };
        run(&mut engine, &mut log, command);
        let command = Command::RebuildIndex {
            library: "lib".into(),
            index: IndexConfig::Flat,
        };
        run(&mut engine, &mut log, command);
        let command = Command::RebuildIndex {
            library: "lib".into(),
            index: index.clone(),
        };
        run(&mut engine, &mut log, command);
        let replayed = replay(&log);
        assert_eq!(replayed, engine, "{index:?}: replay differs");
        assert_eq!(
            replayed.snapshot("lib").expect("snapshot"),
            engine.snapshot("lib").expect("snapshot"),
            "{index:?}"
        );
        for q in queries() {
            assert_eq!(results(&replayed, &q, 10), results(&engine, &q, 10));
        }
    }
}

#[test]
fn maintenance_commands_refuse_unknown_libraries_and_bad_parameters() {
    let (engine, _) = build(IndexConfig::Flat, 20, 2);
    let seq = info(&engine).seq;
    let refused = |command: Command| engine.prepare(command).expect_err("must be refused");

    let e = refused(Command::Optimize {
        library: "nope".into(),
    });
    assert_eq!(e, Error::LibraryNotFound("nope".into()));
    let e = refused(Command::RebuildIndex {
        library: "nope".into(),
        index: IndexConfig::Flat,
    });
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let bad = IndexConfig::Hnsw(HnswParams {
        m: 1,
        ..HnswParams::default()
    });
    let e = refused(Command::RebuildIndex {
        library: "lib".into(),
        index: bad.clone(),
    });
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("`m`"), "{e}");

    // A hand-made record with bad parameters is refused by apply too.
    let mut engine = engine;
    let record = WalRecord {
        library: "lib".into(),
        seq: seq + 1,
        op: arrwdb_core::WalOp::RebuildIndex(bad),
    };
    assert_eq!(
        engine.apply(&record).expect_err("refused").kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        info(&engine).seq,
        seq,
        "a refused record changed the library"
    );

    // JSON: the rebuild body needs `index` and nothing else; optimize takes {} or nothing.
    let e = api::from_json::<api::RebuildRequest>(br#"{"index":{"type":"hnsw"},"x":1}"#)
        .expect_err("unknown field");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let ok = api::from_json::<api::RebuildRequest>(br#"{"index":{"type":"hnsw","m":8}}"#)
        .expect("valid");
    assert!(matches!(
        ok.index,
        IndexConfig::Hnsw(HnswParams { m: 8, .. })
    ));
    assert!(api::OptimizeRequest::from_body(b"").is_ok());
    assert!(api::OptimizeRequest::from_body(b" {} ").is_ok());
    assert_eq!(
        api::OptimizeRequest::from_body(br#"{"x":1}"#)
            .expect_err("unknown field")
            .kind(),
        ErrorKind::Invalid
    );
}

#[test]
fn limits_are_refused_with_invalid_errors_naming_them() {
    let (engine, _) = build(IndexConfig::Flat, 20, 2);
    let search = |k: u32| {
        engine.query(&Query::Search {
            library: "lib".into(),
            request: SearchRequest::vector(vec![0.5; DIM], k),
        })
    };
    assert!(search(api::MAX_K).is_ok());
    assert_eq!(api::MAX_K, 1000);
    let e = search(1001).expect_err("k too large");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(e.to_string(), "k must be between 1 and 1000, got 1001");

    let document = |id: &str, chunk_id: &str, text: String| {
        let request = UpsertDocumentRequest {
            id: None,
            metadata: Default::default(),
            chunks: vec![
                ChunkInput {
                    id: Some("first".into()),
                    text: "short".into(),
                    embedding: vec![0.5; DIM],
                    metadata: Default::default(),
                },
                ChunkInput {
                    id: Some(chunk_id.into()),
                    text,
                    embedding: vec![0.25; DIM],
                    metadata: Default::default(),
                },
            ],
        };
        engine.prepare(Command::UpsertDocument {
            library: "lib".into(),
            document: request.into_document(id.into()),
        })
    };
    assert_eq!(api::MAX_CHUNK_TEXT_BYTES, 65_536);
    // The limit counts UTF-8 bytes: 'é' is two.
    assert!(document("ok", "c", "é".repeat(32 * 1024)).is_ok());
    let e = document("big", "c", "é".repeat(32 * 1024) + "x").expect_err("too long");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert_eq!(
        e.to_string(),
        "chunks[1].text is 65537 bytes of UTF-8, more than the limit of 65536 bytes (64 KiB)"
    );
    let e = document("big", "c", "x".repeat(70 * 1024)).expect_err("too long");
    assert!(
        e.to_string().starts_with("chunks[1].text is 71680 bytes"),
        "{e}"
    );

    assert_eq!(api::MAX_ID_BYTES, 512);
    assert!(document(&"d".repeat(512), &"c".repeat(512), "t".into()).is_ok());
    let e = document(&"d".repeat(513), "c", "t".into()).expect_err("long id");
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(
        e.to_string()
            .starts_with("document id must be 1 to 512 bytes"),
        "{e}"
    );
    let e = document("d", &"c".repeat(600), "t".into()).expect_err("long id");
    assert!(
        e.to_string().starts_with("chunk id must be 1 to 512 bytes"),
        "{e}"
    );

    let create = |dimension: u32| {
        serde_json::from_value::<api::CreateLibraryRequest>(
            serde_json::json!({"name": "x", "dimension": dimension}),
        )
        .expect("shape")
        .into_config()
    };
    assert!(create(4096).is_ok());
    assert_eq!(
        create(4097).expect_err("too large").to_string(),
        "dimension must be between 1 and 4096, got 4097"
    );
    assert!(create(0).is_err());
}
