//! Helpers shared by the fuzz targets and the seed-corpus generator: a small engine
//! with one library per index kind, deterministic vectors, the checksum fix-up that
//! lets the fuzzer reach the postcard payload of framed objects, and the "use it"
//! step run on anything that decoded.

use arrwdb_core::api::SearchRequest;
use arrwdb_core::{
    ChunkData, Command, DocumentData, Engine, HnswParams, IndexConfig, IvfParams, KdTreeParams,
    LibraryConfig, LshParams, Metadata, Metric, Query,
};
use serde_json::json;

/// Dimension of the libraries in [`small_engine`].
pub const DIM: u32 = 4;

/// Documents in each library of [`small_engine`] (IVF trains after 8).
pub const DOCS: usize = 12;

/// One library per index kind (and every metric), small parameters so that every
/// code path (IVF trained, KD-tree split, HNSW layers) is reached with a few vectors.
pub fn configs() -> Vec<LibraryConfig> {
    let config = |name: &str, metric, index| LibraryConfig {
        name: name.into(),
        dimension: DIM,
        metric,
        index,
        quantization: arrwdb_core::api::QuantizationConfig::None,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    vec![
        config("flat", Metric::Cosine, IndexConfig::Flat),
        config(
            "hnsw",
            Metric::L2,
            IndexConfig::Hnsw(HnswParams {
                m: 2,
                ef_construction: 8,
                ef_search: 4,
                seed: 7,
            }),
        ),
        config(
            "ivf",
            Metric::Dot,
            IndexConfig::Ivf(IvfParams {
                nlist: 2,
                nprobe: 1,
                train_size: 8,
                pq_m: 2,
                seed: 7,
            }),
        ),
        config(
            "kdtree",
            Metric::L2,
            IndexConfig::KdTree(KdTreeParams { leaf_size: 2 }),
        ),
        config(
            "lsh",
            Metric::Cosine,
            IndexConfig::Lsh(LshParams {
                num_tables: 2,
                hash_size: 3,
                seed: 7,
            }),
        ),
    ]
}

/// A deterministic, finite, non-zero vector of `dim` values for `seed`.
pub fn vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(1);
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2001) as f32 / 1000.0 - 1.0 + 0.0005
        })
        .collect()
}

/// Document `i` of a library: two chunks with metadata the seed filters use.
pub fn document(i: usize, dim: usize) -> DocumentData {
    DocumentData {
        id: format!("doc{i}"),
        metadata: Metadata(json!({"year": 2005 + i, "author": {"name": format!("a{}", i % 3)}})),
        chunks: (0..2)
            .map(|c| ChunkData {
                id: format!("doc{i}#{c}"),
                text: format!("chunk {c} of document {i}"),
                embedding: vector((i * 2 + c) as u64, dim),
                metadata: Metadata(json!({"tags": ["t", format!("t{}", i % 4)], "rank": c})),
            })
            .collect(),
    }
}

/// Runs `command` through prepare and apply; errors are fine, panics are not.
pub fn run(engine: &mut Engine, command: Command) -> bool {
    match engine.prepare(command) {
        Ok(record) => engine.apply(&record).is_ok(),
        Err(_) => false,
    }
}

/// [`configs`] created and filled with [`DOCS`] documents, one deleted and one replaced.
pub fn small_engine() -> Engine {
    let mut engine = Engine::new();
    for config in configs() {
        let name = config.name.clone();
        run(&mut engine, Command::CreateLibrary(config));
        for i in 0..DOCS {
            run(
                &mut engine,
                Command::UpsertDocument {
                    library: name.clone(),
                    document: document(i, DIM as usize),
                },
            );
        }
        run(
            &mut engine,
            Command::DeleteDocument {
                library: name.clone(),
                document: "doc3".into(),
            },
        );
        run(
            &mut engine,
            Command::UpsertDocument {
                library: name,
                document: document(5, DIM as usize),
            },
        );
    }
    engine
}

/// `bytes` with its last four bytes replaced by the CRC-32 of the rest (the framing
/// of snapshots and WAL segments), so mutations of the payload are not all rejected
/// by the checksum. `None` if too short to be framed.
pub fn with_valid_crc(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 10 {
        return None;
    }
    let (body, _) = bytes.split_at(bytes.len() - 4);
    let mut out = body.to_vec();
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    Some(out)
}

/// `bytes` with every checksum of a v2 WAL segment made valid (each record's, where
/// its length fits, then the footer's), so the fuzzer reaches the record decoder.
pub fn with_valid_wal_crcs(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 14 || bytes.get(..6) != Some(b"ARWL\x02\x00".as_slice()) {
        return with_valid_crc(bytes);
    }
    let mut out = bytes.to_vec();
    let end = out.len() - 4;
    let mut at = 10;
    while at + 8 <= end {
        let len = u32::from_le_bytes(out[at..at + 4].try_into().ok()?) as usize;
        let start = at + 8;
        let Some(stop) = start.checked_add(len).filter(|&s| s <= end) else {
            break;
        };
        let crc = crc32fast::hash(&out[start..stop]).to_le_bytes();
        out[at + 4..at + 8].copy_from_slice(&crc);
        at = stop;
    }
    with_valid_crc(&out)
}

/// Uses a library that came from outside bytes: searches (plain, filtered, with every
/// include), replaces and deletes a document, and checks that its snapshot restores
/// and re-encodes to the same bytes. Errors are fine; panics are the bug.
pub fn exercise(engine: &mut Engine, library: &str) {
    let Some(state) = engine.library(library) else {
        return;
    };
    let dim = state.config().dimension as usize;
    let search = |engine: &Engine, filter: Option<serde_json::Value>, k: u32| {
        let mut request = SearchRequest::vector(vector(99, dim), k);
        request.filter = filter.map(Metadata);
        request.include = Some(vec![
            arrwdb_core::api::Include::Text,
            arrwdb_core::api::Include::Metadata,
            arrwdb_core::api::Include::Vector,
        ]);
        let _ = engine.query(&Query::Search {
            library: library.into(),
            request,
        });
    };
    search(engine, None, 5);
    search(engine, Some(json!({"year": {"$gte": 2010}})), 3);
    search(engine, Some(json!({"tags": "t1"})), 100);
    // Keyword and hybrid searches walk the text index a decoded snapshot or log built.
    for body in [
        json!({"text": "chunk doc text", "k": 5}),
        json!({"text": "chunk", "vector": vector(98, dim), "k": 4,
               "fusion": {"method": "linear", "normalization": "z_score"},
               "rerank": [{"type": "position"}, {"type": "length"}, {"type": "mmr"}]}),
    ] {
        if let Ok(request) = serde_json::from_value::<SearchRequest>(body) {
            let _ = engine.query(&Query::Search {
                library: library.into(),
                request,
            });
        }
    }
    let _ = engine.query(&Query::GetLibrary {
        library: library.into(),
    });
    let _ = engine.query(&Query::GetDocument {
        library: library.into(),
        document: "doc1".into(),
    });
    for i in [1, 100] {
        run(
            engine,
            Command::UpsertDocument {
                library: library.into(),
                document: document(i, dim),
            },
        );
    }
    run(
        engine,
        Command::DeleteDocument {
            library: library.into(),
            document: "doc2".into(),
        },
    );
    search(engine, None, 10);
    let Ok(bytes) = engine.snapshot(library) else {
        return;
    };
    let mut fresh = Engine::new();
    let restored = fresh.restore(&bytes);
    assert!(
        restored.is_ok(),
        "a snapshot the engine wrote does not restore: {restored:?}"
    );
    let again = fresh.snapshot(library);
    assert!(
        again.as_ref() == Ok(&bytes),
        "a restored snapshot re-encodes differently"
    );
}
