//! `HnswIndex::build`, the batched HNSW build of full rebuilds: the same bytes for any
//! thread count (the property every runtime relies on: wasm builds on one thread),
//! with SQ8 codes and with gaps; the same recall as one-at-a-time inserts on the
//! pypi-minilm 20k prefix; and an engine library rebuilt through `RebuildIndex` and
//! `Optimize` that still answers.

#![allow(clippy::print_stdout)] // the tests report measured recall and times

mod support;

use support::random_store;

use std::time::Instant;

use arrwdb_core::api::{QuantizationConfig, QuantizationParams};
use arrwdb_core::index::hnsw::{BUILD_SERIAL_BELOW, HnswIndex};
use arrwdb_core::index::{
    self, Allowed, Bitset, IndexRead, IndexWrite, SearchOptions, VectorStore,
};
use arrwdb_core::{Command, Engine, HnswParams, IndexConfig, Metric, Outcome};

const K: usize = 10;

fn sq8() -> QuantizationConfig {
    QuantizationConfig::Sq8(QuantizationParams { oversample: 4 })
}

fn bytes(index: &HnswIndex) -> Vec<u8> {
    postcard::to_allocvec(index).expect("serialize")
}

/// One-at-a-time inserts of `slots`, as the log replays them.
fn inserted(params: &HnswParams, store: &VectorStore, slots: &[u32]) -> HnswIndex {
    let mut index = HnswIndex::new(params, store);
    for &slot in slots {
        index.insert(store, slot);
    }
    index
}

/// Builds `slots` on 1, 2 and 3 threads and checks the bytes are the same; returns the
/// graph.
fn same_for_every_thread_count(
    params: &HnswParams,
    store: &VectorStore,
    slots: &[u32],
) -> HnswIndex {
    let one = HnswIndex::build(params, store, slots, 1);
    one.check(store.len()).expect("a consistent graph");
    let reference = bytes(&one);
    for threads in [2, 3] {
        let built = HnswIndex::build(params, store, slots, threads);
        assert!(
            bytes(&built) == reference,
            "{threads} threads built other bytes than 1 ({} slots)",
            slots.len()
        );
    }
    one
}

/// Recall@`K` of `index` on `queries` against exact search over `live`.
fn recall(
    index: &impl IndexRead,
    store: &VectorStore,
    live: &Bitset,
    queries: &[Vec<f32>],
    ef: Option<u32>,
) -> f64 {
    let allowed = Allowed::new(live, None);
    let options = SearchOptions {
        k: K,
        ef,
        nprobe: None,
    };
    let (mut found, mut truth) = (Vec::new(), Vec::new());
    for q in queries {
        let query = store.query(q);
        let hits = index.search(store, &query, &allowed, &options);
        found.push(hits.iter().map(|s| s.slot as usize).collect());
        let exact = index::exact_search(store, &query, &allowed, K);
        truth.push(exact.iter().map(|s| s.slot as usize).collect());
    }
    support::recall(&found, &truth, K)
}

#[test]
fn same_bytes_for_any_thread_count() {
    let n = 5_000;
    let params = HnswParams::default();
    let slots: Vec<u32> = (0..n as u32).collect();
    for (metric, quantization) in [
        (Metric::Cosine, QuantizationConfig::None),
        (Metric::L2, QuantizationConfig::None),
        (Metric::Dot, sq8()),
        (Metric::L2, sq8()),
    ] {
        let store = random_store(metric, n + 100, 24, 7, quantization);
        let started = Instant::now();
        let built = same_for_every_thread_count(&params, &store, &slots);
        println!(
            "{metric:?} {quantization:?}: 3 builds of {n} in {:.2?}",
            started.elapsed()
        );
        assert_eq!(built.len(), n);
        let mut live = Bitset::default();
        slots.iter().for_each(|&s| live.insert(s));
        let queries: Vec<Vec<f32>> = (n..n + 100)
            .map(|q| store.vector(q as u32).to_vec())
            .collect();
        let batched = recall(&built, &store, &live, &queries, None);
        let serial = recall(
            &inserted(&params, &store, &slots),
            &store,
            &live,
            &queries,
            None,
        );
        println!("  recall@{K}: batched {batched:.4}, one at a time {serial:.4}");
        assert!(batched >= serial - 0.02, "{batched} vs {serial}");
    }
}

#[test]
fn gaps_and_odd_params_build_the_same_bytes() {
    let n = 4_000;
    let store = random_store(Metric::Cosine, n, 16, 11, QuantizationConfig::None);
    // A leading gap, every seventh slot missing, and a trailing gap; small `m` and `ef`
    // so that pruning and deleted-first dropping happen often.
    let slots: Vec<u32> = (40..n as u32 - 50).filter(|s| s % 7 != 3).collect();
    let params = HnswParams {
        m: 4,
        ef_construction: 12,
        ef_search: 32,
        seed: 99,
    };
    let built = same_for_every_thread_count(&params, &store, &slots);
    assert_eq!(built.len(), *slots.last().expect("slots") as usize + 1);
    same_for_every_thread_count(&HnswParams::default(), &store, &slots);
    // A sparse live set: batches follow the linked nodes, not the slots.
    let sparse: Vec<u32> = (0..n as u32).step_by(3).collect();
    same_for_every_thread_count(&HnswParams::default(), &store, &sparse);
    // Unsorted and repeated slots are skipped as `insert` skips them.
    let mut messy = slots.clone();
    messy.insert(2_000, 5);
    messy.insert(3_000, messy[2_999]);
    messy.push(n as u32 + 10);
    assert!(
        bytes(&HnswIndex::build(&params, &store, &messy, 2)) == bytes(&built),
        "skipped slots changed the graph"
    );
    // Nothing, one slot, only gaps before it.
    let empty = HnswIndex::build(&params, &store, &[], 2);
    assert!(empty.is_empty());
    let one = HnswIndex::build(&params, &store, &[3_000], 2);
    assert_eq!(one.len(), 3_001);
    one.check(store.len()).expect("consistent");
}

#[test]
fn small_graphs_match_one_at_a_time_inserts() {
    let store = random_store(Metric::L2, 3_000, 16, 3, QuantizationConfig::None);
    let params = HnswParams::default();
    let slots: Vec<u32> = (0..BUILD_SERIAL_BELOW as u32)
        .filter(|s| s % 5 != 0)
        .collect();
    assert!(
        bytes(&HnswIndex::build(&params, &store, &slots, 2))
            == bytes(&inserted(&params, &store, &slots)),
        "below BUILD_SERIAL_BELOW the build is the log's inserts"
    );
    // Above, the graph differs (unless every search is exact, as at the default `ef`
    // on these few low-dimensional vectors), further inserts extend it as usual, and
    // deletes still route.
    let params = HnswParams {
        ef_construction: 16,
        ..params
    };
    let slots: Vec<u32> = (0..2_500).collect();
    let mut built = HnswIndex::build(&params, &store, &slots, 2);
    assert!(bytes(&built) != bytes(&inserted(&params, &store, &slots)));
    for slot in 2_500..2_900 {
        built.insert(&store, slot);
    }
    let mut live = Bitset::default();
    (0..2_900).for_each(|s| live.insert(s));
    for slot in (0..2_900).step_by(3) {
        built.remove(&store, slot);
        live.remove(slot);
    }
    built.check(store.len()).expect("consistent");
    let queries: Vec<Vec<f32>> = (2_900..3_000).map(|q| store.vector(q).to_vec()).collect();
    let r = recall(&built, &store, &live, &queries, None);
    println!("built 2500, inserted 400, deleted a third: recall@{K} = {r:.4}");
    assert!(r >= 0.95, "recall {r}");
}

/// The batched build against one-at-a-time inserts on the pypi-minilm 20k prefix
/// (cosine, default params), at the default `ef` and at `ef` 16.
#[test]
fn recall_matches_one_at_a_time_inserts_on_pypi_minilm() {
    let n = 20_000;
    let mut store = VectorStore::new(support::DIM as u32, Metric::Cosine);
    for v in support::fvecs("base.fvecs", n) {
        store.push(&v);
    }
    let queries = support::fvecs("queries.fvecs", 200);
    let params = HnswParams::default();
    let slots: Vec<u32> = (0..n as u32).collect();
    let started = Instant::now();
    let serial = inserted(&params, &store, &slots);
    let serial_time = started.elapsed();
    let started = Instant::now();
    let batched = HnswIndex::build(&params, &store, &slots, 2);
    let batched_time = started.elapsed();
    let mut live = Bitset::default();
    slots.iter().for_each(|&s| live.insert(s));
    println!(
        "pypi-minilm {n}: one at a time {serial_time:.2?}, batched (2 threads) {batched_time:.2?}"
    );
    for ef in [None, Some(16)] {
        let a = recall(&serial, &store, &live, &queries, ef);
        let b = recall(&batched, &store, &live, &queries, ef);
        println!("  ef {ef:?}: recall@{K} one at a time {a:.4}, batched {b:.4}");
        assert!(b >= a - 0.01, "ef {ef:?}: batched {b} vs one at a time {a}");
    }
}

/// Hits of `vector` as document numbers.
fn engine_search(engine: &Engine, vector: &[f32]) -> Vec<usize> {
    support::search_ids(engine, support::request(vector, K as u32, None, None))
}

fn apply(engine: &mut Engine, command: Command) -> Outcome {
    let record = engine.prepare(command).expect("prepare");
    engine.apply(&record).expect("apply")
}

/// A library rebuilt through the engine (`RebuildIndex` from flat to HNSW, then
/// `Optimize` after deletes) answers as the incrementally built one does, never
/// returns a deleted document, and replays to the same snapshot bytes.
#[test]
fn engine_rebuild_and_optimize_answer_as_before() {
    let n = 3_000;
    let hnsw = IndexConfig::Hnsw(HnswParams::default());
    let (mut engine, _) = support::load(hnsw.clone(), Metric::Cosine, n);
    let (mut flat, _) = support::load(IndexConfig::Flat, Metric::Cosine, n);
    let queries = support::fvecs("queries.fvecs", 50);
    let truth: Vec<Vec<usize>> = queries.iter().map(|q| engine_search(&flat, q)).collect();
    let before: Vec<Vec<usize>> = queries.iter().map(|q| engine_search(&engine, q)).collect();
    let r_before = support::recall(&before, &truth, K);

    // Flat -> HNSW through RebuildIndex: a full build.
    apply(
        &mut flat,
        Command::RebuildIndex {
            library: "lib".into(),
            index: hnsw.clone(),
        },
    );
    // The engine built on every core here; one thread (as in wasm) builds the same
    // graph, found verbatim inside the library's state.
    let mut store = VectorStore::new(support::DIM as u32, Metric::Cosine);
    for v in support::fvecs("base.fvecs", n) {
        store.push(&v);
    }
    let slots: Vec<u32> = (0..n as u32).collect();
    let one_thread = bytes(&HnswIndex::build(&HnswParams::default(), &store, &slots, 1));
    let state = postcard::to_allocvec(flat.library("lib").expect("lib")).expect("serialize");
    assert!(
        state.windows(one_thread.len()).any(|w| w == one_thread),
        "the engine's rebuilt graph differs from a one-thread build"
    );
    let rebuilt: Vec<Vec<usize>> = queries.iter().map(|q| engine_search(&flat, q)).collect();
    let r_rebuilt = support::recall(&rebuilt, &truth, K);
    println!("engine {n}: recall@{K} inserted {r_before:.4}, rebuilt {r_rebuilt:.4}");
    assert!(r_rebuilt >= r_before - 0.02, "{r_rebuilt} vs {r_before}");

    // Deletes, then Optimize (renumbers and rebuilds) on both.
    for e in [&mut engine, &mut flat] {
        for d in (0..n).step_by(4) {
            apply(
                e,
                Command::DeleteDocument {
                    library: "lib".into(),
                    document: format!("d{d}"),
                },
            );
        }
        apply(
            e,
            Command::Optimize {
                library: "lib".into(),
            },
        );
    }
    let (mut exact, _) = support::load(IndexConfig::Flat, Metric::Cosine, n);
    for d in (0..n).step_by(4) {
        apply(
            &mut exact,
            Command::DeleteDocument {
                library: "lib".into(),
                document: format!("d{d}"),
            },
        );
    }
    let truth: Vec<Vec<usize>> = queries.iter().map(|q| engine_search(&exact, q)).collect();
    let optimized: Vec<Vec<usize>> = queries.iter().map(|q| engine_search(&engine, q)).collect();
    assert!(
        optimized.iter().flatten().all(|d| d % 4 != 0),
        "a deleted document came back"
    );
    // Both libraries now hold the same live vectors and config, so the same graph
    // (their logs, hence their sequence numbers, differ).
    for (q, hits) in queries.iter().zip(&optimized) {
        assert_eq!(
            &engine_search(&flat, q),
            hits,
            "optimize depends on history"
        );
    }
    let r = support::recall(&optimized, &truth, K);
    println!("engine after deletes + optimize: recall@{K} {r:.4}");
    assert!(r >= 0.95, "recall {r}");
    // A snapshot restores to the same state and answers.
    let bytes = engine.snapshot("lib").expect("snapshot");
    let mut restored = Engine::new();
    restored.restore(&bytes).expect("restore");
    assert_eq!(restored, engine);
    for (q, hits) in queries.iter().zip(&optimized) {
        assert_eq!(&engine_search(&restored, q), hits);
    }
}

/// A build told to stop gives up within a few nodes, on any thread count: after the
/// serial start, inside a batch's parallel phase, and in its serial phase.
#[test]
fn a_stopped_build_gives_up_within_a_few_nodes() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let store = random_store(Metric::L2, 3_000, 16, 7, QuantizationConfig::None);
    let slots: Vec<u32> = (0..3_000).collect();
    let params = HnswParams::default();
    // Every node asks at least once, so a count of asks is a clock in nodes.
    let asks = AtomicUsize::new(0);
    let full = HnswIndex::build_until(&params, &store, &slots, 2, &|| {
        asks.fetch_add(1, Ordering::Relaxed);
        false
    })
    .expect("a build never stopped finishes");
    let total = asks.load(Ordering::Relaxed);
    assert!(
        total >= slots.len(),
        "asked {total} times for {} nodes",
        slots.len()
    );
    assert!(bytes(&full) == bytes(&HnswIndex::build(&params, &store, &slots, 1)));
    for threads in [1, 2] {
        for at in [10, BUILD_SERIAL_BELOW + 5, total / 2, total - 3] {
            let asked = AtomicUsize::new(0);
            let built = HnswIndex::build_until(&params, &store, &slots, threads, &|| {
                asked.fetch_add(1, Ordering::Relaxed) >= at
            });
            assert!(
                built.is_none(),
                "{threads} threads, stop at ask {at}: finished"
            );
            let asked = asked.load(Ordering::Relaxed);
            // Each thread asks once more after the stop at most, plus one claim each.
            assert!(
                asked <= at + 4 * threads,
                "{threads} threads kept asking after the stop at {at}: {asked}"
            );
        }
    }
}

/// `Engine::apply_within` stopped mid-rebuild answers `None` and leaves the library
/// exactly as it was (same snapshot bytes), for `RebuildIndex` and `Optimize`; the
/// same record applied afterwards succeeds.
#[test]
fn a_stopped_engine_rebuild_changes_nothing() {
    use arrwdb_core::Budget;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let n = 2_000;
    let (mut engine, _) = support::load(IndexConfig::Flat, Metric::Cosine, n);
    for d in (0..n).step_by(3) {
        apply(
            &mut engine,
            Command::DeleteDocument {
                library: "lib".into(),
                document: format!("d{d}"),
            },
        );
    }
    let commands = [
        Command::RebuildIndex {
            library: "lib".into(),
            index: IndexConfig::Hnsw(HnswParams::default()),
        },
        Command::Optimize {
            library: "lib".into(),
        },
    ];
    for command in commands {
        let record = engine.prepare(command).expect("prepare");
        let before = engine.snapshot("lib").expect("snapshot");
        let asked = AtomicUsize::new(0);
        let stopped = engine
            .apply_within(
                &record,
                Budget {
                    threads: 2,
                    stop: &|| asked.fetch_add(1, Ordering::Relaxed) >= 1_200,
                },
            )
            .expect("a stop is not an error");
        assert!(stopped.is_none(), "{:?} finished", record.op);
        assert!(
            engine.snapshot("lib").expect("snapshot") == before,
            "a stopped {:?} changed the library",
            record.op
        );
        engine
            .apply(&record)
            .expect("the same record applies afterwards");
        assert_eq!(engine.library("lib").expect("lib").seq(), record.seq);
    }
}
