//! A warm HNSW query allocates a constant few buffers, whatever its `ef`: its visited
//! set, heaps and candidate lists are reused from earlier queries (`hnsw::Pool`), so
//! the allocator is out of the search loop. Counted with a counting global allocator,
//! which is why this test is a binary of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use arrwdb_core::api::{QuantizationConfig, QuantizationParams};
use arrwdb_core::index::{
    Allowed, AnyIndex, Bitset, IndexRead, IndexWrite, SearchOptions, VectorStore,
};
use arrwdb_core::{HnswParams, IndexConfig, Metric};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only
// counts. (`unsafe` is denied in the crates; a test binary's allocator needs it.)
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn vectors(n: usize, dim: usize, mut state: u64) -> Vec<Vec<f32>> {
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    state = splitmix64(state);
                    (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
                })
                .collect()
        })
        .collect()
}

/// Allocations of each of `queries` searched at `ef` (after one warm-up pass), and the
/// results, which must not depend on the scratch being reused.
fn allocations(
    index: &AnyIndex,
    store: &VectorStore,
    allowed: &Allowed<'_>,
    queries: &[Vec<f32>],
    ef: u32,
) -> (Vec<usize>, Vec<Vec<u32>>) {
    let options = SearchOptions {
        k: 10,
        ef: Some(ef),
        nprobe: None,
    };
    let run = |q: &Vec<f32>| {
        let query = store.query(q);
        index
            .search(store, &query, allowed, &options)
            .iter()
            .map(|s| s.slot)
            .collect::<Vec<u32>>()
    };
    let cold: Vec<Vec<u32>> = queries.iter().map(run).collect();
    let mut counts = Vec::with_capacity(queries.len());
    let mut warm = Vec::with_capacity(queries.len());
    for q in queries {
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let hits = run(q);
        counts.push(ALLOCATIONS.load(Ordering::Relaxed) - before - 1); // `run`'s own collect
        warm.push(hits);
    }
    assert_eq!(cold, warm, "reused scratch changed a result (ef {ef})");
    (counts, warm)
}

#[test]
fn warm_queries_allocate_a_constant_few_buffers() {
    let (n, dim) = (4_000, 32);
    let rows = vectors(n, dim, 7);
    let queries = vectors(50, dim, 99);
    let sq8 = QuantizationConfig::Sq8(QuantizationParams { oversample: 4 });
    // Per query: the result; with SQ8 also the query's integer weights and the rescored
    // top-k (its heap becomes the result).
    for (quantization, most) in [(QuantizationConfig::None, 1), (sq8, 3)] {
        let mut store = VectorStore::with_quantization(dim as u32, Metric::Dot, quantization);
        let mut live = Bitset::default();
        for row in &rows {
            live.insert(store.push(row));
        }
        let mut index = AnyIndex::new(&IndexConfig::Hnsw(HnswParams::default()), &store);
        for slot in 0..n as u32 {
            index.insert(&store, slot);
        }
        let allowed = Allowed::new(&live, None);
        for ef in [16, 400] {
            let (counts, hits) = allocations(&index, &store, &allowed, &queries, ef);
            assert!(hits.iter().all(|h| h.len() == 10));
            let worst = counts.iter().copied().max().unwrap_or(0);
            assert!(
                worst <= most,
                "{quantization:?} ef {ef}: a warm query made {worst} allocations (at most {most})"
            );
        }
    }
}
