//! `Filter::parse` on arbitrary JSON, and `matches` against fixed metadata and
//! against the input itself.
#![no_main]

use arrwdb_core::filter::Filter;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::sync::OnceLock;

fn fixtures() -> &'static [(Value, Value)] {
    static FIXTURES: OnceLock<Vec<(Value, Value)>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        vec![
            (Value::Null, Value::Null),
            (
                json!({"year": 2024, "tags": ["rust", "db", 3, [1]], "title": "Vector search",
                       "score": 0.5, "big": 18446744073709551615u64, "neg": -9007199254740993i64,
                       "author": {"name": "Ada", "langs": [{"n": "en"}]}, "none": null,
                       "chunk": {"x": 1}, "document": true}),
                json!({"year": 2010, "source": "pypi", "download_rank": 17}),
            ),
            (json!([1, "a", null]), json!("doc")),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(filter) = Filter::parse(&value) else {
        return;
    };
    for (chunk, document) in fixtures() {
        let _ = filter.matches(chunk, document);
    }
    let _ = filter.matches(&value, &Value::Null);
    let _ = filter.matches(&Value::Null, &value);
});
