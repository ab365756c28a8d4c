//! Fusion of the vector and keyword lists at its edges, through `rank`'s public
//! functions: option bounds (each accepted just inside, refused just outside), one
//! weight zero, ranks and breakdowns of single-retriever candidates, normalization of
//! constant and one-element lists, and the floor a chunk missing from one list gets.
//! These kill the mutants of `rank.rs` the worked examples miss (docs/quality.md).

use arrwdb_core::index::Scored;
use arrwdb_core::rank::{Candidate, Fusion, Normalization, fuse, normalize, single};
use serde_json::json;

fn scored(list: &[(u32, f32)]) -> Vec<Scored> {
    list.iter()
        .map(|&(slot, score)| Scored { score, slot })
        .collect()
}

fn slots(list: &[Candidate]) -> Vec<u32> {
    list.iter().map(|c| c.slot).collect()
}

fn fusion(value: serde_json::Value) -> Fusion {
    Fusion::parse(&value).unwrap_or_else(|e| panic!("{value} should parse: {e}"))
}

fn close(a: f32, b: f64) -> bool {
    (f64::from(a) - b).abs() < 1e-6
}

#[test]
fn options_are_bounded_inclusively() {
    for ok in [
        json!({"method": "rrf", "k": 0}),
        json!({"method": "rrf", "k": 1_000_000}),
        json!({"method": "rrf", "weights": {"vector": 1_000_000, "keyword": 0}}),
        json!({"method": "rrf", "weights": {"vector": 0}}),
        json!({"method": "linear", "weights": {"keyword": 0}}),
    ] {
        fusion(ok);
    }
    for bad in [
        json!({"method": "rrf", "k": 1_000_001}),
        json!({"method": "rrf", "k": -0.5}),
        json!({"method": "rrf", "weights": {"vector": 1_000_001}}),
        json!({"method": "rrf", "weights": {"keyword": -1}}),
        json!({"method": "linear", "weights": {"vector": 0, "keyword": 0}}),
    ] {
        let e = Fusion::parse(&bad).expect_err("out of range");
        assert!(e.to_string().starts_with("fusion: "), "{bad}: {e}");
    }
}

#[test]
fn rrf_uses_k_and_each_weight() {
    let vector = scored(&[(1, 0.9), (2, 0.8)]);
    let keyword = scored(&[(2, 3.0), (3, 1.0)]);
    let fused = fuse(&vector, &keyword, &fusion(json!({"method": "rrf", "k": 0}))).expect("fuse");
    // k = 0: 1: 1/1; 2: 1/2 + 1/1; 3: 1/2.
    let by_slot = |s: u32| fused.iter().find(|c| c.slot == s).map(|c| c.score);
    assert_eq!(slots(&fused), [2, 1, 3]);
    assert_eq!(by_slot(2), Some(1.5));
    assert_eq!(by_slot(1), Some(1.0));
    assert_eq!(by_slot(3), Some(0.5));
    assert!(fused.iter().all(|c| c.fused == Some(c.score)));

    // Only the keyword list counts when the vector weight is 0 (and the other way).
    let keyword_only = fusion(json!({"method": "rrf", "weights": {"vector": 0, "keyword": 2}}));
    let fused = fuse(&vector, &keyword, &keyword_only).expect("fuse");
    assert_eq!(slots(&fused), [2, 3, 1]);
    assert!(close(fused[0].score, 2.0 / 61.0));
    assert_eq!(fused[2].score, 0.0);
    let vector_only = fusion(json!({"method": "rrf", "weights": {"keyword": 0}}));
    let fused = fuse(&vector, &keyword, &vector_only).expect("fuse");
    assert_eq!(slots(&fused), [1, 2, 3]);
    assert!(close(fused[1].score, 1.0 / 62.0));
}

#[test]
fn linear_fusion_weighs_each_list_and_floors_missing_entries() {
    let vector = scored(&[(1, 1.0), (2, 0.0)]);
    let keyword = scored(&[(3, 9.0), (1, 5.0), (4, 1.0)]);
    // min-max: vector 1: 1, 2: 0; keyword 3: 1, 1: 0.5, 4: 0. Missing: 0.
    let fused = fuse(
        &vector,
        &keyword,
        &fusion(json!({"method": "linear", "weights": {"vector": 0.25, "keyword": 2}})),
    )
    .expect("fuse");
    let by_slot = |s: u32| fused.iter().find(|c| c.slot == s).map(|c| c.score);
    assert_eq!(by_slot(1), Some(1.25));
    assert_eq!(by_slot(2), Some(0.0));
    assert_eq!(by_slot(3), Some(2.0));
    assert_eq!(by_slot(4), Some(0.0));
    assert_eq!(slots(&fused), [3, 1, 2, 4]);

    // z-score with an empty keyword list: nothing is missing from a list with no
    // values, so the vector scores alone decide (and nothing is NaN).
    let fused = fuse(
        &vector,
        &[],
        &fusion(json!({"method": "linear", "normalization": "z_score"})),
    )
    .expect("fuse");
    assert_eq!(slots(&fused), [1, 2]);
    assert_eq!(fused[0].score, 0.5);
    assert_eq!(fused[1].score, -0.5);
    assert!(fused.iter().all(|c| c.keyword.is_none()));
}

#[test]
fn fused_candidates_keep_each_lists_score_and_rank() {
    let vector = scored(&[(5, 0.9), (6, 0.7), (7, 0.5)]);
    let keyword = scored(&[(7, 4.0), (8, 2.0)]);
    let fused = fuse(&vector, &keyword, &Fusion::default()).expect("fuse");
    let get = |s: u32| fused.iter().find(|c| c.slot == s).copied();
    let seven = get(7).expect("7");
    assert_eq!(seven.vector, Some((0.5, 3)));
    assert_eq!(seven.keyword, Some((4.0, 1)));
    assert_eq!(get(8).and_then(|c| c.keyword), Some((2.0, 2)));
    assert_eq!(get(8).and_then(|c| c.vector), None);
    assert_eq!(get(6).and_then(|c| c.vector), Some((0.7, 2)));
}

#[test]
fn single_lists_keep_their_scores_ranks_and_side() {
    let list = scored(&[(9, 3.0), (4, 2.0), (1, 1.0)]);
    let vector = single(&list, false);
    let keyword = single(&list, true);
    for (i, (v, k)) in vector.iter().zip(&keyword).enumerate() {
        let rank = i as u32 + 1;
        assert_eq!(v.slot, list[i].slot);
        assert_eq!(v.score, list[i].score);
        assert_eq!(v.vector, Some((list[i].score, rank)));
        assert_eq!(v.keyword, None);
        assert_eq!(k.keyword, Some((list[i].score, rank)));
        assert_eq!(k.vector, None);
        assert_eq!(v.fused, None);
    }
}

#[test]
fn normalization_of_small_and_constant_lists() {
    assert!(normalize(&[], Normalization::MinMax).is_empty());
    assert!(normalize(&[], Normalization::ZScore).is_empty());
    assert_eq!(normalize(&[7.0], Normalization::MinMax), [1.0]);
    assert_eq!(normalize(&[2.0, 2.0, 2.0], Normalization::ZScore), [0.0; 3]);
    // Not sorted: min and max are found anywhere in the list.
    assert_eq!(
        normalize(&[1.0, 3.0, 2.0], Normalization::MinMax),
        [0.0, 1.0, 0.5]
    );
    // z-score: [1, 3] has mean 2 and population standard deviation 1; [0, 0, 6] has
    // mean 2 and standard deviation sqrt(8).
    assert_eq!(normalize(&[1.0, 3.0], Normalization::ZScore), [-1.0, 1.0]);
    let z = normalize(&[0.0, 0.0, 6.0], Normalization::ZScore);
    let expected = [
        -std::f64::consts::FRAC_1_SQRT_2,
        -std::f64::consts::FRAC_1_SQRT_2,
        std::f64::consts::SQRT_2,
    ];
    for (got, want) in z.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "{z:?}");
    }
    assert_eq!(z.len(), 3);
}
