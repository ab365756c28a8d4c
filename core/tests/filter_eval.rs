//! The filter evaluator's edges that tests/filter.rs does not pin: `FieldPath` (the
//! path resolution rerankers use), structural equality of objects and arrays that
//! agree on a prefix or on a subset of keys, and integer/float order at the ends of
//! the float range. These kill the mutants of `filter.rs` listed in docs/quality.md.

use arrwdb_core::filter::{FieldPath, Filter};
use serde_json::{Value, json};

fn on(filter: Value, chunk: Value) -> bool {
    Filter::parse(&filter)
        .unwrap_or_else(|e| panic!("{filter} should parse: {e}"))
        .matches(&chunk, &Value::Null)
}

fn path(text: &str) -> FieldPath {
    FieldPath::parse(text).unwrap_or_else(|e| panic!("{text} should parse: {e}"))
}

#[test]
fn field_paths_resolve_like_filters() {
    let chunk = json!({"date": "2024-01-01", "a": {"b": [10, {"c": null}]}});
    let doc = json!({"date": "1999-12-31", "author": "Ada", "chunk": {"x": 1}});
    assert_eq!(
        path("date").resolve(&chunk, &doc),
        Some(&json!("2024-01-01"))
    );
    assert_eq!(
        path("document.date").resolve(&chunk, &doc),
        Some(&json!("1999-12-31"))
    );
    assert_eq!(path("author").resolve(&chunk, &doc), Some(&json!("Ada")));
    assert_eq!(path("chunk.author").resolve(&chunk, &doc), None);
    assert_eq!(path("a.b[0]").resolve(&chunk, &doc), Some(&json!(10)));
    assert_eq!(path("a.b[1].c").resolve(&chunk, &doc), Some(&Value::Null));
    assert_eq!(path("a.b[2]").resolve(&chunk, &doc), None);
    assert_eq!(
        path("document.chunk.x").resolve(&chunk, &doc),
        Some(&json!(1))
    );
    assert_eq!(path("missing").resolve(&chunk, &doc), None);
    assert_eq!(path("date").resolve(&Value::Null, &Value::Null), None);
    for bad in ["", "a..b", "a[", "a[x]", "a]", "a[1]b"] {
        assert!(FieldPath::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn objects_and_arrays_are_equal_only_when_whole() {
    // Same keys required: a subset or superset is not equal.
    assert!(on(
        json!({"o": {"$eq": {"k": 1}}}),
        json!({"o": {"k": 1.0}})
    ));
    assert!(!on(
        json!({"o": {"$eq": {"k": 1}}}),
        json!({"o": {"k": 1, "j": 2}})
    ));
    assert!(!on(
        json!({"o": {"$eq": {"k": 1, "j": 2}}}),
        json!({"o": {"k": 1}})
    ));
    assert!(!on(json!({"o": {"$eq": {"k": 1}}}), json!({"o": {"j": 1}})));
    assert!(!on(json!({"o": {"$eq": {"k": 1}}}), json!({"o": {"k": 2}})));
    // Same length required: a prefix is not equal.
    assert!(on(json!({"a": {"$eq": [[1, 2]]}}), json!({"a": [[1, 2]]})));
    assert!(!on(
        json!({"a": {"$eq": [[1, 2]]}}),
        json!({"a": [[1, 2, 3]]})
    ));
    assert!(!on(
        json!({"a": {"$eq": [[1, 2, 3]]}}),
        json!({"a": [[1, 2]]})
    ));
    assert!(!on(json!({"a": {"$eq": [[1, 2]]}}), json!({"a": [[1, 3]]})));
    // Scalars of every type, equal and not.
    for (x, y, equal) in [
        (json!(null), json!(null), true),
        (json!(true), json!(true), true),
        (json!(true), json!(false), false),
        (json!("s"), json!("s"), true),
        (json!("s"), json!("t"), false),
        (json!(null), json!(false), false),
        (json!(0), json!(false), false),
    ] {
        assert_eq!(
            on(json!({"v": {"$eq": x}}), json!({"v": y})),
            equal,
            "{x} {y}"
        );
        assert_eq!(
            on(json!({"v": {"$ne": x}}), json!({"v": y})),
            !equal,
            "{x} {y}"
        );
    }
}

#[test]
fn integers_and_floats_order_exactly_at_the_ends() {
    // 2^127 and beyond are above every integer; -2^127 and below, below every one.
    let big = 1.7014118346046923e38_f64; // 2^127
    for (field, bound, gt) in [
        (json!(u64::MAX), json!(big), false),
        (json!(u64::MAX), json!(-big), true),
        (json!(i64::MIN), json!(-big), true),
        (json!(i64::MIN), json!(-1e300), true),
        (json!(0), json!(1e300), false),
        (json!(3), json!(2.5), true),
        (json!(2), json!(2.5), false),
        (json!(-2), json!(-2.5), true),
        (json!(-3), json!(-2.5), false),
    ] {
        assert_eq!(
            on(json!({"n": {"$gt": bound}}), json!({"n": field})),
            gt,
            "{field} > {bound}"
        );
        assert_eq!(
            on(json!({"n": {"$lte": bound}}), json!({"n": field})),
            !gt,
            "{field} <= {bound}"
        );
        // The same pair the other way round.
        assert_eq!(
            on(json!({"n": {"$lt": field}}), json!({"n": bound})),
            gt,
            "{bound} < {field}"
        );
    }
    // Equal integer and float, both signs, and floats between two integers.
    for (int, float) in [(json!(-7), json!(-7.0)), (json!(7), json!(7.0))] {
        assert!(on(json!({"n": {"$gte": float}}), json!({"n": int})));
        assert!(on(json!({"n": {"$lte": float}}), json!({"n": int})));
        assert!(on(json!({"n": {"$gte": int}}), json!({"n": float})));
    }
    assert!(!on(json!({"n": 2}), json!({"n": 2.5})));
    assert!(!on(json!({"n": 2.5}), json!({"n": 2})));
    assert!(!on(json!({"n": -2}), json!({"n": -2.5})));
}
