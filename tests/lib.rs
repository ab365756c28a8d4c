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
