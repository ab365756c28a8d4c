//! `kdtree` answers exactly (same ids, scores and order as exact search) for every
//! metric, with filters and after deletes; `lsh` reaches recall@10 ≥ 0.80 on the
//! dataset, also filtered and after deletes; both survive snapshots and replay
//! identically. The `#[ignore]`d `benchmark_*` tests print QPS against flat:
//! `cargo test --release -p arrwdb-core --test kdtree_lsh -- --ignored --nocapture`.

mod support;

use std::time::Instant;

use arrwdb_core::index::{
    Allowed, AnyIndex, Bitset, IndexRead, IndexWrite, Scored, SearchOptions, VectorStore,
    exact_search,
};
use arrwdb_core::{Command, Engine, IndexConfig, KdTreeParams, LshParams, Metric};

/// Small deterministic generator (xorshift64*), so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Clustered points with exact duplicates and coarse grid values (ties everywhere).
fn synthetic(rng: &mut Rng, n: usize, dim: usize) -> Vec<Vec<f32>> {
    let centers: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..dim).map(|_| rng.next_f32() * 4.0).collect())
        .collect();
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(n);
    for i in 0..n {
        let mut v: Vec<f32> = match i % 5 {
            0 if i > 0 => out[rng.below(i)].clone(),
            1 => (0..dim)
                .map(|_| (rng.next_f32() * 4.0).round() / 2.0)
                .collect(),
            _ => {
                let c = &centers[rng.below(centers.len())];
                c.iter().map(|x| x + rng.next_f32() * 0.3).collect()
            }
        };
        if v.iter().all(|x| *x == 0.0) {
            v[0] = 1.0;
        }
        out.push(v);
    }
    out
}

struct Fixture {
    store: VectorStore,
    index: AnyIndex,
    live: Bitset,
}

impl Fixture {
    fn new(config: &IndexConfig, metric: Metric, vectors: &[Vec<f32>]) -> Self {
        let dim = vectors[0].len();
        let mut store = VectorStore::new(dim as u32, metric);
        let mut index = AnyIndex::new(config, &store);
        let mut live = Bitset::default();
        for v in vectors {
            let slot = store.push(v);
            live.insert(slot);
            index.insert(&store, slot);
        }
        index.check(store.len()).expect("consistent index");
        Fixture { store, index, live }
    }

    fn remove(&mut self, slot: u32) {
        self.live.remove(slot);
        self.index.remove(&self.store, slot);
    }

    fn search(&self, q: &[f32], k: usize, filter: Option<&Bitset>) -> Vec<Scored> {
        let query = self.store.query(q);
        let allowed = Allowed::new(&self.live, filter);
        let options = SearchOptions {
            k,
            ef: None,
            nprobe: None,
        };
        self.index.search(&self.store, &query, &allowed, &options)
    }

    fn exact(&self, q: &[f32], k: usize, filter: Option<&Bitset>) -> Vec<Scored> {
        let query = self.store.query(q);
        exact_search(&self.store, &query, &Allowed::new(&self.live, filter), k)
    }

    /// The live slots passing `keep`.
    fn filter(&self, keep: impl Fn(u32) -> bool) -> Bitset {
        let mut set = Bitset::default();
        for slot in self.live.iter().filter(|&s| keep(s)) {
            set.insert(slot);
        }
        set
    }
}

fn bits(found: &[Scored]) -> Vec<(u32, u32)> {
    found.iter().map(|s| (s.slot, s.score.to_bits())).collect()
}

/// A pseudo-random half of the slots, uncorrelated with slot order or geometry.
fn half(slot: u32) -> bool {
    (slot.wrapping_mul(0x9E37_79B9) >> 16) & 1 == 0
}

fn kdtree(leaf_size: u32) -> IndexConfig {
    IndexConfig::KdTree(KdTreeParams { leaf_size })
}

/// Asserts that the k-d tree returns exactly what exact search returns, for several
/// k and filters.
fn assert_exact(f: &Fixture, queries: &[Vec<f32>], what: &str) {
    let filters = [None, Some(f.filter(half)), Some(f.filter(|s| s % 20 == 3))];
    for (qi, q) in queries.iter().enumerate() {
        for k in [1, 10, 57] {
            for (fi, filter) in filters.iter().enumerate() {
                let found = f.search(q, k, filter.as_ref());
                let expected = f.exact(q, k, filter.as_ref());
                assert_eq!(
                    bits(&found),
                    bits(&expected),
                    "{what}: query {qi}, k {k}, filter {fi}"
                );
            }
        }
    }
}

#[test]
fn kdtree_equals_exact_search_on_low_dimensional_data() {
    for (seed, metric) in [(11u64, Metric::L2), (12, Metric::Cosine), (13, Metric::Dot)] {
        for dim in [2usize, 3, 8] {
            for sorted in [false, true] {
                let mut rng = Rng(seed * 100 + dim as u64);
                eprintln!("seed {} metric {metric:?} dim {dim} sorted {sorted}", rng.0);
                let mut vectors = synthetic(&mut rng, 3000, dim);
                if sorted {
                    // Adversarial order: the tree must rebalance itself.
                    vectors.sort_by(|a, b| a[0].total_cmp(&b[0]));
                }
                let queries: Vec<Vec<f32>> = synthetic(&mut rng, 15, dim);
                let leaf = if dim == 2 { 4 } else { 16 };
                let mut f = Fixture::new(&kdtree(leaf), metric, &vectors[..2000]);
                assert_exact(&f, &queries, "after inserts");
                // Delete a third, insert the rest: still exact, deleted never returned.
                for slot in (0..2000).step_by(3) {
                    f.remove(slot);
                }
                for v in &vectors[2000..] {
                    let slot = f.store.push(v);
                    f.live.insert(slot);
                    f.index.insert(&f.store, slot);
                }
                f.index
                    .check(f.store.len())
                    .expect("consistent after deletes");
                assert_exact(&f, &queries, "after deletes");
                for q in &queries {
                    assert!(
                        f.search(q, 200, None)
                            .iter()
                            .all(|s| f.live.contains(s.slot))
                    );
                }
            }
        }
    }
}

#[test]
fn kdtree_equals_exact_search_on_the_dataset() {
    let vectors = support::fvecs("base.fvecs", 5000);
    let queries = support::fvecs("queries.fvecs", 10);
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        let mut f = Fixture::new(&kdtree(32), metric, &vectors);
        assert_exact(&f, &queries, "dataset");
        for slot in (0..5000).step_by(4) {
            f.remove(slot);
        }
        f.index
            .check(f.store.len())
            .expect("consistent after deletes");
        assert_exact(&f, &queries, "dataset after deletes");
    }
}

/// Recall@10 of `index` against exact search, and the mean fraction of allowed slots
/// scored per query.
fn lsh_recall(f: &Fixture, queries: &[Vec<f32>], filter: Option<&Bitset>) -> (f64, f64) {
    lsh_recall_probing(f, queries, filter, None)
}

fn lsh_recall_probing(
    f: &Fixture,
    queries: &[Vec<f32>],
    filter: Option<&Bitset>,
    nprobe: Option<u32>,
) -> (f64, f64) {
    let AnyIndex::Lsh(lsh) = &f.index else {
        panic!("not lsh")
    };
    let allowed = Allowed::new(&f.live, filter);
    let options = SearchOptions {
        k: 10,
        ef: None,
        nprobe,
    };
    let (mut found, mut truth, mut scanned) = (Vec::new(), Vec::new(), 0usize);
    for q in queries {
        let query = f.store.query(q);
        let (hits, n) = lsh.search_counting(&f.store, &query, &allowed, &options);
        assert!(hits.len() == 10, "k honoured");
        assert!(
            hits.windows(2)
                .all(|w| w[0].rank_cmp(&w[1]) == std::cmp::Ordering::Less),
            "best first"
        );
        assert!(
            hits.iter().all(|s| allowed.contains(s.slot)),
            "only allowed"
        );
        scanned += n;
        found.push(hits.iter().map(|s| s.slot as usize).collect::<Vec<_>>());
        truth.push(
            exact_search(&f.store, &query, &allowed, 10)
                .iter()
                .map(|s| s.slot as usize)
                .collect::<Vec<_>>(),
        );
    }
    let fraction = scanned as f64 / (queries.len() * allowed.count()) as f64;
    (support::recall(&found, &truth, 10), fraction)
}

#[test]
fn lsh_recall_on_the_dataset_with_deletes_and_filters() {
    let params = LshParams::default();
    eprintln!("lsh params {params:?}");
    let vectors = support::fvecs("base.fvecs", 20_000);
    let queries = support::fvecs("queries.fvecs", 200);
    let mut f = Fixture::new(&IndexConfig::Lsh(params), Metric::Cosine, &vectors);

    let (recall, scanned) = lsh_recall(&f, &queries, None);
    eprintln!("lsh recall@10 {recall:.3}, scanned {:.1}%", scanned * 100.0);
    assert!(recall >= 0.80, "recall@10 = {recall}");
    assert!(scanned < 0.5, "scanned {scanned}");

    // Delete every query's current top 3: they must never come back.
    let mut deleted = Vec::new();
    for q in &queries {
        for s in f.exact(q, 3, None) {
            if f.live.contains(s.slot) {
                f.remove(s.slot);
                deleted.push(s.slot);
            }
        }
    }
    f.index
        .check(f.store.len())
        .expect("consistent after deletes");
    for q in &queries {
        assert!(
            f.search(q, 50, None)
                .iter()
                .all(|s| !deleted.contains(&s.slot))
        );
    }
    let (recall, _) = lsh_recall(&f, &queries, None);
    eprintln!("lsh recall@10 after {} deletes {recall:.3}", deleted.len());
    assert!(recall >= 0.80, "recall@10 after deletes = {recall}");

    let filter = f.filter(half);
    let (recall, scanned) = lsh_recall(&f, &queries, Some(&filter));
    eprintln!(
        "lsh recall@10 at 50% selectivity {recall:.3}, scanned {:.1}%",
        scanned * 100.0
    );
    assert!(recall >= 0.80, "filtered recall@10 = {recall}");

    // A 5% filter still answers k allowed results (widened probes or exact fallback).
    let filter = f.filter(|s| s % 20 == 7);
    let (recall, _) = lsh_recall(&f, &queries[..50], Some(&filter));
    eprintln!("lsh recall@10 at 5% selectivity {recall:.3}");
    assert!(recall >= 0.80, "5% filter recall@10 = {recall}");
}

/// An engine library over the first `n` dataset rows, with a few documents deleted.
fn engine_with(index: IndexConfig, n: usize) -> Engine {
    let (mut engine, _) = support::load(index, Metric::Cosine, n);
    for i in (0..n).step_by(7) {
        let record = engine
            .prepare(Command::DeleteDocument {
                library: "lib".into(),
                document: format!("d{i}"),
            })
            .expect("prepare delete");
        engine.apply(&record).expect("delete");
    }
    engine
}

#[test]
fn snapshots_restore_equal_state_and_builds_are_deterministic() {
    let n = 3000;
    let queries = support::fvecs("queries.fvecs", 20);
    let (flat, _) = support::load(IndexConfig::Flat, Metric::Cosine, n);
    let flat = {
        let mut e = flat;
        for i in (0..n).step_by(7) {
            let record = e
                .prepare(Command::DeleteDocument {
                    library: "lib".into(),
                    document: format!("d{i}"),
                })
                .expect("prepare");
            e.apply(&record).expect("delete");
        }
        e
    };
    for config in [kdtree(32), IndexConfig::Lsh(LshParams::default())] {
        let engine = engine_with(config.clone(), n);
        let bytes = engine.snapshot("lib").expect("snapshot");
        let mut restored = Engine::new();
        restored.restore(&bytes).expect("restore");
        assert_eq!(restored, engine, "{config:?}: snapshot round trip");
        let again = engine_with(config.clone(), n);
        assert_eq!(
            again.snapshot("lib").expect("snapshot"),
            bytes,
            "{config:?}: same inserts and deletes, same bytes"
        );
        for q in &queries {
            let request = || support::request(q, 10, None, None);
            let found = support::search_ids(&restored, request());
            assert_eq!(found, support::search_ids(&engine, request()));
            assert!(found.iter().all(|i| i % 7 != 0), "deleted documents found");
            if matches!(config, IndexConfig::KdTree(_)) {
                assert_eq!(
                    found,
                    support::search_ids(&flat, request()),
                    "kd-tree exact"
                );
            }
        }
    }
}

#[test]
fn damaged_index_bytes_are_rejected_or_harmless() {
    let mut rng = Rng(99);
    eprintln!("seed {}", rng.0);
    let vectors = synthetic(&mut rng, 300, 4);
    for config in [
        kdtree(4),
        IndexConfig::Lsh(LshParams {
            num_tables: 3,
            hash_size: 6,
            seed: 1,
        }),
    ] {
        let f = Fixture::new(&config, Metric::L2, &vectors);
        let bytes = postcard::to_allocvec(&f.index).expect("encode");
        for _ in 0..3000 {
            let mut bad = bytes.clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(bad.len());
                bad[i] ^= 1 << rng.below(8);
            }
            let Ok(index) = postcard::from_bytes::<AnyIndex>(&bad) else {
                continue;
            };
            if index.check(f.store.len()).is_err() {
                continue;
            }
            // Whatever passes the check must search, insert and remove without panicking.
            let mut g = Fixture {
                store: f.store.clone(),
                index,
                live: f.live.clone(),
            };
            let found = g.search(&vectors[0], 5, None);
            assert!(found.iter().all(|s| g.live.contains(s.slot)));
            g.remove(0);
            let slot = g.store.push(&vectors[1]);
            g.index.insert(&g.store, slot);
        }
    }
}

/// Queries per second of `a` and `b`, timed in alternating slices so that other load
/// on the machine hits both alike.
fn qps_pair(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let (mut time, mut count) = ([0.0f64; 2], [0usize; 2]);
    for _ in 0..6 {
        for (i, run) in [&mut a as &mut dyn FnMut(), &mut b].into_iter().enumerate() {
            let start = Instant::now();
            while count[i] == 0 || start.elapsed().as_secs_f64() < 0.2 {
                run();
                count[i] += 1;
            }
            time[i] += start.elapsed().as_secs_f64();
        }
    }
    (count[0] as f64 / time[0], count[1] as f64 / time[1])
}

fn bench(what: &str, f: &Fixture, queries: &[Vec<f32>]) {
    let options = SearchOptions {
        k: 10,
        ef: None,
        nprobe: None,
    };
    let allowed = Allowed::new(&f.live, None);
    let (mut i, mut j) = (0, 0);
    let (index_qps, flat_qps) = qps_pair(
        || {
            let q = f.store.query(&queries[i % queries.len()]);
            i += 1;
            std::hint::black_box(f.index.search(&f.store, &q, &allowed, &options));
        },
        || {
            let q = f.store.query(&queries[j % queries.len()]);
            j += 1;
            std::hint::black_box(exact_search(&f.store, &q, &allowed, 10));
        },
    );
    let scanned: usize = queries
        .iter()
        .map(|q| {
            let q = f.store.query(q);
            match &f.index {
                AnyIndex::KdTree(t) => t.search_counting(&f.store, &q, &allowed, &options).1,
                AnyIndex::Lsh(l) => l.search_counting(&f.store, &q, &allowed, &options).1,
                _ => 0,
            }
        })
        .sum();
    let bytes = postcard::to_allocvec(&f.index).expect("encode").len();
    eprintln!(
        "{what}: {index_qps:.0} QPS vs flat {flat_qps:.0} QPS ({:.2}x), scanned {:.2}% per query, index {:.1} bytes/vector",
        index_qps / flat_qps,
        100.0 * scanned as f64 / (queries.len() * f.store.len()) as f64,
        bytes as f64 / f.store.len() as f64,
    );
}

#[test]
#[ignore = "benchmark"]
fn benchmark_kdtree() {
    let mut rng = Rng(5);
    for dim in [3, 8, 16] {
        let points: Vec<Vec<f32>> = (0..50_000)
            .map(|_| (0..dim).map(|_| rng.next_f32()).collect())
            .collect();
        let queries: Vec<Vec<f32>> = (0..1000)
            .map(|_| (0..dim).map(|_| rng.next_f32()).collect())
            .collect();
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            let start = Instant::now();
            let f = Fixture::new(&kdtree(32), metric, &points);
            let build = start.elapsed().as_secs_f64();
            bench(
                &format!("kd-tree 50k uniform dim {dim} {metric:?} (build {build:.2}s)"),
                &f,
                &queries,
            );
        }
    }
    let base = support::fvecs("base.fvecs", 20_000);
    let queries = support::fvecs("queries.fvecs", 200);
    let start = Instant::now();
    let f = Fixture::new(&kdtree(32), Metric::Cosine, &base);
    eprintln!(
        "kd-tree 20k x 384: build {:.2}s",
        start.elapsed().as_secs_f64()
    );
    bench("kd-tree 384-d cosine 20k", &f, &queries);
}

#[test]
#[ignore = "benchmark"]
fn benchmark_lsh() {
    let n = 100_000;
    let base = support::fvecs("base.fvecs", n);
    let queries = support::fvecs("queries.fvecs", 1000);
    let truth = support::ivecs_groundtruth(1000);
    let params = LshParams::default();
    let start = Instant::now();
    let f = Fixture::new(&IndexConfig::Lsh(params), Metric::Cosine, &base);
    eprintln!(
        "lsh {params:?} 100k: build {:.2}s",
        start.elapsed().as_secs_f64()
    );
    let found: Vec<Vec<usize>> = queries
        .iter()
        .map(|q| {
            f.search(q, 10, None)
                .iter()
                .map(|s| s.slot as usize)
                .collect()
        })
        .collect();
    eprintln!(
        "lsh recall@10 (published ground truth) {:.3}",
        support::recall(&found, &truth, 10)
    );
    bench("lsh 100k cosine", &f, &queries);
}

#[test]
#[ignore = "tuning sweep of tables × bits × probes"]
fn tune_lsh() {
    let vectors = support::fvecs("base.fvecs", 20_000);
    let queries = support::fvecs("queries.fvecs", 200);
    for (num_tables, hash_size) in [
        (16, 12),
        (16, 13),
        (16, 14),
        (12, 12),
        (24, 13),
        (32, 14),
        (16, 10),
    ] {
        let params = LshParams {
            num_tables,
            hash_size,
            seed: 0x5eed,
        };
        let f = Fixture::new(&IndexConfig::Lsh(params), Metric::Cosine, &vectors);
        let filter = f.filter(half);
        for nprobe in [13, 20, 30, 50] {
            let (recall, scanned) = lsh_recall_probing(&f, &queries, None, Some(nprobe));
            let (r2, s2) = lsh_recall_probing(&f, &queries, Some(&filter), Some(nprobe));
            eprintln!(
                "{num_tables}x{hash_size} p{nprobe}: recall {recall:.3} scanned {:.1}% | 50%: {r2:.3} {:.1}%",
                scanned * 100.0,
                s2 * 100.0
            );
        }
    }
}
