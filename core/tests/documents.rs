//! Document listing with a cursor, and bulk deletes by id or filter.

use arrwdb_core::api::{self, DocumentList, ListDocumentsRequest};
use arrwdb_core::{Command, Engine, ErrorKind, Outcome, Query, QueryResponse, WalOp};
use serde_json::{Value, json};

fn engine(documents: usize) -> Engine {
    let mut engine = Engine::new();
    let create: api::CreateLibraryRequest =
        serde_json::from_value(json!({"name": "lib", "dimension": 2})).expect("create");
    let record = engine
        .prepare(Command::CreateLibrary(
            create.into_config().expect("config"),
        ))
        .expect("prepare");
    engine.apply(&record).expect("apply");
    for i in 0..documents {
        let request: api::UpsertDocumentRequest = serde_json::from_value(json!({
            "metadata": {"group": i % 3},
            "chunks": [
                {"text": "a", "embedding": [1.0, i as f32], "metadata": {"even": i % 2 == 0}},
                {"text": "b", "embedding": [i as f32, 1.0]}
            ]
        }))
        .expect("upsert");
        let record = engine
            .prepare(Command::UpsertDocument {
                library: "lib".into(),
                document: request.into_document(format!("doc-{i:04}")),
            })
            .expect("prepare");
        engine.apply(&record).expect("apply");
    }
    engine
}

fn list(engine: &Engine, body: Value) -> Result<DocumentList, arrwdb_core::Error> {
    let request: ListDocumentsRequest = serde_json::from_value(body).expect("request");
    match engine.query(&Query::ListDocuments {
        library: "lib".into(),
        request,
    })? {
        QueryResponse::Documents(page) => Ok(page),
        other => panic!("unexpected {other:?}"),
    }
}

fn delete(engine: &mut Engine, body: Value) -> Result<Vec<String>, arrwdb_core::Error> {
    let request = serde_json::from_value(body).expect("request");
    let record = engine.prepare(Command::DeleteDocuments {
        library: "lib".into(),
        request,
    })?;
    match engine.apply(&record)? {
        Outcome::DocumentsDeleted { ids, .. } => Ok(ids),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn pages_cover_every_document_once_in_id_order() {
    let engine = engine(250);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = list(&engine, json!({"limit": 100, "cursor": cursor})).expect("page");
        pages += 1;
        assert!(page.documents.len() <= 100);
        seen.extend(page.documents.iter().map(|d| d.id.clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250).map(|i| format!("doc-{i:04}")).collect();
    assert_eq!(seen, expected);
    let first = list(&engine, json!({})).expect("default page");
    assert_eq!(first.documents.len(), api::DEFAULT_LIST_LIMIT as usize);
    assert_eq!(first.documents[0].chunks, 2);
    assert_eq!(first.documents[0].metadata.0, json!({"group": 0}));
    // A page that ends exactly at the last document has no next cursor.
    let exact = list(&engine, json!({"limit": 50, "cursor": "doc-0199"})).expect("page");
    assert_eq!(exact.documents.len(), 50);
    assert_eq!(exact.next_cursor, None);
}

#[test]
fn listing_filters_by_chunk_or_document_metadata() {
    let engine = engine(30);
    let page = list(&engine, json!({"filter": {"group": 1}, "limit": 1000})).expect("page");
    assert_eq!(page.documents.len(), 10);
    assert!(page.documents.iter().all(|d| d.metadata.0["group"] == 1));
    let page = list(&engine, json!({"filter": {"even": true}, "limit": 4})).expect("page");
    let ids: Vec<&str> = page.documents.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["doc-0000", "doc-0002", "doc-0004", "doc-0006"]);
    assert_eq!(page.next_cursor.as_deref(), Some("doc-0006"));
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"filter": {"$bad": 1}}),
    ] {
        let e = list(&engine, bad.clone()).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}: {e}");
    }
}

#[test]
fn bulk_deletes_by_ids_and_by_filter() {
    let mut engine = engine(30);
    let deleted = delete(
        &mut engine,
        json!({"ids": ["doc-0003", "doc-0001", "nope", "doc-0001"]}),
    )
    .expect("delete by ids");
    assert_eq!(
        deleted,
        ["doc-0001", "doc-0003"],
        "sorted, deduplicated, existing only"
    );
    let deleted = delete(&mut engine, json!({"filter": {"group": 2}})).expect("by filter");
    assert_eq!(deleted.len(), 10);
    let remaining = list(&engine, json!({"limit": 1000})).expect("page");
    assert_eq!(remaining.documents.len(), 18);
    assert!(
        remaining
            .documents
            .iter()
            .all(|d| d.metadata.0["group"] != 2)
    );
    for bad in [
        json!({}),
        json!({"ids": ["a"], "filter": {"group": 1}}),
        json!({"ids": [""]}),
    ] {
        let e = delete(&mut engine, bad.clone()).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Invalid, "{bad}: {e}");
    }
}

#[test]
fn a_bulk_delete_record_replays_to_the_same_state() {
    let mut engine = engine(12);
    let record = engine
        .prepare(Command::DeleteDocuments {
            library: "lib".into(),
            request: serde_json::from_value(json!({"filter": {"even": false}})).expect("req"),
        })
        .expect("prepare");
    let WalOp::DeleteDocuments { ids } = &record.op else {
        panic!("unexpected {:?}", record.op);
    };
    assert_eq!(
        ids.len(),
        6,
        "the record names the documents, not the filter"
    );
    let mut replica = engine.clone();
    engine.apply(&record).expect("apply");
    replica.apply(&record).expect("apply on a replica");
    assert!(engine == replica);
}
