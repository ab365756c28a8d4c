//! The filter language: every operator with matching and non-matching examples, paths,
//! chunk/document precedence, array semantics, type mismatches, each error message,
//! property tests that nothing panics, and filtered search through the engine equal to
//! a brute force over the matching documents.

mod support;

use arrwdb_core::filter::{Filter, MAX_DEPTH, MAX_VALUES};
use arrwdb_core::{ErrorKind, IndexConfig, Metric, Query, QueryResponse, kernels};
use proptest::prelude::*;
use serde_json::{Value, json};

fn parse(filter: Value) -> Filter {
    Filter::parse(&filter).unwrap_or_else(|e| panic!("{filter} should parse: {e}"))
}

/// Whether `filter` matches a chunk with metadata `chunk` in a document with none.
fn on(filter: Value, chunk: Value) -> bool {
    parse(filter).matches(&chunk, &Value::Null)
}

/// Whether `filter` matches a chunk with metadata `chunk` in a document with `doc`.
fn on2(filter: Value, chunk: Value, doc: Value) -> bool {
    parse(filter).matches(&chunk, &doc)
}

fn error(filter: Value) -> String {
    let e = Filter::parse(&filter).expect_err("should be refused");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    e.to_string()
}

#[test]
fn eq_bare_value_and_explicit() {
    assert!(on(json!({"a": 1}), json!({"a": 1})));
    assert!(!on(json!({"a": 1}), json!({"a": 2})));
    assert!(on(json!({"a": {"$eq": "x"}}), json!({"a": "x"})));
    assert!(!on(json!({"a": {"$eq": "x"}}), json!({"a": "X"})));
    assert!(on(json!({"a": true}), json!({"a": true})));
    assert!(!on(json!({"a": true}), json!({"a": 1})));
    assert!(on(json!({"a": null}), json!({"a": null})));
    // Missing is not null.
    assert!(!on(json!({"a": null}), json!({"b": 1})));
    assert!(!on(json!({"a": 1}), json!({})));
    assert!(!on(json!({"a": 1}), Value::Null));
    // Strings never equal numbers.
    assert!(!on(json!({"a": "1"}), json!({"a": 1})));
}

#[test]
fn numbers_compare_by_value_across_int_and_float() {
    assert!(on(json!({"a": 1}), json!({"a": 1.0})));
    assert!(on(json!({"a": 1.0}), json!({"a": 1})));
    assert!(on(json!({"a": -0.0}), json!({"a": 0})));
    assert!(!on(json!({"a": 1}), json!({"a": 1.5})));
    assert!(on(json!({"a": {"$gt": 1}}), json!({"a": 1.5})));
    assert!(on(json!({"a": {"$lt": 2.5}}), json!({"a": 2})));
    assert!(on(json!({"a": {"$gte": 2.0}}), json!({"a": 2})));
    assert!(!on(json!({"a": {"$gt": 2.0}}), json!({"a": 2})));
    // u64 beyond i64, and integers beyond 2^53 compared exactly, not through f64.
    assert!(on(json!({"a": u64::MAX}), json!({"a": u64::MAX})));
    assert!(on(json!({"a": {"$lt": u64::MAX}}), json!({"a": -1})));
    assert!(on(
        json!({"a": {"$gt": 9_007_199_254_740_992_i64}}),
        json!({"a": 9_007_199_254_740_993_i64})
    ));
    assert!(!on(
        json!({"a": 9_007_199_254_740_992.0}),
        json!({"a": 9_007_199_254_740_993_i64})
    ));
    assert!(on(json!({"a": {"$lt": 1e300}}), json!({"a": u64::MAX})));
    assert!(on(json!({"a": {"$gt": -1e300}}), json!({"a": i64::MIN})));
    // Inside arrays and objects too.
    assert!(on(
        json!({"a": [1, {"b": 2}]}),
        json!({"a": [1.0, {"b": 2.0}]})
    ));
}

#[test]
fn ne_is_the_negation_of_eq_and_matches_missing() {
    assert!(on(json!({"a": {"$ne": 1}}), json!({"a": 2})));
    assert!(!on(json!({"a": {"$ne": 1}}), json!({"a": 1.0})));
    assert!(on(json!({"a": {"$ne": 1}}), json!({})));
    assert!(on(json!({"a": {"$ne": 1}}), json!({"a": "1"})));
    // An array field "equals" 1 when it holds 1, so $ne excludes it.
    assert!(!on(json!({"a": {"$ne": 1}}), json!({"a": [3, 1]})));
    assert!(on(json!({"a": {"$ne": 1}}), json!({"a": [3, 2]})));
}

#[test]
fn comparisons_on_numbers_and_strings() {
    let chunk = json!({"year": 2024, "name": "beta"});
    for (filter, expected) in [
        (json!({"year": {"$gt": 2023}}), true),
        (json!({"year": {"$gt": 2024}}), false),
        (json!({"year": {"$gte": 2024}}), true),
        (json!({"year": {"$gte": 2025}}), false),
        (json!({"year": {"$lt": 2025}}), true),
        (json!({"year": {"$lt": 2024}}), false),
        (json!({"year": {"$lte": 2024}}), true),
        (json!({"year": {"$lte": 2023}}), false),
        (json!({"year": {"$gte": 2020, "$lt": 2025}}), true),
        (json!({"year": {"$gte": 2020, "$lt": 2024}}), false),
        (json!({"name": {"$gt": "alpha"}}), true),
        (json!({"name": {"$gt": "beta"}}), false),
        (json!({"name": {"$lt": "betb"}}), true),
        (json!({"name": {"$lte": "b"}}), false),
        (json!({"name": {"$gte": "b"}}), true),
    ] {
        assert_eq!(
            parse(filter.clone()).matches(&chunk, &Value::Null),
            expected,
            "{filter}"
        );
    }
    // Byte order: uppercase sorts before lowercase, "é" (0xC3..) after "z".
    assert!(on(json!({"s": {"$lt": "a"}}), json!({"s": "Z"})));
    assert!(on(json!({"s": {"$gt": "z"}}), json!({"s": "é"})));
}

#[test]
fn type_mismatches_are_false_not_errors() {
    assert!(!on(json!({"a": {"$gt": 5}}), json!({"a": "10"})));
    assert!(!on(json!({"a": {"$lt": "z"}}), json!({"a": 1})));
    assert!(!on(json!({"a": {"$gte": 0}}), json!({"a": null})));
    assert!(!on(json!({"a": {"$gte": 0}}), json!({"a": true})));
    assert!(!on(json!({"a": {"$gte": 0}}), json!({"a": {"b": 1}})));
    assert!(!on(json!({"a": {"$lte": 0}}), json!({})));
    assert!(!on(json!({"a": {"$contains": "x"}}), json!({"a": 5})));
    assert!(!on(json!({"a": {"$contains": 1}}), json!({"a": "1"})));
}

#[test]
fn in_and_nin() {
    let f = json!({"tag": {"$in": ["rust", "go", 3]}});
    assert!(on(f.clone(), json!({"tag": "go"})));
    assert!(on(f.clone(), json!({"tag": 3.0})));
    assert!(!on(f.clone(), json!({"tag": "java"})));
    assert!(!on(f.clone(), json!({})));
    assert!(on(f.clone(), json!({"tag": ["java", "rust"]})));
    assert!(!on(f, json!({"tag": ["java", "c"]})));
    assert!(!on(json!({"tag": {"$in": []}}), json!({"tag": "x"})));

    let f = json!({"tag": {"$nin": ["rust", "go"]}});
    assert!(on(f.clone(), json!({"tag": "java"})));
    assert!(!on(f.clone(), json!({"tag": "rust"})));
    assert!(on(f.clone(), json!({})));
    assert!(!on(f.clone(), json!({"tag": ["java", "go"]})));
    assert!(on(f, json!({"tag": ["java", "c"]})));
    assert!(on(json!({"tag": {"$nin": []}}), json!({"tag": "x"})));
}

#[test]
fn exists() {
    assert!(on(json!({"a": {"$exists": true}}), json!({"a": 0})));
    assert!(on(json!({"a": {"$exists": true}}), json!({"a": null})));
    assert!(!on(json!({"a": {"$exists": true}}), json!({"b": 0})));
    assert!(on(json!({"a": {"$exists": false}}), json!({"b": 0})));
    assert!(on(json!({"a": {"$exists": false}}), Value::Null));
    assert!(!on(json!({"a": {"$exists": false}}), json!({"a": false})));
    assert!(on(json!({"a.b": {"$exists": false}}), json!({"a": 1})));
    assert!(on(json!({"t[1]": {"$exists": true}}), json!({"t": [0, 1]})));
    assert!(!on(
        json!({"t[2]": {"$exists": true}}),
        json!({"t": [0, 1]})
    ));
}

#[test]
fn contains_on_strings_and_arrays() {
    assert!(on(
        json!({"s": {"$contains": "ust"}}),
        json!({"s": "rust lang"})
    ));
    assert!(!on(
        json!({"s": {"$contains": "Rust"}}),
        json!({"s": "rust"})
    ));
    assert!(on(
        json!({"t": {"$contains": "b"}}),
        json!({"t": ["a", "b"]})
    ));
    // Element equality, not substring, on arrays.
    assert!(!on(json!({"t": {"$contains": "b"}}), json!({"t": ["ab"]})));
    assert!(on(json!({"t": {"$contains": 2}}), json!({"t": [1, 2.0]})));
    assert!(on(
        json!({"t": {"$contains": {"k": 1}}}),
        json!({"t": [{"k": 1.0}]})
    ));
    assert!(!on(json!({"t": {"$contains": "b"}}), json!({})));
}

#[test]
fn logical_operators() {
    let f = json!({"$and": [{"a": 1}, {"b": {"$gt": 1}}]});
    assert!(on(f.clone(), json!({"a": 1, "b": 2})));
    assert!(!on(f, json!({"a": 1, "b": 1})));

    let f = json!({"$or": [{"a": 1}, {"b": {"$exists": false}}]});
    assert!(on(f.clone(), json!({"a": 1, "b": 0})));
    assert!(on(f.clone(), json!({"a": 2})));
    assert!(!on(f, json!({"a": 2, "b": 0})));

    let f = json!({"$not": {"a": {"$in": [1, 2]}}});
    assert!(on(f.clone(), json!({"a": 3})));
    assert!(on(f.clone(), json!({})));
    assert!(!on(f, json!({"a": 2})));

    // $not on a field, with an operator object or a value.
    assert!(on(json!({"a": {"$not": {"$gt": 5}}}), json!({"a": 5})));
    assert!(!on(json!({"a": {"$not": {"$gt": 5}}}), json!({"a": 6})));
    assert!(on(json!({"a": {"$not": {"$gt": 5}}}), json!({})));
    assert!(!on(json!({"a": {"$not": 5}}), json!({"a": 5})));

    // Keys of one object are ANDed; nested logic.
    let f = json!({
        "year": {"$gte": 2024},
        "author.name": "Ada",
        "$or": [{"tags": {"$in": ["rust"]}}, {"draft": {"$exists": false}}]
    });
    assert!(on(
        f.clone(),
        json!({"year": 2024, "author": {"name": "Ada"}, "draft": true, "tags": ["rust"]})
    ));
    assert!(on(
        f.clone(),
        json!({"year": 2025, "author": {"name": "Ada"}})
    ));
    assert!(!on(
        f.clone(),
        json!({"year": 2025, "author": {"name": "Ada"}, "draft": true})
    ));
    assert!(!on(f, json!({"year": 2023, "author": {"name": "Ada"}})));

    // The empty filter matches everything.
    assert!(on(json!({}), Value::Null));
}

#[test]
fn dotted_and_indexed_paths() {
    let chunk = json!({
        "author": {"name": "Ada", "langs": ["en", "fr"]},
        "tags": ["rust", "db"],
        "a": {"b": [0, 1, {"c": "deep"}]},
        "m": [[1, 2], [3, 4]],
        "x.y": 1
    });
    for (filter, expected) in [
        (json!({"author.name": "Ada"}), true),
        (json!({"author.name": "Bob"}), false),
        (json!({"author.langs[1]": "fr"}), true),
        (json!({"author.langs[1]": "en"}), false),
        (json!({"tags[0]": "rust"}), true),
        (json!({"tags[1]": "rust"}), false),
        (json!({"tags[5]": {"$exists": false}}), true),
        (json!({"a.b[2].c": "deep"}), true),
        (json!({"a.b[1].c": {"$exists": true}}), false),
        (json!({"m[1][0]": 3}), true),
        (json!({"m[0]": [1, 2]}), true),
        // Structural equality on whole objects.
        (
            json!({"author": {"langs": ["en", "fr"], "name": "Ada"}}),
            true,
        ),
        (json!({"author": {"name": "Ada"}}), false),
        // Key segments do not traverse arrays; indexes do not apply to objects.
        (json!({"tags.0": {"$exists": true}}), false),
        (json!({"author[0]": {"$exists": true}}), false),
        // Keys containing a dot cannot be addressed.
        (json!({"x.y": {"$exists": true}}), false),
    ] {
        assert_eq!(
            parse(filter.clone()).matches(&chunk, &Value::Null),
            expected,
            "{filter}"
        );
    }
    // A root that is an array can be indexed directly.
    assert!(on(json!({"[1]": "b"}), json!(["a", "b"])));
}

#[test]
fn chunk_first_then_document_and_explicit_prefixes() {
    let chunk = json!({"lang": "en", "page": 3});
    let doc = json!({"lang": "fr", "author": "Ada", "chunk": {"x": 1}});
    // Chunk wins when it has the field, even if it does not match.
    assert!(on2(json!({"lang": "en"}), chunk.clone(), doc.clone()));
    assert!(!on2(json!({"lang": "fr"}), chunk.clone(), doc.clone()));
    // Falls back to the document when the chunk does not have it.
    assert!(on2(json!({"author": "Ada"}), chunk.clone(), doc.clone()));
    assert!(on2(
        json!({"author": {"$exists": true}}),
        chunk.clone(),
        doc.clone()
    ));
    // A chunk `null` is a value: it shadows the document's.
    assert!(!on2(
        json!({"author": "Ada"}),
        json!({"author": null}),
        doc.clone()
    ));
    // Explicit scopes.
    assert!(on2(
        json!({"document.lang": "fr"}),
        chunk.clone(),
        doc.clone()
    ));
    assert!(!on2(
        json!({"document.lang": "en"}),
        chunk.clone(),
        doc.clone()
    ));
    assert!(on2(json!({"chunk.lang": "en"}), chunk.clone(), doc.clone()));
    assert!(!on2(
        json!({"chunk.author": {"$exists": true}}),
        chunk.clone(),
        doc.clone()
    ));
    assert!(on2(
        json!({"document.page": {"$exists": false}}),
        chunk.clone(),
        doc.clone()
    ));
    // A field literally named `chunk` (bare `chunk` is not a prefix).
    assert!(on2(json!({"chunk": {"x": 1}}), chunk.clone(), doc.clone()));
    assert!(on2(json!({"document.chunk.x": 1}), chunk, doc));
    // Both null.
    assert!(!on2(json!({"lang": "en"}), Value::Null, Value::Null));
}

#[test]
fn array_fields_match_if_any_element_matches() {
    let chunk = json!({"n": [1, 5, 10], "t": ["a", "b"], "nested": [[1, 2]]});
    for (filter, expected) in [
        (json!({"n": 5}), true),
        (json!({"n": 6}), false),
        (json!({"n": [1, 5, 10]}), true),
        (json!({"n": [1, 5]}), false),
        (json!({"n": {"$gt": 9}}), true),
        (json!({"n": {"$gt": 10}}), false),
        (json!({"n": {"$lt": 2}}), true),
        // Operators on one key are ANDed per field, each may use another element.
        (json!({"n": {"$gt": 9, "$lt": 2}}), true),
        (json!({"t": {"$in": ["b", "z"]}}), true),
        (json!({"t": {"$nin": ["b", "z"]}}), false),
        (json!({"t": {"$ne": "a"}}), false),
        (json!({"t": {"$ne": "c"}}), true),
        // Only one level: [[1, 2]] holds [1, 2], not 1.
        (json!({"nested": [1, 2]}), true),
        (json!({"nested": 1}), false),
        (json!({"nested": {"$gte": 1}}), false),
    ] {
        assert_eq!(
            parse(filter.clone()).matches(&chunk, &Value::Null),
            expected,
            "{filter}"
        );
    }
}

#[test]
fn each_error_names_the_problem_and_place() {
    let cases = [
        (
            json!(null),
            "filter: a filter must be a JSON object, got null",
        ),
        (
            json!([1]),
            "filter: a filter must be a JSON object, got an array",
        ),
        (
            json!({"year": {"$regex": "^20"}}),
            "filter: unknown operator `$regex` at `year`",
        ),
        (
            json!({"$nor": []}),
            "filter: unknown operator `$nor` (top-level operators are `$and`, `$or`, `$not`)",
        ),
        (
            json!({"tags": {"$in": "rust"}}),
            "filter: `$in` needs an array at `tags`, got a string",
        ),
        (
            json!({"tags": {"$nin": {"a": 1}}}),
            "filter: `$nin` needs an array at `tags`, got an object",
        ),
        (
            json!({"a": {"$exists": 1}}),
            "filter: `$exists` needs true or false at `a`, got a number",
        ),
        (
            json!({"a": {"$gt": true}}),
            "filter: `$gt` needs a number or a string at `a`, got a boolean",
        ),
        (
            json!({"a": {"$lte": [1]}}),
            "filter: `$lte` needs a number or a string at `a`, got an array",
        ),
        (
            json!({"$and": []}),
            "filter: `$and` needs a non-empty array of filters",
        ),
        (
            json!({"$or": {"a": 1}}),
            "filter: `$or` needs a non-empty array of filters",
        ),
        (
            json!({"$or": [{"a": 1}, 5]}),
            "filter: expected a filter object at `$or[1]`, got a number",
        ),
        (
            json!({"$not": [1]}),
            "filter: `$not` needs a filter object, got an array",
        ),
        (
            json!({"$or": [{"$and": [{"y": {"$in": 3}}]}]}),
            "filter: `$in` needs an array at `$or[0].$and[0].y`, got a number",
        ),
        (
            json!({"$or": [{"$not": {"$and": []}}]}),
            "filter: `$and` needs a non-empty array of filters at `$or[0].$not`",
        ),
        (
            json!({"a": {"$or": [{"$gt": 1}]}}),
            "filter: `$or` is not a field operator at `a` (put it at the top level)",
        ),
        (
            json!({"a": {"$gt": 1, "b": 2}}),
            "filter: an object mixes operators and plain keys at `a` (use `$eq` to compare with an object holding `$` keys)",
        ),
        (
            json!({"a": {"$not": {"$foo": 1}}}),
            "filter: unknown operator `$foo` at `a`",
        ),
        (json!({"a..b": 1}), "filter: bad path `a..b`: empty segment"),
        (json!({".a": 1}), "filter: bad path `.a`: empty segment"),
        (json!({"a.": 1}), "filter: bad path `a.`: empty segment"),
        (json!({"": 1}), "filter: bad path ``: empty segment"),
        (
            json!({"chunk.": 1}),
            "filter: bad path `chunk.`: empty segment",
        ),
        (
            json!({"tags[x]": 1}),
            "filter: bad path `tags[x]`: `x` is not an array index",
        ),
        (
            json!({"tags[-1]": 1}),
            "filter: bad path `tags[-1]`: `-1` is not an array index",
        ),
        (
            json!({"tags[]": 1}),
            "filter: bad path `tags[]`: `` is not an array index",
        ),
        (
            json!({"tags[99999999999999999999999]": 1}),
            "filter: bad path `tags[99999999999999999999999]`: `99999999999999999999999` is not an array index",
        ),
        (
            json!({"tags[0": 1}),
            "filter: bad path `tags[0`: missing `]`",
        ),
        (
            json!({"tags]": 1}),
            "filter: bad path `tags]`: unexpected `]` in `tags]`",
        ),
        (
            json!({"tags[0]x": 1}),
            "filter: bad path `tags[0]x`: unexpected `x` after `]`",
        ),
        (
            json!({"a.[0]": 1}),
            "filter: bad path `a.[0]`: `[0]` needs a key before `[`",
        ),
    ];
    for (filter, message) in cases {
        assert_eq!(error(filter.clone()), message, "{filter}");
    }
}

#[test]
fn depth_and_size_are_limited() {
    // MAX_DEPTH levels parse; one more is refused.
    let mut ok = json!({"a": 1});
    for _ in 0..MAX_DEPTH - 2 {
        ok = json!({"$not": ok});
    }
    let deep = {
        let mut v = json!(1);
        for _ in 0..MAX_DEPTH {
            v = json!({"a": v});
        }
        v
    };
    assert!(Filter::parse(&ok).is_ok());
    assert_eq!(
        error(deep),
        format!("filter: nested deeper than {MAX_DEPTH} levels")
    );
    let mut nots = json!({"a": 1});
    for _ in 0..100 {
        nots = json!({"$not": nots});
    }
    assert_eq!(
        error(nots),
        format!("filter: nested deeper than {MAX_DEPTH} levels")
    );

    let ids: Vec<u32> = (0..MAX_VALUES as u32 - 3).collect();
    assert!(Filter::parse(&json!({"id": {"$in": ids}})).is_ok());
    let ids: Vec<u32> = (0..MAX_VALUES as u32 - 2).collect();
    assert_eq!(
        error(json!({"id": {"$in": ids}})),
        format!("filter: too large: more than {MAX_VALUES} values")
    );
}

// ---------------------------------------------------------------------------------
// Property tests

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-c$.\\[\\]0-9]{0,6}".prop_map(Value::String),
        prop::sample::select(vec![
            "$eq",
            "$ne",
            "$gt",
            "$gte",
            "$lt",
            "$lte",
            "$in",
            "$nin",
            "$exists",
            "$contains",
            "$and",
            "$or",
            "$not",
            "a",
            "b.c",
            "t[0]",
            "chunk.a",
            "document.b",
        ])
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "$eq",
                    "$ne",
                    "$gt",
                    "$gte",
                    "$lt",
                    "$lte",
                    "$in",
                    "$nin",
                    "$exists",
                    "$contains",
                    "$and",
                    "$or",
                    "$not",
                    "$regex",
                    "a",
                    "b",
                    "a.b",
                    "t[1]",
                    "t[x]",
                    "a..b",
                    "chunk.a",
                    "document.a",
                    "",
                ]),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.into(), v)).collect())),
        ]
    })
}

/// Small metadata over the same few keys, so filters often touch real fields.
fn arb_metadata() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..5).prop_map(Value::from),
        (-5.0f64..5.0).prop_map(Value::from),
        "[ab]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "c", "t"]),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.into(), v)).collect())),
        ]
    })
}

/// A well-formed condition on one field (a value or an operator object).
fn arb_cond() -> impl Strategy<Value = Value> {
    (arb_metadata(), 0usize..12, arb_metadata()).prop_map(|(v, op, w)| match op {
        0 => v,
        1 => json!({"$eq": v}),
        2 => json!({"$ne": v}),
        3 => json!({"$gt": if v.is_number() || v.is_string() { v } else { json!(0) }}),
        4 => json!({"$lte": if v.is_string() { v } else { json!("a") }}),
        5 => json!({"$in": [v, w]}),
        6 => json!({"$nin": [v, w]}),
        7 => json!({"$exists": v.is_null()}),
        8 => json!({"$contains": v}),
        9 => json!({"$not": {"$in": [v]}}),
        10 => json!({"$gte": -1, "$lt": 2.5}),
        _ => json!({"$not": v}),
    })
}

/// Well-formed filters over the keys of `arb_metadata`.
fn arb_filter() -> impl Strategy<Value = Value> {
    let path = prop::sample::select(vec![
        "a",
        "b",
        "c",
        "t",
        "a.b",
        "t[0]",
        "t[1].a",
        "a.t[2]",
        "chunk.a",
        "document.b",
    ]);
    let field = (path, arb_cond()).prop_map(|(path, cond)| json!({ path: cond }));
    field.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"$and": v})),
            prop::collection::vec(inner.clone(), 1..4).prop_map(|v| json!({"$or": v})),
            inner.clone().prop_map(|v| json!({"$not": v})),
            (inner.clone(), inner).prop_map(|(a, b)| {
                let mut m = a.as_object().cloned().unwrap_or_default();
                m.extend(b.as_object().cloned().unwrap_or_default());
                Value::Object(m)
            }),
        ]
    })
}

/// The same filter with the top level wrapped in `$not`.
fn negated(filter: &Value) -> Value {
    json!({"$not": filter})
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_any_json_never_panics(value in arb_json()) {
        if let Err(e) = Filter::parse(&value) {
            prop_assert_eq!(e.kind(), ErrorKind::Invalid);
            prop_assert!(e.to_string().starts_with("filter: "), "{}", e);
        }
    }

    #[test]
    fn matching_never_panics(value in arb_json(), chunk in arb_json(), doc in arb_metadata()) {
        if let Ok(filter) = Filter::parse(&value) {
            let _ = filter.matches(&chunk, &doc);
            let _ = filter.matches(&Value::Null, &chunk);
        }
    }

    #[test]
    fn well_formed_filters_parse_and_negate_exactly(
        filter in arb_filter(),
        chunk in arb_metadata(),
        doc in arb_metadata(),
    ) {
        let parsed = Filter::parse(&filter)
            .map_err(|e| TestCaseError::fail(format!("{filter}: {e}")))?;
        let not = Filter::parse(&negated(&filter)).expect("negation parses");
        prop_assert_eq!(not.matches(&chunk, &doc), !parsed.matches(&chunk, &doc), "{}", filter);
    }

    #[test]
    fn unprefixed_paths_read_the_chunk_else_the_document(
        path in prop::sample::select(vec!["a", "b", "t", "a.b", "t[0]", "a.t[1]"]),
        cond in arb_cond(),
        chunk in arb_metadata(),
        doc in arb_metadata(),
    ) {
        let plain = parse(json!({ path: &cond })).matches(&chunk, &doc);
        let in_chunk = parse(json!({ format!("chunk.{path}"): {"$exists": true} })).matches(&chunk, &doc);
        let side = if in_chunk { "chunk" } else { "document" };
        let scoped = parse(json!({ format!("{side}.{path}"): &cond })).matches(&chunk, &doc);
        prop_assert_eq!(plain, scoped);
    }

    #[test]
    fn ne_and_nin_are_negations(path in "[abt]", v in arb_metadata(), w in arb_metadata(), chunk in arb_metadata()) {
        let eq = parse(json!({ &path: {"$eq": v} })).matches(&chunk, &Value::Null);
        let ne = parse(json!({ &path: {"$ne": v} })).matches(&chunk, &Value::Null);
        prop_assert_eq!(eq, !ne);
        let inn = parse(json!({ &path: {"$in": [&v, &w]} })).matches(&chunk, &Value::Null);
        let nin = parse(json!({ &path: {"$nin": [&v, &w]} })).matches(&chunk, &Value::Null);
        prop_assert_eq!(inn, !nin);
        let or = parse(json!({"$or": [{ &path: &v }, { &path: &w }]})).matches(&chunk, &Value::Null);
        prop_assert_eq!(inn, or);
    }

    #[test]
    fn gte_is_gt_or_eq_for_numbers(a in -3i64..3, fa in any::<bool>(), b in -3i64..3, fb in any::<bool>()) {
        let num = |x: i64, float: bool| if float { json!(x as f64 * 0.5) } else { json!(x) };
        let (x, y) = (num(a, fa), num(b, fb));
        let chunk = json!({"n": x});
        let gte = on(json!({"n": {"$gte": &y}}), chunk.clone());
        let gt = on(json!({"n": {"$gt": &y}}), chunk.clone());
        let eq = on(json!({"n": &y}), chunk.clone());
        let lt = on(json!({"n": {"$lt": &y}}), chunk);
        let (xv, yv) = (x.as_f64().expect("num"), y.as_f64().expect("num"));
        prop_assert_eq!(gte, gt || eq);
        prop_assert_eq!(lt, !gte);
        prop_assert_eq!(eq, xv == yv);
        prop_assert_eq!(gt, xv > yv);
    }
}

// ---------------------------------------------------------------------------------
// Through the engine

/// The top `k` documents among `candidates` by the engine's own score (cosine with
/// the public kernels), ties by slot — what an exact filtered search must return.
fn brute_force(vectors: &[Vec<f32>], query: &[f32], candidates: &[usize], k: usize) -> Vec<usize> {
    let qn = kernels::norm(query);
    let mut scored: Vec<(f32, usize)> = candidates
        .iter()
        .map(|&i| {
            let v = &vectors[i];
            (kernels::dot(query, v) / (qn * kernels::norm(v)), i)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

#[test]
fn filtered_search_equals_brute_force_over_the_matching_documents() {
    let n = 20_000;
    let k = 10;
    let (engine, vectors) = support::load(IndexConfig::Flat, Metric::Cosine, n);
    let meta = support::metadata(n);
    let queries = support::fvecs("queries.fvecs", 20);
    let year = |m: &Value| m.get("year").and_then(Value::as_i64);
    let rank = |m: &Value| m.get("download_rank").and_then(Value::as_i64);
    let text = |m: &Value, key: &str| m.get(key).and_then(Value::as_str).map(String::from);
    // Each filter with the same predicate written directly against the metadata.
    type Predicate<'a> = Box<dyn Fn(&Value) -> bool + 'a>;
    let cases: Vec<(Value, Predicate)> = vec![
        (
            json!({"year": 2008}),
            Box::new(move |m| year(m) == Some(2008)),
        ),
        (
            json!({"download_rank": {"$exists": true}}),
            Box::new(|m| m.get("download_rank").is_some()),
        ),
        (
            json!({"year": {"$lte": 2018}}),
            Box::new(move |m| year(m).is_some_and(|y| y <= 2018)),
        ),
        (
            json!({"$or": [{"year": {"$gte": 2025}}, {"download_rank": {"$lt": 100}}]}),
            Box::new(move |m| {
                year(m).is_some_and(|y| y >= 2025) || rank(m).is_some_and(|r| r < 100)
            }),
        ),
        (
            json!({"year": {"$gte": 2019, "$lt": 2025}, "package": {"$contains": "py"}}),
            Box::new(move |m| {
                year(m).is_some_and(|y| (2019..2025).contains(&y))
                    && text(m, "package").is_some_and(|p| p.contains("py"))
            }),
        ),
        (
            json!({"$not": {"year": {"$in": [2025, 2026]}}, "version": {"$ne": "0.1.0"}}),
            Box::new(move |m| {
                !matches!(year(m), Some(2025 | 2026))
                    && text(m, "version").as_deref() != Some("0.1.0")
            }),
        ),
    ];
    for (filter_json, predicate) in &cases {
        let filter = parse(filter_json.clone());
        let matching: Vec<usize> = (0..n).filter(|&i| predicate(&meta[i])).collect();
        let by_filter: Vec<usize> = (0..n)
            .filter(|&i| filter.matches(&meta[i], &Value::Null))
            .collect();
        assert_eq!(
            by_filter, matching,
            "{filter_json} disagrees with its predicate"
        );
        eprintln!(
            "{filter_json}: {} of {n} match ({:.3}%)",
            matching.len(),
            matching.len() as f64 / n as f64 * 100.0
        );
        assert!(matching.len() >= k, "{filter_json} matches too few");
        for q in &queries {
            let request = support::request(q, k as u32, Some(filter_json.clone()), None);
            let found = support::search_ids(&engine, request);
            for &i in &found {
                assert!(
                    predicate(&meta[i]),
                    "{filter_json}: hit d{i} does not satisfy it"
                );
            }
            assert_eq!(
                found,
                brute_force(&vectors, q, &matching, k),
                "{filter_json}"
            );
        }
    }
}

#[test]
fn a_malformed_filter_is_refused_through_the_engine() {
    let (engine, vectors) = support::load(IndexConfig::Flat, Metric::Cosine, 50);
    for (filter, message) in [
        (
            json!({"year": {"$regex": "^20"}}),
            "filter: unknown operator `$regex` at `year`",
        ),
        (
            json!({"$and": []}),
            "filter: `$and` needs a non-empty array of filters",
        ),
        (
            json!({"tags[x]": 1}),
            "filter: bad path `tags[x]`: `x` is not an array index",
        ),
    ] {
        let query = Query::Search {
            library: "lib".into(),
            request: support::request(&vectors[0], 5, Some(filter), None),
        };
        let e = engine.query(&query).expect_err("malformed filter");
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert_eq!(e.to_string(), message);
    }
    // A well-formed filter that matches nothing returns no hits, not an error.
    let query = Query::Search {
        library: "lib".into(),
        request: support::request(&vectors[0], 5, Some(json!({"year": 1900})), None),
    };
    match engine.query(&query).expect("search") {
        QueryResponse::Search(found) => assert!(found.hits.is_empty()),
        other => panic!("unexpected {other:?}"),
    }
}
