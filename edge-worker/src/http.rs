//! The data API over wasi:http, with the host's routes and JSON shapes (the types and
//! their validation are `arrwdb_core::api`, shared by every runtime).
//!
//! Each request builds its own [`Engine`] from storage, because wasi:http runtimes
//! instantiate the component per request. Writes go through the same
//! prepare → apply → publish-segment path as the host, and retry on a fresh tail when
//! another writer won the race for a log position.

use std::time::Instant;

use arrwdb_core::api::{self, ErrorBody};
use arrwdb_core::{Command, Engine, Error, Outcome, Query, QueryResponse};
use serde::Serialize;
use spin_sdk::http::{Method, Request, Response};

use crate::store::{DirStore, StoreError};

/// How often a write is retried after losing the race for its WAL position.
const WRITE_ATTEMPTS: usize = 5;

/// Why a request failed, before it is turned into a status and a JSON error body.
#[derive(Debug)]
enum Failure {
    Engine(Error),
    Store(StoreError),
    Route {
        status: u16,
        kind: &'static str,
        message: String,
    },
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Engine(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl Failure {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Failure::Engine(e) => (e.kind().http_status(), ErrorBody::from(&e)),
            Failure::Store(e @ StoreError::Unavailable(_)) => {
                (503, ErrorBody::new("unavailable", e.to_string()))
            }
            Failure::Store(e @ StoreError::Conflict(_)) => {
                (409, ErrorBody::new("conflict", e.to_string()))
            }
            Failure::Store(StoreError::Corrupt(e)) => (500, ErrorBody::from(&e)),
            Failure::Route {
                status,
                kind,
                message,
            } => (status, ErrorBody::new(kind, message)),
        };
        json(status, &body)
    }
}

fn json<T: Serialize>(status: u16, value: &T) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(api::to_json(value))
        .build()
}

type Reply = Result<Response, Failure>;

/// Serves one request.
pub fn handle(request: &Request) -> Response {
    route(request).unwrap_or_else(Failure::into_response)
}

fn route(request: &Request) -> Reply {
    let path = request.path();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method();
    let body = request.body();
    let not_allowed = || Failure::Route {
        status: 405,
        kind: "invalid",
        message: format!("method {method} is not allowed on {path}"),
    };
    match segments.as_slice() {
        ["health"] => match method {
            Method::Get => Ok(json(
                200,
                &api::HealthResponse {
                    status: "ok".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    runtime: "edge".into(),
                },
            )),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries"] => match method {
            Method::Get => list_libraries(),
            Method::Post => create_library(body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib] => match method {
            Method::Get => read(
                lib,
                Query::GetLibrary {
                    library: (*lib).into(),
                },
            ),
            Method::Delete => delete_library(lib),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "documents"] => match method {
            Method::Post => upsert(lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "documents", "batch"] => match method {
            Method::Post => upsert_batch(lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "documents", doc] => {
            let document = percent_decode(doc)?;
            match method {
                Method::Get => read(
                    lib,
                    Query::GetDocument {
                        library: (*lib).into(),
                        document,
                    },
                ),
                Method::Delete => delete_document(lib, document),
                _ => Err(not_allowed()),
            }
        }
        ["v1", "libraries", lib, "search"] => match method {
            Method::Post => search(lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "snapshot"] => match method {
            Method::Post => snapshot(lib),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "rebuild"] => match method {
            Method::Post => rebuild(lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "optimize"] => match method {
            Method::Post => optimize(lib, body),
            _ => Err(not_allowed()),
        },
        _ => Err(Failure::Route {
            status: 404,
            kind: "not_found",
            message: format!("no route for {method} {path}"),
        }),
    }
}

/// Loads one library into a fresh engine (absent libraries stay absent, so the
/// engine reports them as not found).
fn load(store: &DirStore, library: &str) -> Result<Engine, Failure> {
    api::validate_library_name(library)?;
    let mut engine = Engine::new();
    store.load(&mut engine, library)?;
    Ok(engine)
}

fn read(library: &str, query: Query) -> Reply {
    let store = DirStore::open()?;
    let engine = load(&store, library)?;
    Ok(match engine.query(&query)? {
        QueryResponse::Library(info) => json(200, &info),
        QueryResponse::Document(doc) => json(200, &doc),
        QueryResponse::Libraries(list) => json(200, &list),
        QueryResponse::Search(found) => json(200, &found),
    })
}

/// Runs `commands` against the newest state of `library` and publishes the accepted
/// ones as one WAL segment; on a lost race, reloads and runs them again. Returns each
/// command's outcome, in order.
fn commit(
    store: &DirStore,
    library: &str,
    commands: &[Command],
) -> Result<Vec<Result<Outcome, Error>>, Failure> {
    let mut lost_at = 0;
    for _ in 0..WRITE_ATTEMPTS {
        let mut engine = load(store, library)?;
        let mut records = Vec::new();
        let mut outcomes = Vec::with_capacity(commands.len());
        for command in commands {
            let outcome = engine.prepare(command.clone()).and_then(|record| {
                let outcome = engine.apply(&record)?;
                records.push(record);
                Ok(outcome)
            });
            outcomes.push(outcome);
        }
        if records.is_empty() {
            return Ok(outcomes);
        }
        match store.append(&records) {
            Ok(()) => return Ok(outcomes),
            Err(StoreError::Conflict(seq)) => lost_at = seq,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict(lost_at).into())
}

fn commit_one(store: &DirStore, library: &str, command: Command) -> Result<Outcome, Failure> {
    let mut outcomes = commit(store, library, &[command])?;
    match outcomes.pop() {
        Some(outcome) => Ok(outcome?),
        None => Err(Error::Internal("no outcome for a command".into()).into()),
    }
}

fn list_libraries() -> Reply {
    let store = DirStore::open()?;
    let mut engine = Engine::new();
    for name in store.library_names()? {
        store.load(&mut engine, &name)?;
    }
    Ok(match engine.query(&Query::ListLibraries)? {
        QueryResponse::Libraries(list) => json(200, &list),
        _ => return Err(Error::Internal("unexpected query response".into()).into()),
    })
}

fn create_library(body: &[u8]) -> Reply {
    let config = api::from_json::<api::CreateLibraryRequest>(body)?.into_config()?;
    let store = DirStore::open()?;
    let name = config.name.clone();
    match commit_one(&store, &name, Command::CreateLibrary(config))? {
        Outcome::LibraryCreated(info) => Ok(json(201, &info)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn delete_library(library: &str) -> Reply {
    let store = DirStore::open()?;
    commit_one(
        &store,
        library,
        Command::DeleteLibrary {
            library: library.into(),
        },
    )?;
    store.remove_library(library)?;
    Ok(Response::builder().status(204).build())
}

fn new_document(request: api::UpsertDocumentRequest) -> arrwdb_core::DocumentData {
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.into_document(id)
}

fn upsert(library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::UpsertDocumentRequest>(body)?;
    let store = DirStore::open()?;
    let command = Command::UpsertDocument {
        library: library.into(),
        document: new_document(request),
    };
    match commit_one(&store, library, command)? {
        Outcome::DocumentUpserted(done) => Ok(json(200, &done)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn upsert_batch(library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::BatchUpsertRequest>(body)?;
    let store = DirStore::open()?;
    let commands: Vec<Command> = request
        .documents
        .into_iter()
        .map(|d| Command::UpsertDocument {
            library: library.into(),
            document: new_document(d),
        })
        .collect();
    let results = commit(&store, library, &commands)?
        .into_iter()
        .map(|outcome| match outcome {
            Ok(Outcome::DocumentUpserted(done)) => api::BatchItemResult::Ok(done),
            Ok(_) => api::BatchItemResult::Err(ErrorBody::new("internal", "unexpected outcome")),
            Err(e) => api::BatchItemResult::Err(ErrorBody::from(&e)),
        })
        .collect();
    Ok(json(200, &api::BatchUpsertResponse { results }))
}

fn delete_document(library: &str, document: String) -> Reply {
    let store = DirStore::open()?;
    commit_one(
        &store,
        library,
        Command::DeleteDocument {
            library: library.into(),
            document,
        },
    )?;
    Ok(Response::builder().status(204).build())
}

fn search(library: &str, body: &[u8]) -> Reply {
    let started = Instant::now();
    let mut request = api::from_json::<api::SearchRequest>(body)?;
    request.now.get_or_insert_with(crate::unix_ms);
    let store = DirStore::open()?;
    let engine = load(&store, library)?;
    match engine.query(&Query::Search {
        library: library.into(),
        request,
    })? {
        QueryResponse::Search(mut found) => {
            found.took_ms = started.elapsed().as_secs_f64() * 1e3;
            Ok(json(200, &found))
        }
        _ => Err(Error::Internal("unexpected query response".into()).into()),
    }
}

fn rebuild(library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::RebuildRequest>(body)?;
    let store = DirStore::open()?;
    let command = Command::RebuildIndex {
        library: library.into(),
        index: request.index,
    };
    match commit_one(&store, library, command)? {
        Outcome::IndexRebuilt(info) => Ok(json(200, &info)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn optimize(library: &str, body: &[u8]) -> Reply {
    api::OptimizeRequest::from_body(body)?;
    let store = DirStore::open()?;
    let command = Command::Optimize {
        library: library.into(),
    };
    match commit_one(&store, library, command)? {
        Outcome::Optimized(info) => Ok(json(200, &info)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn snapshot(library: &str) -> Reply {
    let store = DirStore::open()?;
    let engine = load(&store, library)?;
    let bytes = engine.snapshot(library)?;
    let seq = engine.library(library).map_or(0, |l| l.seq());
    store.put_snapshot(library, seq, &bytes)?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .build())
}

/// Decodes `%XX` escapes in a path segment.
fn percent_decode(segment: &str) -> Result<String, Failure> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else {
                return Err(Error::Invalid(format!("bad percent-escape in {segment:?}")).into());
            };
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
        .map_err(|_| Error::Invalid(format!("path segment {segment:?} is not UTF-8")).into())
}
