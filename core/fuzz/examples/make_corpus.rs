//! Writes the seed corpora: `cargo run --example make_corpus` in core/fuzz (overwrites
//! corpus/<target>/seed-*). Valid inputs of every kind, kept small.

use std::fs;
use std::path::Path;

use arrwdb_core::api::{
    CreateLibraryRequest, DeleteDocumentsRequest, ListDocumentsRequest, SearchRequest,
    UpsertDocumentRequest, from_json,
};
use arrwdb_core::codec::{self, decode_wal_segment, encode_wal_segment};
use arrwdb_core::filter::Filter;
use arrwdb_core::storage::Manifest;
use arrwdb_core::{Command, Engine, Query, WalRecord};
use arrwdb_core_fuzz::{DIM, DOCS, configs, document, small_engine};

/// Refuses to write a seed its decoder rejects: an invalid seed only teaches the
/// fuzzer the error path.
fn check(target: &str, name: &str, bytes: &[u8]) {
    let ok = match target {
        "snapshot" => Engine::new().restore(bytes).is_ok(),
        "wal_segment" => decode_wal_segment(bytes).is_ok(),
        "filter" => serde_json::from_slice(bytes)
            .ok()
            .is_some_and(|v| Filter::parse(&v).is_ok()),
        "manifest" => Manifest::from_json(bytes).is_ok(),
        "wit_payload" => {
            codec::from_bytes::<Command>("command", bytes).is_ok()
                || codec::from_bytes::<WalRecord>("record", bytes).is_ok()
                || codec::from_bytes::<Query>("query", bytes).is_ok()
        }
        _ => {
            from_json::<CreateLibraryRequest>(bytes).is_ok()
                || from_json::<UpsertDocumentRequest>(bytes).is_ok()
                || from_json::<arrwdb_core::api::BatchUpsertRequest>(bytes).is_ok()
                || from_json::<SearchRequest>(bytes).is_ok()
                || from_json::<ListDocumentsRequest>(bytes).is_ok()
                || from_json::<DeleteDocumentsRequest>(bytes).is_ok()
        }
    };
    assert!(ok, "seed {target}/{name} does not decode");
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    check(target, name, bytes);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&dir).expect("create corpus directory");
    fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
}

fn main() {
    // Snapshots of every index kind, filled and with a tombstone.
    let engine = small_engine();
    for config in configs() {
        let bytes = engine.snapshot(&config.name).expect("snapshot");
        write("snapshot", &config.name, &bytes);
    }
    // An empty library.
    let mut empty = Engine::new();
    let record = empty
        .prepare(Command::CreateLibrary(configs().remove(0)))
        .expect("prepare");
    empty.apply(&record).expect("apply");
    write(
        "snapshot",
        "empty",
        &empty.snapshot("flat").expect("snapshot"),
    );

    // WAL segments: a library's whole log (create, upserts, a replace, a delete), and
    // a later segment of the same log.
    for config in configs() {
        let name = config.name.clone();
        let mut engine = Engine::new();
        let mut log: Vec<WalRecord> = Vec::new();
        let mut run = |engine: &mut Engine, command| {
            let record = engine.prepare(command).expect("prepare");
            engine.apply(&record).expect("apply");
            log.push(record);
        };
        run(&mut engine, Command::CreateLibrary(config));
        for i in 0..DOCS {
            run(
                &mut engine,
                Command::UpsertDocument {
                    library: name.clone(),
                    document: document(i, DIM as usize),
                },
            );
        }
        run(
            &mut engine,
            Command::UpsertDocument {
                library: name.clone(),
                document: document(1, DIM as usize),
            },
        );
        run(
            &mut engine,
            Command::DeleteDocument {
                library: name.clone(),
                document: "doc2".into(),
            },
        );
        run(
            &mut engine,
            Command::DeleteLibrary {
                library: name.clone(),
            },
        );
        let whole = &log[..log.len() - 1];
        write(
            "wal_segment",
            &name,
            &encode_wal_segment(whole).expect("encode"),
        );
        if name == "flat" {
            write(
                "wal_segment",
                "flat-tail",
                &encode_wal_segment(&log[5..]).expect("encode"),
            );
        }
    }

    for (i, filter) in [
        r#"{}"#,
        r#"{"year": {"$gte": 2010, "$lt": 2025}, "tags": "rust"}"#,
        r#"{"$or": [{"author.name": "Ada"}, {"tags[0]": {"$in": ["db", 3]}}], "none": null}"#,
        r#"{"$and": [{"document.source": {"$ne": "npm"}}, {"chunk.chunk.x": {"$exists": true}}]}"#,
        r#"{"$not": {"title": {"$contains": "search"}}, "score": {"$lte": 0.5}}"#,
        r#"{"author.langs[0].n": {"$nin": ["fr", "de"]}, "big": 18446744073709551615}"#,
        r#"{"tags": {"$not": {"$contains": [1]}}, "neg": {"$gt": -9007199254740994}}"#,
        r#"{"download_rank": {"$exists": false}, "m[0][1]": {"$eq": {"a": [1, 2.0]}}}"#,
    ]
    .iter()
    .enumerate()
    {
        write("filter", &i.to_string(), filter.as_bytes());
    }

    for (name, request) in [
        (
            "create-flat",
            r#"{"name":"lib","dimension":4,"metric":"cosine"}"#,
        ),
        (
            "create-hnsw",
            r#"{"name":"h","dimension":3,"metric":"l2","index":{"type":"hnsw","m":4,"ef_construction":16,"ef_search":8,"seed":1},"quantization":{"type":"none"}}"#,
        ),
        (
            "create-ivf",
            r#"{"name":"i","dimension":2,"metric":"dot","index":{"type":"ivf","nlist":1,"nprobe":1,"train_size":1,"pq_m":1}}"#,
        ),
        (
            "create-kdtree",
            r#"{"name":"k","dimension":5,"index":{"type":"kdtree","leaf_size":1}}"#,
        ),
        (
            "create-lsh",
            r#"{"name":"l","dimension":2,"index":{"type":"lsh","num_tables":2,"hash_size":4}}"#,
        ),
        (
            "upsert",
            r#"{"id":"doc1","metadata":{"year":2020},"chunks":[{"text":"hi","embedding":[1,0,0.5,-1],"metadata":{"tags":["t1"]}},{"id":"c","embedding":[0,1,0,0]}]}"#,
        ),
        (
            "upsert-new",
            r#"{"chunks":[{"embedding":[0.1,0.2,0.3,0.4]}]}"#,
        ),
        (
            "batch",
            r#"{"documents":[{"id":"doc0","chunks":[{"embedding":[1,1,1,1]}]},{"id":"x","chunks":[{"id":"doc4#0","embedding":[1,2,3,4]}]}]}"#,
        ),
        ("search", r#"{"vector":[1,0,0,0],"k":3}"#),
        (
            "search-filter",
            r#"{"vector":[0.5,-0.5,1,0],"k":20,"filter":{"year":{"$gte":2010},"tags":"t1"},"params":{"ef":64,"nprobe":2},"include":["text","metadata","vector"]}"#,
        ),
        (
            "search-selective",
            r#"{"vector":[0,0,0,1],"k":1,"filter":{"document.year":2005},"mode":"vector"}"#,
        ),
        ("list", r#"{"limit":2,"filter":{"year":{"$gte":2010}}}"#),
        ("list-cursor", r#"{"cursor":"doc1","limit":1}"#),
        ("delete-ids", r#"{"ids":["doc1","missing"]}"#),
        ("delete-filter", r#"{"filter":{"tags":"t1"}}"#),
    ] {
        write("json_request", name, request.as_bytes());
    }

    for (name, manifest) in [
        (
            "fresh",
            r#"{"version":1,"library":"flat","epoch":1,"writer":"h:1:abc","snapshot":null,"wal_start":1,"next_seq":1,"created_at_ms":1764460800000}"#,
        ),
        (
            "snapshot",
            r#"{"version":1,"library":"hnsw","epoch":3,"writer":"h:2:def","snapshot":41,"wal_start":42,"next_seq":57,"created_at_ms":1764460800000,"advisory":true}"#,
        ),
    ] {
        write("manifest", name, manifest.as_bytes());
    }

    // Component payloads: postcard commands, records and queries, as the host sends.
    let engine = small_engine();
    let flat = configs().remove(0).name;
    let mut created = configs().remove(1);
    created.name = "created".into();
    let commands = [
        Command::CreateLibrary(created),
        Command::UpsertDocument {
            library: flat.clone(),
            document: document(7, DIM as usize),
        },
        Command::DeleteDocument {
            library: flat.clone(),
            document: "doc1".into(),
        },
    ];
    for (i, command) in commands.into_iter().enumerate() {
        let record = engine.prepare(command.clone()).expect("prepare");
        write(
            "wit_payload",
            &format!("command-{i}"),
            &codec::to_bytes(&command).expect("encode"),
        );
        write(
            "wit_payload",
            &format!("record-{i}"),
            &codec::to_bytes(&record).expect("encode"),
        );
    }
    let search: SearchRequest =
        from_json(br#"{"vector":[1,0,0,0],"k":3,"filter":{"year":{"$gte":2010}}}"#)
            .expect("search");
    for (i, query) in [
        Query::Search {
            library: flat.clone(),
            request: search,
        },
        Query::GetLibrary {
            library: flat.clone(),
        },
    ]
    .iter()
    .enumerate()
    {
        write(
            "wit_payload",
            &format!("query-{i}"),
            &codec::to_bytes(query).expect("encode"),
        );
    }
}
