//! `ivf` against exact search on a 20k prefix of pypi-minilm (nlist 128, train_size
//! 5000, 200 queries): recall at the default `nprobe`, the `nprobe` knob, exactness
//! before training, PQ with rescoring, filtered recall, deletes, snapshots and
//! determinism. The full-100k benchmark is `bench_full_dataset` (ignored):
//! `cargo test --release -p arrwdb-core --test ivf -- --ignored --nocapture`.

mod support;

use std::sync::OnceLock;
use std::time::Instant;

use arrwdb_core::index::ivf::IvfIndex;
use arrwdb_core::index::{
    Allowed, Bitset, IndexRead, IndexWrite, Scored, SearchOptions, VectorStore, exact_search,
};
use arrwdb_core::{IndexConfig, IvfParams, Metric};

const N: usize = 20_000;
const QUERIES: usize = 200;
const K: usize = 10;
const SEED: u64 = 0x5eed;
const PQ_M: u32 = 48;

fn params(pq_m: u32) -> IvfParams {
    IvfParams {
        nlist: 128,
        train_size: 5_000,
        pq_m,
        seed: SEED,
        ..IvfParams::default()
    }
}

struct Data {
    base: Vec<Vec<f32>>,
    queries: Vec<Vec<f32>>,
    years: Vec<i64>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| Data {
        base: support::fvecs("base.fvecs", N),
        queries: support::fvecs("queries.fvecs", QUERIES),
        years: support::metadata(N)
            .iter()
            .map(|m| m["year"].as_i64().unwrap_or(0))
            .collect(),
    })
}

struct Built {
    store: VectorStore,
    live: Bitset,
    index: IvfIndex,
}

impl Built {
    fn new(metric: Metric, params: &IvfParams, n: usize) -> Built {
        let mut store = VectorStore::new(support::DIM as u32, metric);
        let mut index = IvfIndex::new(params, &store);
        let mut live = Bitset::default();
        let start = Instant::now();
        for v in &data().base[..n] {
            let slot = store.push(v);
            live.insert(slot);
            index.insert(&store, slot);
        }
        eprintln!(
            "built {metric:?} n={n} pq_m={} in {:.2}s",
            params.pq_m,
            start.elapsed().as_secs_f64()
        );
        Built { store, live, index }
    }

    fn search(&self, index: &IvfIndex, filter: Option<&Bitset>, nprobe: Option<u32>) -> Ranked {
        let allowed = Allowed::new(&self.live, filter);
        let options = SearchOptions {
            k: K,
            ef: None,
            nprobe,
        };
        data()
            .queries
            .iter()
            .map(|q| index.search(&self.store, &self.store.query(q), &allowed, &options))
            .collect()
    }

    fn exact(&self, filter: Option<&Bitset>) -> Ranked {
        let allowed = Allowed::new(&self.live, filter);
        data()
            .queries
            .iter()
            .map(|q| exact_search(&self.store, &self.store.query(q), &allowed, K))
            .collect()
    }
}

type Ranked = Vec<Vec<Scored>>;

/// The 20k dot-product index without PQ and its exact answers, built once.
fn dot() -> &'static (Built, Ranked) {
    static DOT: OnceLock<(Built, Ranked)> = OnceLock::new();
    DOT.get_or_init(|| {
        let built = Built::new(Metric::Dot, &params(0), N);
        let truth = built.exact(None);
        (built, truth)
    })
}

/// The 20k cosine index with PQ and its exact answers, built once.
fn cosine_pq() -> &'static (Built, Ranked) {
    static PQ: OnceLock<(Built, Ranked)> = OnceLock::new();
    PQ.get_or_init(|| {
        let built = Built::new(Metric::Cosine, &params(PQ_M), N);
        let truth = built.exact(None);
        (built, truth)
    })
}

fn slots(ranked: &Ranked) -> Vec<Vec<usize>> {
    ranked
        .iter()
        .map(|hits| hits.iter().map(|h| h.slot as usize).collect())
        .collect()
}

fn recall(found: &Ranked, truth: &Ranked) -> f64 {
    support::recall(&slots(found), &slots(truth), K)
}

/// About `percent`% of `n` slots, chosen by a hash of the slot (uncorrelated with the
/// clusters).
fn random_subset(n: usize, percent: u64) -> Bitset {
    let mut set = Bitset::default();
    for slot in 0..n as u32 {
        let mut z = u64::from(slot).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        if (z ^ (z >> 31)) % 100 < percent {
            set.insert(slot);
        }
    }
    set
}

/// Slots whose metadata `year` satisfies `keep` (correlated with the content).
fn by_year(n: usize, keep: impl Fn(i64) -> bool) -> Bitset {
    let mut set = Bitset::default();
    for (slot, &year) in data().years[..n].iter().enumerate() {
        if keep(year) {
            set.insert(slot as u32);
        }
    }
    set
}

#[test]
fn recall_at_default_nprobe_is_at_least_090() {
    let (built, truth) = dot();
    assert!(built.index.is_trained());
    assert_eq!(built.index.nlist(), 128);
    let nprobe = IvfParams::default().nprobe;
    let r = recall(&built.search(&built.index, None, None), truth);
    eprintln!("seed {SEED:#x}: dot, nlist 128, default nprobe {nprobe}: recall@10 = {r:.4}");
    assert!(r >= 0.90, "recall@10 at nprobe {nprobe} = {r}");
}

#[test]
fn nprobe_trades_recall_for_work() {
    let (built, truth) = dot();
    let mut last = 0.0;
    let mut by_nprobe = Vec::new();
    for nprobe in [1, 4, 16, 32, 128] {
        let r = recall(&built.search(&built.index, None, Some(nprobe)), truth);
        eprintln!("seed {SEED:#x}: nprobe {nprobe:>3}: recall@10 = {r:.4}");
        assert!(
            r >= last,
            "recall fell from {last} to {r} at nprobe {nprobe}"
        );
        last = r;
        by_nprobe.push(r);
    }
    assert!(
        by_nprobe[0] + 0.1 < by_nprobe[3],
        "nprobe 1 vs 32: {by_nprobe:?}"
    );
    // Probing every list is exact.
    assert!(by_nprobe[4] >= 0.999, "nprobe = nlist: {}", by_nprobe[4]);
}

#[test]
fn before_training_results_are_exact() {
    let p = params(PQ_M);
    let mut built = Built::new(Metric::Cosine, &p, 3_000);
    assert!(!built.index.is_trained());
    assert_eq!(built.index.len(), 3_000);
    let filter = random_subset(3_000, 30);
    for filter in [None, Some(&filter)] {
        let found = built.search(&built.index, filter, Some(1));
        let exact = built.exact(filter);
        for (f, e) in found.iter().zip(&exact) {
            let f: Vec<(u32, u32)> = f.iter().map(|s| (s.slot, s.score.to_bits())).collect();
            let e: Vec<(u32, u32)> = e.iter().map(|s| (s.slot, s.score.to_bits())).collect();
            assert_eq!(f, e);
        }
    }
    // The insert that reaches `train_size` trains.
    for v in &data().base[3_000..p.train_size as usize] {
        let slot = built.store.push(v);
        built.live.insert(slot);
        built.index.insert(&built.store, slot);
    }
    assert!(built.index.is_trained() && built.index.has_pq());
    assert_eq!(built.index.len(), p.train_size as usize);
}

#[test]
fn pq_reaches_085_after_rescoring() {
    let (built, truth) = cosine_pq();
    assert!(built.index.has_pq());
    let nprobe = IvfParams::default().nprobe;
    let r = recall(&built.search(&built.index, None, None), truth);
    let per_vector = built.index.structure_bytes() as f64 / N as f64;
    let (plain, _) = dot();
    let plain_per_vector = plain.index.structure_bytes() as f64 / N as f64;
    eprintln!(
        "seed {SEED:#x}: cosine, pq_m {PQ_M}, nprobe {nprobe}: recall@10 = {r:.4}; \
         index bytes/vector {per_vector:.1} with PQ, {plain_per_vector:.1} without \
         (plus {} in the vector store)",
        support::DIM * 4
    );
    assert!(r >= 0.85, "PQ recall@10 = {r}");
}

#[test]
fn l2_metric_with_and_without_pq() {
    for pq_m in [0, PQ_M] {
        let p = IvfParams {
            nlist: 64,
            train_size: 3_000,
            ..params(pq_m)
        };
        let built = Built::new(Metric::L2, &p, 8_000);
        assert_eq!(built.index.has_pq(), pq_m > 0);
        let r = recall(
            &built.search(&built.index, None, Some(16)),
            &built.exact(None),
        );
        eprintln!(
            "seed {SEED:#x}: l2, n 8000, nlist 64, pq_m {pq_m}, nprobe 16: recall@10 = {r:.4}"
        );
        assert!(r >= 0.90, "l2 pq_m {pq_m}: recall@10 = {r}");
    }
}

#[test]
fn pq_needs_a_dimension_multiple() {
    // 384 % 5 != 0: the index runs without PQ rather than failing.
    let built = Built::new(Metric::Dot, &params(5), 5_000);
    assert!(built.index.is_trained() && !built.index.has_pq());
}

#[test]
fn filtered_search_keeps_recall() {
    for (name, (built, _)) in [("dot", dot()), ("cosine+pq", cosine_pq())] {
        let filters = [
            ("random 10%", random_subset(N, 10)),
            ("random 50%", random_subset(N, 50)),
            ("year = 2024", by_year(N, |y| y == 2024)),
            ("year >= 2025", by_year(N, |y| y >= 2025)),
        ];
        for (label, filter) in &filters {
            let found = built.search(&built.index, Some(filter), None);
            for hits in &found {
                assert!(hits.iter().all(|h| filter.contains(h.slot)), "{label}");
                assert_eq!(hits.len(), K, "{label}: fewer than k hits");
            }
            let r = recall(&found, &built.exact(Some(filter)));
            let share = filter.count() as f64 / N as f64;
            eprintln!("seed {SEED:#x}: {name}, {label} ({share:.3}): recall@10 = {r:.4}");
            assert!(r >= 0.95, "{name}, {label}: filtered recall@10 = {r}");
        }
    }
}

#[test]
fn deleted_slots_never_appear_and_lists_do_not_grow() {
    for (name, source) in [("dot", dot()), ("cosine+pq", cosine_pq())] {
        let (built, _) = source;
        let mut index = built.index.clone();
        let mut store = built.store.clone();
        let mut live = built.live.clone();
        // Delete every third slot, and the exact top hit of every query.
        let mut removed = Bitset::default();
        let mut doomed: Vec<u32> = (0..N as u32).step_by(3).collect();
        doomed.extend(built.exact(None).iter().map(|hits| hits[0].slot));
        for &slot in &doomed {
            if live.contains(slot) {
                live.remove(slot);
                removed.insert(slot);
                index.remove(&store, slot);
            }
        }
        assert_eq!(index.len(), live.count(), "{name}");
        // Replace-heavy: re-insert deleted rows as new slots, then delete those again.
        for round in 0..3 {
            let batch: Vec<u32> = (0..2_000u32).map(|i| i * 3 + round).collect();
            let mut fresh = Vec::new();
            for &old in &batch {
                let v = store.vector(old % N as u32).to_vec();
                let slot = store.push(&v);
                live.insert(slot);
                index.insert(&store, slot);
                fresh.push(slot);
            }
            assert_eq!(index.len(), live.count(), "{name}, round {round}");
            for slot in fresh {
                live.remove(slot);
                removed.insert(slot);
                index.remove(&store, slot);
            }
            assert_eq!(index.len(), live.count(), "{name}, round {round}");
        }
        index.check(store.len()).expect("consistent after removes");
        let view = Built {
            store,
            live,
            index: index.clone(),
        };
        let found = view.search(&index, None, None);
        for hits in &found {
            assert!(hits.iter().all(|h| !removed.contains(h.slot)), "{name}");
        }
        let r = recall(&found, &view.exact(None));
        eprintln!("seed {SEED:#x}: {name} after deletes: recall@10 = {r:.4}");
        assert!(r >= 0.85, "{name}: recall after deletes {r}");
    }
}

#[test]
fn snapshot_restores_the_same_index() {
    for (name, source) in [("dot", dot()), ("cosine+pq", cosine_pq())] {
        let (built, _) = source;
        let bytes = postcard::to_allocvec(&built.index).expect("encode");
        let restored: IvfIndex = postcard::from_bytes(&bytes).expect("decode");
        assert!(restored == built.index, "{name}");
        restored.check(built.store.len()).expect("check");
        assert!(
            restored.check(built.store.len() - 1).is_err(),
            "{name}: check must catch a slot beyond the store"
        );
        let a = slots(&built.search(&built.index, None, Some(8)));
        let b = slots(&built.search(&restored, None, Some(8)));
        assert_eq!(a, b, "{name}");
        eprintln!("{name}: snapshot of the index is {} bytes", bytes.len());
    }
}

#[test]
fn the_same_inserts_build_the_same_structure() {
    let small = |pq_m| IvfParams {
        nlist: 64,
        train_size: 2_000,
        ..params(pq_m)
    };
    for p in [small(0), small(PQ_M)] {
        let a = Built::new(Metric::Cosine, &p, 3_000);
        let b = Built::new(Metric::Cosine, &p, 3_000);
        assert!(a.index.is_trained());
        assert!(a.index == b.index, "pq_m {}", p.pq_m);
        let other = Built::new(
            Metric::Cosine,
            &IvfParams {
                seed: SEED + 1,
                ..p
            },
            3_000,
        );
        assert!(a.index != other.index, "the seed must matter");
    }
}

#[test]
fn retrain_refiles_every_live_slot() {
    let (built, truth) = dot();
    let mut index = built.index.clone();
    index.retrain(&built.store, &built.live);
    assert_eq!(index.len(), N);
    index.check(built.store.len()).expect("check");
    let r = recall(&built.search(&index, None, None), truth);
    eprintln!("seed {SEED:#x}: after retrain on {N}: recall@10 = {r:.4}");
    assert!(r >= 0.90, "recall after retrain {r}");
    // Too few live slots: back to exact.
    let mut few = Bitset::default();
    (0..100).for_each(|s| few.insert(s));
    index.retrain(&built.store, &few);
    assert!(!index.is_trained());
    assert_eq!(index.len(), 100);
}

#[test]
fn engine_serves_ivf_with_per_query_nprobe() {
    let n = 10_000;
    let p = IvfParams {
        nlist: 64,
        train_size: 2_000,
        ..params(0)
    };
    let (engine, vectors) = support::load(IndexConfig::Ivf(p), Metric::Cosine, n);
    let mut store = VectorStore::new(support::DIM as u32, Metric::Cosine);
    let mut live = Bitset::default();
    for v in &vectors {
        live.insert(store.push(v));
    }
    let allowed = Allowed::new(&live, None);
    let queries = &data().queries[..50];
    let truth: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| {
            exact_search(&store, &store.query(q), &allowed, K)
                .iter()
                .map(|s| s.slot as usize)
                .collect()
        })
        .collect();
    let run = |nprobe: u32| -> f64 {
        let found: Vec<Vec<usize>> = queries
            .iter()
            .map(|q| {
                let params = serde_json::json!({ "nprobe": nprobe });
                support::search_ids(&engine, support::request(q, K as u32, None, Some(params)))
            })
            .collect();
        support::recall(&found, &truth, K)
    };
    let (low, high) = (run(1), run(64));
    eprintln!("engine, nlist 64: nprobe 1 recall {low:.4}, nprobe 64 recall {high:.4}");
    assert!(high >= 0.999 && low < high, "nprobe 1: {low}, 64: {high}");
}

/// Full 100k with the default parameters (one-off; prints training time, QPS, recall
/// against the published ground truth, bytes per vector).
#[test]
#[ignore = "benchmark on the full dataset"]
fn bench_full_dataset() {
    let base = support::fvecs("base.fvecs", 100_000);
    let queries = support::fvecs("queries.fvecs", 1_000);
    let truth = support::ivecs_groundtruth(1_000);
    for pq_m in [0, 48, 96] {
        let p = IvfParams {
            pq_m,
            ..IvfParams::default()
        };
        let mut store = VectorStore::new(support::DIM as u32, Metric::Dot);
        let mut index = IvfIndex::new(&p, &store);
        let mut live = Bitset::default();
        let start = Instant::now();
        let mut train_secs = 0.0;
        for v in &base {
            let slot = store.push(v);
            live.insert(slot);
            let t = Instant::now();
            index.insert(&store, slot);
            if slot + 1 == p.train_size {
                train_secs = t.elapsed().as_secs_f64();
            }
        }
        let build = start.elapsed().as_secs_f64();
        eprintln!(
            "pq_m {pq_m}: {params:?}\n  build {build:.2}s (training insert {train_secs:.2}s), \
             index bytes/vector {:.1}",
            index.structure_bytes() as f64 / base.len() as f64,
            params = p
        );
        let allowed = Allowed::new(&live, None);
        for nprobe in [8, 16, 32, 64] {
            let options = SearchOptions {
                k: K,
                ef: None,
                nprobe: Some(nprobe),
            };
            let t = Instant::now();
            let found: Vec<Vec<usize>> = queries
                .iter()
                .map(|q| {
                    index
                        .search(&store, &store.query(q), &allowed, &options)
                        .iter()
                        .map(|s| s.slot as usize)
                        .collect()
                })
                .collect();
            let secs = t.elapsed().as_secs_f64();
            let r = support::recall(&found, &truth, K);
            eprintln!(
                "  nprobe {nprobe:>2}: recall@10 {r:.4}, {:.0} QPS ({:.3} ms/query)",
                queries.len() as f64 / secs,
                secs * 1e3 / queries.len() as f64
            );
        }
    }
    // The exact scan, for the ratio.
    let mut store = VectorStore::new(support::DIM as u32, Metric::Dot);
    let mut live = Bitset::default();
    for v in &base {
        live.insert(store.push(v));
    }
    let allowed = Allowed::new(&live, None);
    let t = Instant::now();
    for q in queries.iter().take(200) {
        exact_search(&store, &store.query(q), &allowed, K);
    }
    let secs = t.elapsed().as_secs_f64();
    eprintln!("exact scan: {:.0} QPS", 200.0 / secs);
}
