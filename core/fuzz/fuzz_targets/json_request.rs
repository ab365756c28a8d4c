//! `api::from_json` for every request body the engine accepts, then the engine paths
//! they feed: `into_config` + create (+ use the new library), `into_document` +
//! prepare + apply, search, document listing and bulk delete, against a small library
//! of every index kind.
#![no_main]

use arrwdb_core::api::{
    BatchUpsertRequest, CreateLibraryRequest, DeleteDocumentsRequest, ListDocumentsRequest,
    SearchRequest, UpsertDocumentRequest, from_json,
};
use arrwdb_core::{Command, Engine, Query};
use arrwdb_core_fuzz::{configs, exercise, run, small_engine};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base() -> &'static Engine {
    static BASE: OnceLock<Engine> = OnceLock::new();
    BASE.get_or_init(small_engine)
}

fn libraries() -> impl Iterator<Item = String> {
    configs().into_iter().map(|c| c.name)
}

fn upsert(engine: &mut Engine, library: &str, request: UpsertDocumentRequest) {
    let id = request.id.clone().unwrap_or_else(|| "generated".into());
    run(
        engine,
        Command::UpsertDocument {
            library: library.into(),
            document: request.into_document(id),
        },
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = from_json::<CreateLibraryRequest>(data).and_then(|r| r.into_config()) {
        let name = config.name.clone();
        let mut engine = Engine::new();
        if run(&mut engine, Command::CreateLibrary(config)) {
            exercise(&mut engine, &name);
        }
    }
    if let Ok(request) = from_json::<UpsertDocumentRequest>(data) {
        for library in libraries() {
            let mut engine = base().clone();
            upsert(&mut engine, &library, request.clone());
            exercise(&mut engine, &library);
        }
    }
    if let Ok(request) = from_json::<BatchUpsertRequest>(data) {
        for library in libraries() {
            let mut engine = base().clone();
            for document in request.documents.iter().cloned() {
                upsert(&mut engine, &library, document);
            }
            exercise(&mut engine, &library);
        }
    }
    if let Ok(request) = from_json::<ListDocumentsRequest>(data) {
        for library in libraries() {
            let _ = base().query(&Query::ListDocuments {
                library,
                request: request.clone(),
            });
        }
    }
    if let Ok(request) = from_json::<DeleteDocumentsRequest>(data) {
        for library in libraries() {
            let mut engine = base().clone();
            run(
                &mut engine,
                Command::DeleteDocuments {
                    library: library.clone(),
                    request: request.clone(),
                },
            );
            exercise(&mut engine, &library);
        }
    }
    if let Ok(request) = from_json::<SearchRequest>(data) {
        for library in libraries() {
            let _ = base().query(&Query::Search {
                library,
                request: request.clone(),
            });
        }
    }
});
