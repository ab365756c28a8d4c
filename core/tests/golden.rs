//! Golden files: every snapshot and WAL format version is frozen by `tests/golden/v{N}/`.
//!
//! For every index kind, `golden/<kind>.snap` is the snapshot of one small deterministic
//! library (300 vectors of dimension 8 from a seeded generator, metadata, deletes and a
//! replaced document), and `golden/<kind>.json` holds the results (chunk ids and score
//! bits) of a few fixed queries against it. The test checks that
//!
//! 1. the committed bytes still decode (`Engine::restore`, which also checks every
//!    invariant) and answer the committed results bit for bit, and
//! 2. building the same library today gives exactly the committed bytes.
//!
//! A change that breaks (2) changes the snapshot format. Snapshots written by earlier
//! builds live in object storage and must keep loading, so such a change needs a
//! conscious version bump (`codec::SNAPSHOT_VERSION`), a decoder that still reads v1,
//! and new golden files for the new version next to these — never a re-bless of
//! these files. Only when the files are first created (or the data set here changes)
//! are they written, with `ARRWDB_BLESS=1 cargo test -p arrwdb-core --test golden`.

use std::path::PathBuf;

use arrwdb_core::api::{ChunkInput, SearchRequest, UpsertDocumentRequest};
use arrwdb_core::{
    Command, Engine, HnswParams, IndexConfig, IvfParams, KdTreeParams, LibraryConfig, LshParams,
    Metric, Query, QueryResponse, WalRecord, codec,
};
use serde_json::{Value, json};

const SEED: u64 = 0x901d_e2f1;
const DIM: usize = 8;
const DOCS: usize = 100;
const CHUNKS_PER_DOC: usize = 3;

/// splitmix64: the data set must never change, so it has its own generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1), exactly representable (24 random bits).
    fn vector(&mut self) -> Vec<f32> {
        (0..DIM)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
            .collect()
    }
}

/// The kinds under test: file name, metric and index configuration.
fn kinds() -> Vec<(&'static str, Metric, IndexConfig)> {
    let ivf = IvfParams {
        nlist: 8,
        nprobe: 3,
        train_size: 64,
        pq_m: 0,
        seed: 11,
    };
    vec![
        ("flat", Metric::Dot, IndexConfig::Flat),
        (
            "hnsw",
            Metric::Cosine,
            IndexConfig::Hnsw(HnswParams {
                m: 8,
                ef_construction: 64,
                ef_search: 32,
                seed: 5,
            }),
        ),
        ("ivf", Metric::L2, IndexConfig::Ivf(ivf)),
        (
            "ivf_pq",
            Metric::L2,
            IndexConfig::Ivf(IvfParams { pq_m: 4, ..ivf }),
        ),
        (
            "kdtree",
            Metric::L2,
            IndexConfig::KdTree(KdTreeParams { leaf_size: 8 }),
        ),
        (
            "lsh",
            Metric::Cosine,
            IndexConfig::Lsh(LshParams {
                num_tables: 4,
                hash_size: 6,
                seed: 3,
            }),
        ),
    ]
}

fn run(engine: &mut Engine, log: &mut Vec<WalRecord>, command: Command) {
    let record = engine.prepare(command).expect("prepare");
    engine.apply(&record).expect("apply");
    log.push(record);
}

fn document(rng: &mut Rng, d: usize, version: u32) -> Command {
    let metadata = json!({"group": d % 5, "year": 2000 + (d % 20), "version": version});
    let request = UpsertDocumentRequest {
        id: None,
        metadata: serde_json::from_value(metadata).expect("metadata"),
        chunks: (0..CHUNKS_PER_DOC)
            .map(|c| ChunkInput {
                id: None,
                text: format!("document {d} chunk {c} v{version}"),
                embedding: rng.vector(),
                metadata: serde_json::from_value(json!({"position": c, "tags": ["t", d % 3]}))
                    .expect("metadata"),
            })
            .collect(),
    };
    Command::UpsertDocument {
        library: "golden".into(),
        document: request.into_document(format!("doc-{d:03}")),
    }
}

/// The golden library for one kind, built from scratch, with its log.
fn build(metric: Metric, index: IndexConfig) -> (Engine, Vec<WalRecord>) {
    let mut engine = Engine::new();
    let mut log = Vec::new();
    let config = LibraryConfig {
        name: "golden".into(),
        dimension: DIM as u32,
        metric,
        index,
        quantization: arrwdb_core::api::QuantizationConfig::None,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    run(&mut engine, &mut log, Command::CreateLibrary(config));
    let mut rng = Rng(SEED);
    for d in 0..DOCS {
        run(&mut engine, &mut log, document(&mut rng, d, 1));
    }
    for d in [7, 21, 50] {
        run(
            &mut engine,
            &mut log,
            Command::DeleteDocument {
                library: "golden".into(),
                document: format!("doc-{d:03}"),
            },
        );
    }
    run(&mut engine, &mut log, document(&mut rng, 3, 2));
    (engine, log)
}

/// The fixed queries: three plain, one filtered.
fn queries() -> Vec<SearchRequest> {
    let mut rng = Rng(SEED ^ 0xffff);
    let mut list: Vec<SearchRequest> = (0..3)
        .map(|_| SearchRequest::vector(rng.vector(), 10))
        .collect();
    let mut filtered = SearchRequest::vector(rng.vector(), 5);
    filtered.filter = Some(serde_json::from_value(json!({"group": 2})).expect("filter"));
    list.push(filtered);
    list
}

/// `[[chunk_id, score_bits], ...]` per query.
fn answers(engine: &Engine, requests: Vec<SearchRequest>) -> Vec<Value> {
    requests
        .into_iter()
        .map(|request| {
            let query = Query::Search {
                library: "golden".into(),
                request,
            };
            match engine.query(&query).expect("search") {
                QueryResponse::Search(found) => found
                    .hits
                    .iter()
                    .map(|h| json!([h.chunk_id, h.score.to_bits()]))
                    .collect(),
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect()
}

/// Keyword and hybrid queries (format v2 on): BM25 statistics and fusion must not
/// drift either.
fn text_queries() -> Vec<SearchRequest> {
    let mut rng = Rng(SEED ^ 0xbeef);
    let keyword = |text: &str, k| {
        let mut r = SearchRequest::vector(Vec::new(), k);
        r.vector = None;
        r.text = Some(text.into());
        r
    };
    let mut hybrid = SearchRequest::vector(rng.vector(), 10);
    hybrid.text = Some("chunk 2 v2".into());
    let mut linear = hybrid.clone();
    linear.fusion = Some(
        serde_json::from_value(json!({"method": "linear", "normalization": "z_score"}))
            .expect("fusion"),
    );
    vec![
        keyword("document 42", 5),
        keyword("chunk 1 v2", 10),
        hybrid,
        linear,
    ]
}

/// `{"queries": [[[chunk_id, score_bits], ...], ...], "text_queries": [...]}`.
fn results(engine: &Engine) -> Value {
    json!({
        "snapshot_version": codec::SNAPSHOT_VERSION,
        "queries": answers(engine, queries()),
        "text_queries": answers(engine, text_queries()),
    })
}

fn golden_dir(version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/golden/v{version}"))
}

fn read(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e} (create with ARRWDB_BLESS=1)", path.display()))
}

/// Every key of the committed results must match today's answers (newer versions add
/// keys, e.g. keyword queries, that older files lack).
fn assert_results(what: &str, expected: &Value, actual: &Value) {
    let Value::Object(expected) = expected else {
        panic!("{what}: golden results are not an object");
    };
    for (key, value) in expected {
        if key == "snapshot_version" {
            continue;
        }
        assert_eq!(
            actual.get(key),
            Some(value),
            "{what}: results `{key}` changed"
        );
    }
}

/// Writes the current version's files (only with `ARRWDB_BLESS=1`).
fn bless() {
    let dir = golden_dir(codec::SNAPSHOT_VERSION);
    std::fs::create_dir_all(&dir).expect("create golden dir");
    for (kind, metric, index) in kinds() {
        let (engine, log) = build(metric, index);
        let bytes = engine.snapshot("golden").expect("snapshot");
        std::fs::write(dir.join(format!("{kind}.snap")), &bytes).expect("write snapshot");
        let text = serde_json::to_string_pretty(&results(&engine)).expect("json") + "\n";
        std::fs::write(dir.join(format!("{kind}.json")), text).expect("write results");
        if kind == "flat" {
            let segment = codec::encode_wal_segment(&log).expect("encode WAL");
            std::fs::write(dir.join("flat.wal"), segment).expect("write WAL");
        }
        eprintln!("{kind}: blessed {} bytes", bytes.len());
    }
    eprintln!("golden files written; run again without ARRWDB_BLESS to check them");
}

/// Versions with committed golden files: 1 ..= current.
fn versions() -> Vec<u16> {
    (1..=codec::SNAPSHOT_VERSION)
        .filter(|&v| golden_dir(v).is_dir())
        .collect()
}

#[test]
fn golden_snapshots_of_every_version_decode_and_answer_the_same() {
    if std::env::var("ARRWDB_BLESS").is_ok_and(|v| v == "1") {
        bless();
        return;
    }
    let versions = versions();
    assert!(versions.contains(&1), "the v1 golden files are missing");
    eprintln!("seed {SEED:#x}, versions {versions:?}");
    for (kind, metric, index) in kinds() {
        index.validate().expect("the index kind is accepted");
        let (fresh, _) = build(metric, index);
        let answers = results(&fresh);
        for &version in &versions {
            let dir = golden_dir(version);
            let golden = read(&dir.join(format!("{kind}.snap")));
            let expected: Value = serde_json::from_slice(&read(&dir.join(format!("{kind}.json"))))
                .expect("golden results are JSON");
            let what = format!("v{version} {kind}");
            assert_eq!(
                u16::from_le_bytes([golden[4], golden[5]]),
                version,
                "{what}: the file's version"
            );
            // The committed bytes load and answer exactly as committed, and a fresh build
            // answers the same.
            let mut restored = Engine::new();
            let name = restored
                .restore(&golden)
                .unwrap_or_else(|e| panic!("{what}: golden snapshot no longer decodes: {e}"));
            assert_eq!(name, "golden");
            assert_results(&what, &expected, &results(&restored));
            assert_results(&what, &expected, &answers);
            // Older versions are upgraded on load (v1 builds its text index from the
            // live chunks, without a fresh build's dead postings), so only the current
            // version must restore to the identical state.
            if version == codec::SNAPSHOT_VERSION {
                assert!(
                    restored == fresh,
                    "{what}: restored state differs from a fresh build"
                );
            }
            eprintln!("{what}: {} bytes, results match", golden.len());
        }
        // Today's encoder writes the current version byte for byte.
        let current = read(&golden_dir(codec::SNAPSHOT_VERSION).join(format!("{kind}.snap")));
        let bytes = fresh.snapshot("golden").expect("snapshot");
        assert!(
            bytes == current,
            "{kind}: a fresh snapshot ({} bytes) differs from the golden v{} file ({} bytes): \
             the snapshot format changed; bump codec::SNAPSHOT_VERSION, keep the old decoder \
             and bless the new version's files",
            bytes.len(),
            codec::SNAPSHOT_VERSION,
            current.len()
        );
    }
}

/// WAL segments of every version decode, and replaying them builds the library that
/// answers as the golden results say.
#[test]
fn golden_wal_segments_of_every_version_replay_to_the_same_library() {
    if std::env::var("ARRWDB_BLESS").is_ok_and(|v| v == "1") {
        return; // the snapshot test writes the files
    }
    let (fresh, log) = build(Metric::Dot, IndexConfig::Flat);
    for version in versions() {
        let dir = golden_dir(version);
        let path = dir.join("flat.wal");
        if version == 1 && !path.exists() {
            continue;
        }
        let segment = read(&path);
        let what = format!("v{version} WAL");
        let records = codec::decode_wal_segment(&segment)
            .unwrap_or_else(|e| panic!("{what}: no longer decodes: {e}"));
        assert_eq!(records.len(), log.len(), "{what}: record count");
        let mut replayed = Engine::new();
        for record in &records {
            replayed
                .apply(record)
                .unwrap_or_else(|e| panic!("{what}: record {} refused: {e}", record.seq));
        }
        let expected: Value =
            serde_json::from_slice(&read(&dir.join("flat.json"))).expect("golden results");
        assert_results(&what, &expected, &results(&replayed));
        assert!(
            replayed == fresh,
            "{what}: replayed state differs from a fresh build"
        );
    }
    let current = read(&golden_dir(codec::WAL_VERSION).join("flat.wal"));
    assert!(
        codec::encode_wal_segment(&log).expect("encode") == current,
        "the WAL encoder's output changed: bump codec::WAL_VERSION and keep the old decoder"
    );
}
