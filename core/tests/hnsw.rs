//! `hnsw` against exact search on the pypi-minilm dataset (cosine, a 20k prefix):
//! recall at default params, the `ef` knob, filtered recall, deletes, snapshots,
//! determinism, and robustness against corrupted bytes. The full-100k benchmark is an
//! ignored test: `cargo test --release -p arrwdb-core --test hnsw -- --ignored --nocapture`.

#![allow(clippy::print_stdout)] // the tests report their seeds and measured recall

mod support;

use support::{random_store, splitmix64};

use std::sync::OnceLock;
use std::time::Instant;

use arrwdb_core::api::{QuantizationConfig, QuantizationParams};
use arrwdb_core::index::{
    self, Allowed, AnyIndex, Bitset, IndexRead, IndexWrite, SearchOptions, VectorStore,
};
use arrwdb_core::{Command, Engine, HnswParams, IndexConfig, Metric, Query, QueryResponse};

/// Base rows indexed by the shared fixture.
const N: usize = 20_000;
/// Extra rows stored (not indexed) so the delete test can insert after deleting.
const EXTRA: usize = 4_000;
const QUERIES: usize = 200;
const K: usize = 10;

struct Fixture {
    store: VectorStore,
    years: Vec<Option<i64>>,
    queries: Vec<Vec<f32>>,
    /// The first `N` slots.
    all: Bitset,
    index: AnyIndex,
}

fn build(params: &HnswParams, store: &VectorStore, n: usize) -> AnyIndex {
    let mut index = AnyIndex::new(&IndexConfig::Hnsw(*params), store);
    for slot in 0..n as u32 {
        index.insert(store, slot);
    }
    index
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let vectors = support::fvecs("base.fvecs", N + EXTRA);
        let years = support::metadata(N + EXTRA)
            .iter()
            .map(|m| m["year"].as_i64())
            .collect();
        let mut store = VectorStore::new(support::DIM as u32, Metric::Cosine);
        for v in &vectors {
            store.push(v);
        }
        let params = HnswParams::default();
        let started = Instant::now();
        let index = build(&params, &store, N);
        println!(
            "hnsw: built {N} nodes in {:.2?} (params {params:?})",
            started.elapsed()
        );
        let mut all = Bitset::default();
        (0..N as u32).for_each(|s| all.insert(s));
        Fixture {
            store,
            years,
            queries: support::fvecs("queries.fvecs", QUERIES),
            all,
            index,
        }
    })
}

/// Slots found by `index` and by exact search for every query.
fn run(
    f: &Fixture,
    index: &AnyIndex,
    live: &Bitset,
    filter: Option<&Bitset>,
    ef: Option<u32>,
) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let allowed = Allowed::new(live, filter);
    let options = SearchOptions {
        k: K,
        ef,
        nprobe: None,
    };
    let mut found = Vec::new();
    let mut truth = Vec::new();
    for q in &f.queries {
        let query = f.store.query(q);
        let hits = index.search(&f.store, &query, &allowed, &options);
        for pair in hits.windows(2) {
            assert!(pair[0].rank_cmp(&pair[1]).is_lt(), "hits out of order");
        }
        for h in &hits {
            assert!(allowed.contains(h.slot), "slot {} is not allowed", h.slot);
        }
        let exact = index::exact_search(&f.store, &query, &allowed, K);
        assert_eq!(hits.len(), exact.len(), "fewer hits than allowed slots");
        found.push(hits.iter().map(|s| s.slot as usize).collect());
        truth.push(exact.iter().map(|s| s.slot as usize).collect());
    }
    (found, truth)
}

fn recall(f: &Fixture, index: &AnyIndex, live: &Bitset, filter: Option<&Bitset>) -> f64 {
    let (found, truth) = run(f, index, live, filter, None);
    support::recall(&found, &truth, K)
}

#[test]
fn recall_at_default_params() {
    let f = fixture();
    let r = recall(f, &f.index, &f.all, None);
    println!("hnsw recall@{K} over {N} (default params, seed 0x5eed) = {r:.4}");
    assert!(r >= 0.95, "recall@{K} = {r}");
}

#[test]
fn ef_trades_recall() {
    let f = fixture();
    let at = |ef| {
        let (found, truth) = run(f, &f.index, &f.all, None, Some(ef));
        support::recall(&found, &truth, K)
    };
    let (low, high) = (at(16), at(256));
    println!("hnsw recall@{K}: ef 16 = {low:.4}, ef 256 = {high:.4}");
    assert!(
        low < high,
        "ef 16 ({low}) should recall less than ef 256 ({high})"
    );
    assert!(high >= 0.98, "recall at ef 256 = {high}");
}

#[test]
fn filtered_recall_at_10_and_50_percent() {
    let f = fixture();
    for (name, keep) in [
        ("year <= 2018", (|y| y <= 2018) as fn(i64) -> bool),
        ("year == 2024 or 2022", |y| y == 2024 || y == 2022),
        ("year >= 2025", |y| y >= 2025),
    ] {
        let mut filter = Bitset::default();
        for slot in 0..N {
            if f.years[slot].is_some_and(keep) {
                filter.insert(slot as u32);
            }
        }
        let fraction = filter.count() as f64 / N as f64;
        let r = recall(f, &f.index, &f.all, Some(&filter));
        println!(
            "hnsw filtered recall@{K} ({name}, {:.1}% of rows) = {r:.4}",
            fraction * 100.0
        );
        assert!(r >= 0.95, "filtered recall@{K} ({name}) = {r}");
    }
}

#[test]
fn deletes_never_return_and_keep_recall() {
    let f = fixture();
    let mut index = f.index.clone();
    let mut live = f.all.clone();
    let seed = 7u64;
    for slot in 0..N as u32 {
        if splitmix64(seed ^ u64::from(slot)).is_multiple_of(5) {
            index.remove(&f.store, slot);
            live.remove(slot);
        }
    }
    println!("hnsw: deleted {} of {N} (seed {seed})", N - live.count());
    // `run` asserts that only live slots come back.
    let r = recall(f, &index, &live, None);
    println!("hnsw recall@{K} after deleting 20% = {r:.4}");
    assert!(r >= 0.95, "recall after deletes = {r}");

    // Inserting after deletes links new nodes into the graph as well.
    for slot in N as u32..(N + EXTRA) as u32 {
        index.insert(&f.store, slot);
        live.insert(slot);
    }
    index
        .check(f.store.len())
        .expect("consistent after deletes and inserts");
    let r = recall(f, &index, &live, None);
    println!("hnsw recall@{K} after deleting 20% then inserting {EXTRA} = {r:.4}");
    assert!(r >= 0.95, "recall after deletes and inserts = {r}");
}

#[test]
fn snapshot_round_trip_is_identical() {
    let f = fixture();
    let bytes = postcard::to_allocvec(&f.index).expect("encode");
    println!(
        "hnsw: {} bytes serialized for {N} nodes ({:.1} per vector, graph only)",
        bytes.len(),
        bytes.len() as f64 / N as f64
    );
    let restored: AnyIndex = postcard::from_bytes(&bytes).expect("decode");
    restored.check(N).expect("check");
    assert_eq!(restored, f.index);
    let (a, _) = run(f, &f.index, &f.all, None, None);
    let (b, _) = run(f, &restored, &f.all, None, None);
    assert_eq!(a, b, "same results after restore");
    assert!(
        restored.check(N - 1).is_err(),
        "a node beyond the slots is refused"
    );
}

#[test]
fn building_twice_gives_the_same_graph() {
    let f = fixture();
    let n = 3_000;
    let params = HnswParams::default();
    let a = build(&params, &f.store, n);
    let b = build(&params, &f.store, n);
    assert_eq!(a, b);
    assert_eq!(
        postcard::to_allocvec(&a).expect("encode"),
        postcard::to_allocvec(&b).expect("encode")
    );
    let other = HnswParams { seed: 1, ..params };
    assert_ne!(a, build(&other, &f.store, n), "the seed changes the levels");
}

#[test]
fn corrupted_bytes_never_panic() {
    let f = fixture();
    let n = 500;
    let index = build(&HnswParams::default(), &f.store, n);
    let bytes = postcard::to_allocvec(&index).expect("encode");
    let mut live = Bitset::default();
    (0..n as u32).for_each(|s| live.insert(s));
    let allowed = Allowed::new(&live, None);
    let options = SearchOptions {
        k: K,
        ef: None,
        nprobe: None,
    };
    let query = f.store.query(&f.queries[0]);
    let (mut decoded, mut accepted) = (0, 0);
    for i in 0..400u64 {
        let mut bad = bytes.clone();
        let at = (splitmix64(i) % bad.len() as u64) as usize;
        bad[at] ^= 1 << (i % 8);
        let Ok(mut index) = postcard::from_bytes::<AnyIndex>(&bad) else {
            continue;
        };
        decoded += 1;
        if index.check(n).is_ok() {
            accepted += 1;
            let _ = index.search(&f.store, &query, &allowed, &options);
            index.insert(&f.store, n as u32);
            index.remove(&f.store, 3);
        }
    }
    println!("hnsw: 400 bit flips, {decoded} decoded, {accepted} passed check");
}

/// Random vectors for the other metrics, with `quantization`'s codes.

#[test]
fn l2_and_dot_recall_on_random_vectors() {
    let (n, dim, seed) = (3_000, 16, 42);
    let sq8 = QuantizationConfig::Sq8(QuantizationParams { oversample: 4 });
    for quantization in [QuantizationConfig::None, sq8] {
        for metric in [Metric::L2, Metric::Dot] {
            let store = random_store(metric, n + 100, dim, seed, quantization);
            let index = build(&HnswParams::default(), &store, n);
            let mut live = Bitset::default();
            (0..n as u32).for_each(|s| live.insert(s));
            let allowed = Allowed::new(&live, None);
            let options = SearchOptions {
                k: K,
                ef: None,
                nprobe: None,
            };
            let (mut found, mut truth) = (Vec::new(), Vec::new());
            for q in n..n + 100 {
                let query = store.query(store.vector(q as u32));
                let hits = index.search(&store, &query, &allowed, &options);
                found.push(hits.iter().map(|s| s.slot as usize).collect());
                // Exact scores of the full vectors, even when the walk used codes.
                for h in &hits {
                    assert_eq!(h.score.to_bits(), store.score(&query, h.slot).to_bits());
                }
                let exact = index::exact_search(&store, &query, &allowed, K);
                truth.push(exact.iter().map(|s| s.slot as usize).collect());
            }
            let r = support::recall(&found, &truth, K);
            println!(
                "hnsw {metric:?} {quantization:?} recall@{K} on {n} random {dim}-d vectors (seed {seed}) = {r:.4}"
            );
            assert!(r >= 0.95, "{metric:?} {quantization:?} recall = {r}");
        }
    }
}

/// With SQ8 codes the graph is built and walked on the codes and the hits rescored with
/// full vectors: exact scores, best first, recall against the unquantized exact search,
/// and the same graph when built twice.
#[test]
fn sq8_store_walks_codes_and_rescores() {
    let f = fixture();
    let sq8 = QuantizationConfig::Sq8(QuantizationParams { oversample: 4 });
    let mut store = VectorStore::with_quantization(support::DIM as u32, Metric::Cosine, sq8);
    for slot in 0..N as u32 {
        store.push(f.store.vector(slot));
    }
    assert!(store.codes().is_active());
    let started = Instant::now();
    let index = build(&HnswParams::default(), &store, N);
    println!("hnsw+sq8: built {N} nodes in {:.2?}", started.elapsed());
    let allowed = Allowed::new(&f.all, None);
    let options = SearchOptions {
        k: K,
        ef: None,
        nprobe: None,
    };
    let (mut found, mut truth) = (Vec::new(), Vec::new());
    for q in &f.queries {
        let query = store.query(q);
        let hits = index.search(&store, &query, &allowed, &options);
        for pair in hits.windows(2) {
            assert!(pair[0].rank_cmp(&pair[1]).is_lt(), "hits out of order");
        }
        for h in &hits {
            assert_eq!(h.score.to_bits(), f.store.score(&query, h.slot).to_bits());
        }
        found.push(hits.iter().map(|s| s.slot as usize).collect());
        let exact = index::exact_search(&f.store, &query, &allowed, K);
        truth.push(exact.iter().map(|s| s.slot as usize).collect());
    }
    let r = support::recall(&found, &truth, K);
    println!("hnsw+sq8 recall@{K} over {N} (default params) = {r:.4}");
    assert!(r >= 0.95, "recall@{K} = {r}");
    let small = 3_000;
    assert_eq!(
        build(&HnswParams::default(), &store, small),
        build(&HnswParams::default(), &store, small)
    );
}

/// Hits of `vector` as document numbers.
fn engine_search(engine: &Engine, vector: &[f32]) -> Vec<usize> {
    support::search_ids(engine, support::request(vector, K as u32, None, None))
}

#[test]
fn engine_snapshot_restore_and_deletes() {
    let config = IndexConfig::Hnsw(HnswParams::default());
    let (mut engine, _) = support::load(config, Metric::Cosine, 2_000);
    let queries = support::fvecs("queries.fvecs", 20);
    for d in (0..2_000).step_by(5) {
        let record = engine
            .prepare(Command::DeleteDocument {
                library: "lib".into(),
                document: format!("d{d}"),
            })
            .expect("prepare delete");
        engine.apply(&record).expect("apply delete");
    }
    let bytes = engine.snapshot("lib").expect("snapshot");
    let mut restored = Engine::new();
    assert_eq!(restored.restore(&bytes).expect("restore"), "lib");
    assert_eq!(restored, engine, "snapshot round trip");
    for q in &queries {
        let hits = engine_search(&engine, q);
        assert_eq!(hits.len(), K);
        assert!(
            hits.iter().all(|d| d % 5 != 0),
            "a deleted document came back"
        );
        assert_eq!(hits, engine_search(&restored, q), "same hits after restore");
    }
    let query = Query::Search {
        library: "lib".into(),
        request: support::request(
            &queries[0],
            K as u32,
            None,
            Some(serde_json::json!({"ef": 16})),
        ),
    };
    assert!(matches!(
        engine.query(&query).expect("search with ef"),
        QueryResponse::Search(_)
    ));
}

/// The full dataset against the published ground truth: build time, QPS and recall at
/// several `ef`. Not run by default.
#[test]
#[ignore]
fn bench_full_dataset() {
    let n = 100_000;
    let vectors = support::fvecs("base.fvecs", n);
    let mut store = VectorStore::new(support::DIM as u32, Metric::Cosine);
    for v in &vectors {
        store.push(v);
    }
    let params = HnswParams::default();
    let started = Instant::now();
    let index = build(&params, &store, n);
    let build_time = started.elapsed();
    let bytes = postcard::to_allocvec(&index).expect("encode").len();
    println!(
        "hnsw 100k: build {build_time:.2?} ({params:?}), graph {bytes} bytes serialized ({:.1} per vector)",
        bytes as f64 / n as f64
    );
    let queries = support::fvecs("queries.fvecs", 1000);
    let truth = support::ivecs_groundtruth(1000);
    let mut live = Bitset::default();
    (0..n as u32).for_each(|s| live.insert(s));
    let allowed = Allowed::new(&live, None);
    for ef in [16u32, 32, 64, 128, 256] {
        let options = SearchOptions {
            k: K,
            ef: Some(ef),
            nprobe: None,
        };
        let started = Instant::now();
        let found: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| {
                let query = store.query(q);
                index
                    .search(&store, &query, &allowed, &options)
                    .iter()
                    .map(|s| s.slot as usize)
                    .collect()
            })
            .collect();
        let took = started.elapsed();
        let r = support::recall(&found, &truth, K);
        println!(
            "hnsw 100k ef {ef}: recall@{K} {r:.4}, {:.0} QPS ({:.1} µs/query, 1 thread)",
            queries.len() as f64 / took.as_secs_f64(),
            took.as_micros() as f64 / queries.len() as f64
        );
    }
}
