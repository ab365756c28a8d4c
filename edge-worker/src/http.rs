//! The data API over wasi:http, with the host's routes and JSON shapes (the types and
//! their validation are `arrwdb_core::api`, shared by every runtime).
//!
//! Each request builds its own [`arrwdb_core::Engine`] from storage ([`crate::log`]),
//! because wasi:http runtimes instantiate the component per request. Writes go through
//! the same prepare → apply → publish-segment path as the host, and retry on a fresh
//! tail when another writer won the race for a log position. Every request but
//! `/health` needs an API key unless `ARRWDB_EDGE_AUTH=off` ([`crate::auth`]); every
//! response carries the request's phase timings in `Server-Timing` ([`crate::timing`]).

use std::time::Instant;

use arrwdb_core::api::{self, ErrorBody};
use arrwdb_core::{Command, Error, Outcome, Query, QueryResponse};
use serde::Serialize;
use spin_sdk::http::{Method, Request, Response};

use crate::auth::{self, AuthError, Scope};
use crate::config::EdgeConfig;
use crate::log::{self, LoadedLibrary};
use crate::store::{self, ObjectStore, StoreError};
use crate::timing;

/// Why a request failed, before it is turned into a status and a JSON error body.
#[derive(Debug)]
enum Failure {
    Engine(Error),
    Store(StoreError),
    Auth(AuthError),
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

impl From<AuthError> for Failure {
    fn from(e: AuthError) -> Self {
        Failure::Auth(e)
    }
}

impl Failure {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Failure::Engine(e) => (e.kind().http_status(), ErrorBody::from(&e)),
            Failure::Store(e @ (StoreError::Unavailable(_) | StoreError::ListDenied(_))) => {
                (503, ErrorBody::new("unavailable", e.to_string()))
            }
            Failure::Store(e @ StoreError::Conflict(_)) => {
                (409, ErrorBody::new("conflict", e.to_string()))
            }
            Failure::Store(StoreError::Corrupt(e)) => (500, ErrorBody::from(&e)),
            Failure::Auth(e) => match e {
                AuthError::Unauthorized(m) => (401, ErrorBody::new("unauthorized", m)),
                AuthError::Forbidden(m) => (403, ErrorBody::new("forbidden", m)),
                AuthError::Unavailable(m) => (503, ErrorBody::new("unavailable", m)),
            },
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
    timing::reset();
    let started = Instant::now();
    let mut response = route(request).unwrap_or_else(Failure::into_response);
    timing::add("total", started.elapsed().as_secs_f64() * 1e3);
    if let Some(value) = timing::header() {
        response.set_header("server-timing", value);
    }
    response
}

/// The tenant an edge serves.
const TENANT: &str = arrwdb_core::storage::DEFAULT_TENANT;

/// The scope a request needs.
fn scope(method: &Method, segments: &[&str]) -> Scope {
    match (method, segments) {
        (Method::Get, _) | (Method::Post, ["v1", "libraries", _, "search"]) => Scope::Read,
        _ => Scope::Write,
    }
}

/// The request's storage, once its key (if keys are required) checked out.
fn open_store(request: &Request, scope: Scope) -> Result<Box<dyn ObjectStore>, Failure> {
    let config = EdgeConfig::load().map_err(StoreError::Unavailable)?;
    let store = store::open(&config)?;
    if config.auth {
        let header = |name: &str| request.header(name).and_then(|v| v.as_str());
        let key = auth::presented_key(header("authorization"), header("x-api-key"));
        let now = u64::try_from(crate::unix_ms()).unwrap_or(0);
        auth::authorize(store.as_ref(), key, scope, TENANT, now)?;
    }
    Ok(store)
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
    if segments.as_slice() == ["health"] {
        return match method {
            Method::Get => Ok(json(
                200,
                &api::HealthResponse {
                    status: "ok".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    runtime: "edge".into(),
                },
            )),
            _ => Err(not_allowed()),
        };
    }
    let store = open_store(request, scope(method, &segments))?;
    let store = store.as_ref();
    match segments.as_slice() {
        ["v1", "libraries"] => match method {
            Method::Get => list_libraries(store),
            Method::Post => create_library(store, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib] => match method {
            Method::Get => read(
                store,
                lib,
                Query::GetLibrary {
                    library: (*lib).into(),
                },
            ),
            Method::Delete => delete_library(store, lib),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "documents"] => match method {
            Method::Get => list_documents(store, lib, request.query()),
            Method::Post => upsert(store, lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "documents", "delete"] if *method == Method::Post => {
            delete_documents(store, lib, body)
        }
        ["v1", "libraries", lib, "documents", "batch"] => match method {
            Method::Post => upsert_batch(store, lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "documents", doc] => {
            let document = percent_decode(doc)?;
            match method {
                Method::Get => read(
                    store,
                    lib,
                    Query::GetDocument {
                        library: (*lib).into(),
                        document,
                    },
                ),
                Method::Delete => delete_document(store, lib, document),
                _ => Err(not_allowed()),
            }
        }
        ["v1", "libraries", lib, "search"] => match method {
            Method::Post => search(store, lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "snapshot"] => match method {
            Method::Post => snapshot(store, lib),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "rebuild"] => match method {
            Method::Post => rebuild(store, lib, body),
            _ => Err(not_allowed()),
        },
        ["v1", "libraries", lib, "optimize"] => match method {
            Method::Post => optimize(store, lib, body),
            _ => Err(not_allowed()),
        },
        _ => Err(Failure::Route {
            status: 404,
            kind: "not_found",
            message: format!("no route for {method} {path}"),
        }),
    }
}

/// Loads one library (absent libraries stay absent, so the engine reports them as not
/// found).
fn load(store: &dyn ObjectStore, library: &str) -> Result<LoadedLibrary, Failure> {
    api::validate_library_name(library)?;
    if let Some(mut pinned) = crate::pinned::take(library) {
        // Baked in at build time: only the WAL written since is read. If that fails
        // (its segments were collected after a compaction), load normally.
        if pinned.tail(store).is_ok() {
            timing::add("pinned", 0.0);
            return Ok(pinned);
        }
    }
    Ok(LoadedLibrary::load(store, TENANT, library)?)
}

fn read(store: &dyn ObjectStore, library: &str, query: Query) -> Reply {
    let loaded = load(store, library)?;
    let response = timing::time("query", || loaded.engine.query(&query));
    release(loaded);
    Ok(match response? {
        QueryResponse::Library(info) => json(200, &info),
        QueryResponse::Document(doc) => json(200, &doc),
        QueryResponse::Libraries(list) => json(200, &list),
        QueryResponse::Search(found) => json(200, &found),
        QueryResponse::Documents(list) => json(200, &list),
    })
}

/// Lets go of a request's library without running its destructors: wasi:http runtimes
/// (Spin, `wasmtime serve`) discard the whole instance after the request, and walking
/// every document to free it first cost up to half of a pinned request (docs/edge.md).
/// The host never calls this handler (it drives `arrw:db/engine` on warm instances).
fn release(loaded: LoadedLibrary) {
    std::mem::forget(loaded);
}

/// Runs `commands` against the newest state of `library` and publishes the accepted
/// ones as one WAL segment. Returns each command's outcome, in order.
fn commit(
    store: &dyn ObjectStore,
    library: &str,
    commands: &[Command],
) -> Result<Vec<Result<Outcome, Error>>, Failure> {
    let base = load(store, library)?;
    Ok(log::commit(store, base, commands)?.0)
}

fn commit_one(
    store: &dyn ObjectStore,
    library: &str,
    command: Command,
) -> Result<Outcome, Failure> {
    let mut outcomes = commit(store, library, &[command])?;
    match outcomes.pop() {
        Some(outcome) => Ok(outcome?),
        None => Err(Error::Internal("no outcome for a command".into()).into()),
    }
}

fn list_libraries(store: &dyn ObjectStore) -> Reply {
    let names = timing::time("list", || store.list_dirs(&format!("{TENANT}/")))?;
    let mut libraries = Vec::new();
    for name in names {
        if api::validate_library_name(&name).is_err() {
            continue;
        }
        let loaded = LoadedLibrary::load(store, TENANT, &name)?;
        libraries.extend(loaded.engine.library(&name).map(|l| l.info()));
    }
    Ok(json(200, &api::LibraryList { libraries }))
}

fn create_library(store: &dyn ObjectStore, body: &[u8]) -> Reply {
    let config = api::from_json::<api::CreateLibraryRequest>(body)?.into_config()?;
    let name = config.name.clone();
    match commit_one(store, &name, Command::CreateLibrary(config))? {
        Outcome::LibraryCreated(info) => Ok(json(201, &info)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn delete_library(store: &dyn ObjectStore, library: &str) -> Reply {
    let command = Command::DeleteLibrary {
        library: library.into(),
    };
    let base = load(store, library)?;
    let (mut outcomes, after) = log::commit(store, base, &[command])?;
    if let Some(Err(e)) = outcomes.pop() {
        return Err(e.into());
    }
    // The tombstone is durable: the deletion stands. Remove the library's other
    // objects, the tombstone last (the host's rule), so a reader never sees a log
    // without its end.
    let prefix = format!("{}/", arrwdb_core::storage::library_prefix(TENANT, library));
    let tombstone = arrwdb_core::storage::wal_key(TENANT, library, after.seq);
    let mut keys = store.list(&prefix, None).unwrap_or_default();
    keys.retain(|k| *k != tombstone);
    keys.push(tombstone);
    for key in keys {
        if store.delete(&key).is_err() {
            break;
        }
    }
    Ok(Response::builder().status(204).build())
}

fn new_document(request: api::UpsertDocumentRequest) -> arrwdb_core::DocumentData {
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    request.into_document(id)
}

fn upsert(store: &dyn ObjectStore, library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::UpsertDocumentRequest>(body)?;
    let command = Command::UpsertDocument {
        library: library.into(),
        document: new_document(request),
    };
    match commit_one(store, library, command)? {
        Outcome::DocumentUpserted(done) => Ok(json(200, &done)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn upsert_batch(store: &dyn ObjectStore, library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::BatchUpsertRequest>(body)?;
    let commands: Vec<Command> = request
        .documents
        .into_iter()
        .map(|d| Command::UpsertDocument {
            library: library.into(),
            document: new_document(d),
        })
        .collect();
    let results = commit(store, library, &commands)?
        .into_iter()
        .map(|outcome| match outcome {
            Ok(Outcome::DocumentUpserted(done)) => api::BatchItemResult::Ok(done),
            Ok(_) => api::BatchItemResult::Err(ErrorBody::new("internal", "unexpected outcome")),
            Err(e) => api::BatchItemResult::Err(ErrorBody::from(&e)),
        })
        .collect();
    Ok(json(200, &api::BatchUpsertResponse { results }))
}

/// `GET .../documents?cursor=&limit=&filter=`: one page of the listing, with the
/// host's query parameters (`filter` is URL-encoded filter JSON).
fn list_documents(store: &dyn ObjectStore, library: &str, query: &str) -> Reply {
    let mut request = api::ListDocumentsRequest::default();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "cursor" => request.cursor = Some(value.into_owned()),
            "limit" => {
                request.limit = Some(value.parse().map_err(|_| Failure::Route {
                    status: 400,
                    kind: "invalid",
                    message: format!(
                        "query parameter `limit` must be a whole number, got `{value}`"
                    ),
                })?);
            }
            "filter" => {
                request.filter =
                    Some(
                        api::from_json(value.as_bytes()).map_err(|e| Failure::Route {
                            status: 400,
                            kind: "invalid",
                            message: format!("query parameter `filter`: {e}"),
                        })?,
                    );
            }
            other => {
                return Err(Failure::Route {
                    status: 400,
                    kind: "invalid",
                    message: format!(
                        "unknown query parameter `{other}` (expected cursor, limit, filter)"
                    ),
                });
            }
        }
    }
    read(
        store,
        library,
        Query::ListDocuments {
            library: library.into(),
            request,
        },
    )
}

/// `POST .../documents/delete`: by ids or by filter, resolved to ids when prepared.
fn delete_documents(store: &dyn ObjectStore, library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::DeleteDocumentsRequest>(body)?;
    let command = Command::DeleteDocuments {
        library: library.into(),
        request,
    };
    match commit_one(store, library, command)? {
        Outcome::DocumentsDeleted { ids, .. } => Ok(json(
            200,
            &api::DeleteDocumentsResponse {
                deleted: ids.len() as u64,
                ids,
            },
        )),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn delete_document(store: &dyn ObjectStore, library: &str, document: String) -> Reply {
    commit_one(
        store,
        library,
        Command::DeleteDocument {
            library: library.into(),
            document,
        },
    )?;
    Ok(Response::builder().status(204).build())
}

fn search(store: &dyn ObjectStore, library: &str, body: &[u8]) -> Reply {
    let started = Instant::now();
    let mut request = api::from_json::<api::SearchRequest>(body)?;
    request.now.get_or_insert_with(crate::unix_ms);
    let loaded = load(store, library)?;
    let query = Query::Search {
        library: library.into(),
        request,
    };
    let response = timing::time("query", || loaded.engine.query(&query));
    release(loaded);
    match response? {
        QueryResponse::Search(mut found) => {
            found.took_ms = started.elapsed().as_secs_f64() * 1e3;
            Ok(json(200, &found))
        }
        _ => Err(Error::Internal("unexpected query response".into()).into()),
    }
}

fn rebuild(store: &dyn ObjectStore, library: &str, body: &[u8]) -> Reply {
    let request = api::from_json::<api::RebuildRequest>(body)?;
    let command = Command::RebuildIndex {
        library: library.into(),
        index: request.index,
    };
    match commit_one(store, library, command)? {
        Outcome::IndexRebuilt(info) => Ok(json(200, &info)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

fn optimize(store: &dyn ObjectStore, library: &str, body: &[u8]) -> Reply {
    api::OptimizeRequest::from_body(body)?;
    let command = Command::Optimize {
        library: library.into(),
    };
    match commit_one(store, library, command)? {
        Outcome::Optimized(info) => Ok(json(200, &info)),
        _ => Err(Error::Internal("unexpected outcome".into()).into()),
    }
}

/// Returns the library's snapshot, and stores it under `snapshots/{seq}.snap` (created
/// only if absent). No manifest names it: the host's compactor publishes snapshots,
/// and a reader without a manifest considers every listed one.
fn snapshot(store: &dyn ObjectStore, library: &str) -> Reply {
    let loaded = load(store, library)?;
    let bytes = loaded.engine.snapshot(library)?;
    let key = arrwdb_core::storage::snapshot_key(TENANT, library, loaded.seq);
    store.put_if_absent(&key, &bytes)?;
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
