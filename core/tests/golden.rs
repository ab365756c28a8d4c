//! Golden snapshot files: snapshot format v1 is frozen by `tests/golden/`.
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
    Metric, Query, QueryResponse, codec,
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

fn run(engine: &mut Engine, command: Command) {
    let record = engine.prepare(command).expect("prepare");
    engine.apply(&record).expect("apply");
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

/// The golden library for one kind, built from scratch.
fn build(metric: Metric, index: IndexConfig) -> Engine {
    let mut engine = Engine::new();
    let config = LibraryConfig {
        name: "golden".into(),
        dimension: DIM as u32,
        metric,
        index,
        quantization: arrwdb_core::api::QuantizationConfig::None,
    };
    run(&mut engine, Command::CreateLibrary(config));
    let mut rng = Rng(SEED);
    for d in 0..DOCS {
        run(&mut engine, document(&mut rng, d, 1));
    }
    for d in [7, 21, 50] {
        run(
            &mut engine,
            Command::DeleteDocument {
                library: "golden".into(),
                document: format!("doc-{d:03}"),
            },
        );
    }
    run(&mut engine, document(&mut rng, 3, 2));
    engine
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
fn results(engine: &Engine) -> Value {
    let per_query: Vec<Value> = queries()
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
        .collect();
    json!({ "snapshot_version": codec::SNAPSHOT_VERSION, "queries": per_query })
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn golden_snapshots_of_format_v1_decode_and_answer_the_same() {
    let bless = std::env::var("ARRWDB_BLESS").is_ok_and(|v| v == "1");
    let dir = golden_dir();
    eprintln!("seed {SEED:#x}, files in {}", dir.display());
    for (kind, metric, index) in kinds() {
        index.validate().expect("the index kind is accepted");
        let fresh = build(metric, index);
        let bytes = fresh.snapshot("golden").expect("snapshot");
        let answers = results(&fresh);
        let snap_path = dir.join(format!("{kind}.snap"));
        let json_path = dir.join(format!("{kind}.json"));
        if bless {
            std::fs::create_dir_all(&dir).expect("create golden dir");
            std::fs::write(&snap_path, &bytes).expect("write snapshot");
            let text = serde_json::to_string_pretty(&answers).expect("json") + "\n";
            std::fs::write(&json_path, text).expect("write results");
            eprintln!("{kind}: blessed {} bytes", bytes.len());
            continue;
        }
        let golden = std::fs::read(&snap_path).unwrap_or_else(|e| {
            panic!("{}: {e} (create with ARRWDB_BLESS=1)", snap_path.display())
        });
        let expected: Value = serde_json::from_slice(
            &std::fs::read(&json_path).unwrap_or_else(|e| panic!("{}: {e}", json_path.display())),
        )
        .expect("golden results are JSON");

        // 1. The committed v1 bytes load and answer exactly as committed.
        let mut restored = Engine::new();
        let name = restored
            .restore(&golden)
            .unwrap_or_else(|e| panic!("{kind}: golden snapshot no longer decodes: {e}"));
        assert_eq!(name, "golden");
        assert_eq!(
            u16::from_le_bytes([golden[4], golden[5]]),
            1,
            "{kind}: golden files are format v1"
        );
        assert_eq!(
            results(&restored),
            expected,
            "{kind}: results from the golden snapshot changed"
        );
        assert_eq!(
            answers, expected,
            "{kind}: results of a fresh build changed"
        );

        // 2. Today's encoder still writes v1 byte for byte.
        assert!(
            bytes == golden,
            "{kind}: a fresh snapshot ({} bytes) differs from the golden v1 file ({} bytes): \
             the snapshot format changed; bump codec::SNAPSHOT_VERSION and keep a v1 decoder",
            bytes.len(),
            golden.len()
        );
        assert_eq!(restored, fresh, "{kind}: restored state differs");
        eprintln!("{kind}: {} bytes, results match", golden.len());
    }
    if bless {
        eprintln!("golden files (re)written; run again without ARRWDB_BLESS to check them");
    }
}
