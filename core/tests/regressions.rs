//! Inputs the fuzzers found (core/fuzz/regressions), replayed as plain tests so they
//! stay fixed without a nightly toolchain.

use arrwdb_core::{ChunkData, Command, DocumentData, Engine, Metadata};

/// After restoring `bytes`, replacing and deleting documents must leave a library whose
/// snapshot restores and re-encodes to the same bytes.
fn mutate_and_check(bytes: &[u8]) {
    let mut engine = Engine::new();
    let library = engine
        .restore(bytes)
        .expect("the regression input restores");
    let dim = engine
        .library(&library)
        .expect("library")
        .config()
        .dimension as usize;
    let doc = |id: &str| DocumentData {
        id: id.into(),
        metadata: Metadata::default(),
        chunks: vec![ChunkData {
            id: format!("{id}#0"),
            text: String::new(),
            embedding: (0..dim).map(|i| (i % 7) as f32 - 3.0).collect(),
            metadata: Metadata::default(),
        }],
    };
    let commands = [
        Command::UpsertDocument {
            library: library.clone(),
            document: doc("doc1"),
        },
        Command::DeleteDocument {
            library: library.clone(),
            document: "doc2".into(),
        },
        Command::UpsertDocument {
            library: library.clone(),
            document: doc("doc100"),
        },
    ];
    for command in commands {
        if let Ok(record) = engine.prepare(command) {
            let _ = engine.apply(&record);
        }
    }
    let snapshot = engine.snapshot(&library).expect("snapshot");
    let mut fresh = Engine::new();
    fresh
        .restore(&snapshot)
        .expect("a snapshot the engine wrote must restore");
    assert_eq!(fresh.snapshot(&library).expect("snapshot"), snapshot);
}

#[test]
fn lsh_remove_keeps_every_table_consistent_when_buckets_disagree() {
    mutate_and_check(include_bytes!(
        "../fuzz/regressions/snapshot/lsh-remove-misses-a-table"
    ));
}

/// A crafted snapshot whose document lists one slot twice, so the ownership count
/// matched the live count while another live chunk had no owner: deleting documents
/// then produced a snapshot that did not restore. `restore` must refuse it.
#[test]
fn a_document_listing_a_slot_twice_is_refused() {
    let bytes = include_bytes!("../fuzz/regressions/snapshot/document-owns-a-slot-twice");
    let error = Engine::new()
        .restore(bytes)
        .expect_err("a slot owned twice is corrupt");
    assert!(error.to_string().contains("owns slot"), "{error}");
}

/// A crafted LSH snapshot whose tables held the same number of slots but not the same
/// slots (and not only live ones): every write then moved the tables further apart,
/// until the engine wrote a snapshot it could not restore ("lsh table holds 23 slots,
/// counts 22"). `restore` must refuse it, naming the table.
#[test]
fn lsh_tables_holding_different_slots_are_refused() {
    let bytes = include_bytes!("../fuzz/regressions/snapshot/lsh-tables-hold-different-slots");
    let error = Engine::new()
        .restore(bytes)
        .expect_err("lsh tables that disagree with the live slots are corrupt");
    assert!(error.to_string().contains("lsh"), "{error}");
}
