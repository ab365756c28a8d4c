//! Test-only crate; the tests live in `it/`. Shared here: what the integration tests,
//! the benchmark and the load check all read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// The first `limit` rows of a texmex `.fvecs`/`.ivecs` file (per row: a little-endian
/// `u32` count, then that many 4-byte values), as raw 32-bit words.
///
/// # Panics
/// If the file cannot be opened or a row is cut short.
pub fn read_vecs(path: &Path, limit: usize) -> Vec<Vec<u32>> {
    let mut reader =
        BufReader::new(File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    let mut out = Vec::new();
    let mut header = [0u8; 4];
    while out.len() < limit && reader.read_exact(&mut header).is_ok() {
        let d = u32::from_le_bytes(header) as usize;
        let mut raw = vec![0u8; d * 4];
        reader.read_exact(&mut raw).expect("truncated vectors file");
        out.push(
            raw.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    out
}

/// The first `limit` vectors of an `.fvecs` file.
///
/// # Panics
/// As [`read_vecs`].
pub fn fvecs(path: &Path, limit: usize) -> Vec<Vec<f32>> {
    read_vecs(path, limit)
        .into_iter()
        .map(|v| v.into_iter().map(f32::from_bits).collect())
        .collect()
}

/// Upserts one single-chunk document per row of `rows` into `library` (document and
/// chunk id = the row number, text from `texts` when given), through the engine's
/// write path as a runtime would: one prepared and applied record per document.
///
/// # Panics
/// If the engine refuses a write.
pub fn upsert_rows(
    engine: &mut arrwdb_core::Engine,
    library: &str,
    rows: &[Vec<f32>],
    texts: Option<&[String]>,
) {
    use arrwdb_core::{ChunkData, Command, DocumentData, Metadata};
    for (i, v) in rows.iter().enumerate() {
        let document = DocumentData {
            id: i.to_string(),
            metadata: Metadata::default(),
            chunks: vec![ChunkData {
                id: i.to_string(),
                text: texts.and_then(|t| t.get(i)).cloned().unwrap_or_default(),
                embedding: v.clone(),
                metadata: Metadata::default(),
            }],
        };
        let record = engine
            .prepare(Command::UpsertDocument {
                library: library.into(),
                document,
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
    }
}

/// Runs one search on `library`; returns the row numbers of the hits (see
/// [`upsert_rows`]).
///
/// # Panics
/// If the search fails or a hit's chunk id is not a row number.
pub fn search_rows(
    engine: &arrwdb_core::Engine,
    library: &str,
    request: &arrwdb_core::api::SearchRequest,
) -> Vec<u32> {
    use arrwdb_core::{Query, QueryResponse};
    let QueryResponse::Search(response) = engine
        .query(&Query::Search {
            library: library.into(),
            request: request.clone(),
        })
        .expect("search")
    else {
        panic!("unexpected response");
    };
    response
        .hits
        .into_iter()
        .map(|h| h.chunk_id.parse::<u32>().expect("numeric id"))
        .collect()
}

/// A fresh engine holding an empty `library` (inner product, default text settings), as
/// the benchmarks build it; the engine's error when it refuses the configuration.
pub fn engine_with_library(
    library: &str,
    dimension: u32,
    index: arrwdb_core::IndexConfig,
    quantization: arrwdb_core::api::QuantizationConfig,
) -> Result<arrwdb_core::Engine, arrwdb_core::Error> {
    let mut engine = arrwdb_core::Engine::new();
    let config = arrwdb_core::LibraryConfig {
        name: library.into(),
        dimension,
        metric: arrwdb_core::Metric::Dot,
        index,
        quantization,
        text: arrwdb_core::api::TextConfig::default(),
        embedding: None,
    };
    let record = engine.prepare(arrwdb_core::Command::CreateLibrary(config))?;
    engine.apply(&record)?;
    Ok(engine)
}
