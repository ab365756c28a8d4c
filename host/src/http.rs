//! The REST API: a thin transport over the JSON types of `arrwdb_core::api` and the
//! tenant's engine instance. Bodies are read as bytes and parsed with
//! [`api::from_json`], so a malformed body gets the very message the edge worker
//! gives; every failure, including unknown routes, wrong methods and oversized bodies,
//! is the shared JSON error shape.

use std::sync::Arc;
use std::time::Instant;

use arrwdb_core::api::{self, BatchItemResult};
use arrwdb_core::{Command, Outcome, Query, QueryResponse};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::error::ApiError;
use crate::tenant::Tenant;

/// Shared state of the router.
#[derive(Debug, Clone)]
pub struct AppState {
    pub tenant: Arc<Tenant>,
    pub max_body_bytes: usize,
}

type Reply = Result<Response, ApiError>;

/// The router with every route, fallback and body limit.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/v1/libraries", get(list_libraries).post(create_library))
        .route(
            "/v1/libraries/{lib}",
            get(get_library).delete(delete_library),
        )
        .route("/v1/libraries/{lib}/documents", post(upsert_document))
        .route("/v1/libraries/{lib}/documents/batch", post(upsert_batch))
        .route(
            "/v1/libraries/{lib}/documents/{doc}",
            get(get_document).delete(delete_document),
        )
        .route("/v1/libraries/{lib}/search", post(search))
        .route("/v1/libraries/{lib}/snapshot", post(snapshot))
        .route("/v1/libraries/{lib}/rebuild", post(rebuild))
        .route("/v1/libraries/{lib}/optimize", post(optimize))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            reject_declared_oversize,
        ))
        .with_state(state)
}

/// Answers 413 at once when `Content-Length` already says the body is over the limit,
/// before reading any of it. (Bodies without a declared length are still cut off at
/// the limit while being read.)
async fn reject_declared_oversize(
    State(limit): State<usize>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid",
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        api::to_json(value),
    )
        .into_response()
}

/// The body, or the JSON error for a body that could not be read (413 when too large).
fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "invalid",
                format!("request body is larger than the limit of {limit} bytes"),
            )
        } else {
            ApiError::new(status, "invalid", rejection.body_text())
        }
    })
}

fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|rejection| ApiError::invalid(rejection.body_text()))
}

fn unexpected() -> ApiError {
    ApiError::internal("the engine answered with an unexpected message")
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid",
        format!("method {method} is not allowed on {}", uri.path()),
    )
}

async fn health() -> Response {
    json(
        StatusCode::OK,
        &api::HealthResponse {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            runtime: "host".into(),
        },
    )
}

async fn ready(State(state): State<AppState>) -> Reply {
    if state.tenant.is_ready() {
        Ok(json(StatusCode::OK, &state.tenant.status().await))
    } else {
        Err(ApiError::unavailable(
            "the server is still loading its storage",
        ))
    }
}

async fn list_libraries(State(state): State<AppState>) -> Reply {
    match state.tenant.query(&Query::ListLibraries).await? {
        QueryResponse::Libraries(list) => Ok(json(StatusCode::OK, &list)),
        _ => Err(unexpected()),
    }
}

/// Runs one command and returns its outcome.
async fn write_one(state: &AppState, library: &str, command: Command) -> Result<Outcome, ApiError> {
    let mut outcomes = state.tenant.write(library, vec![command]).await?;
    outcomes.pop().ok_or_else(unexpected)?
}

async fn create_library(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let raw = body(raw, state.max_body_bytes)?;
    let config = api::from_json::<api::CreateLibraryRequest>(&raw)?.into_config()?;
    let name = config.name.clone();
    match write_one(&state, &name, Command::CreateLibrary(config)).await? {
        Outcome::LibraryCreated(info) => Ok(json(StatusCode::CREATED, &info)),
        _ => Err(unexpected()),
    }
}

async fn get_library(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
) -> Reply {
    let library = path(lib)?;
    match state.tenant.query(&Query::GetLibrary { library }).await? {
        QueryResponse::Library(info) => Ok(json(StatusCode::OK, &info)),
        _ => Err(unexpected()),
    }
}

async fn delete_library(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
) -> Reply {
    let library = path(lib)?;
    // Names outside the library alphabet can never exist; refuse them before they
    // reach storage keys.
    if api::validate_library_name(&library).is_err() {
        return Err(arrwdb_core::Error::LibraryNotFound(library).into());
    }
    state.tenant.delete_library(&library).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn new_document(library: &str, request: api::UpsertDocumentRequest) -> Command {
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Command::UpsertDocument {
        library: library.into(),
        document: request.into_document(id),
    }
}

async fn upsert_document(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let request = api::from_json::<api::UpsertDocumentRequest>(&raw)?;
    match write_one(&state, &library, new_document(&library, request)).await? {
        Outcome::DocumentUpserted(done) => Ok(json(StatusCode::OK, &done)),
        _ => Err(unexpected()),
    }
}

async fn upsert_batch(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let request = api::from_json::<api::BatchUpsertRequest>(&raw)?;
    let commands: Vec<Command> = request
        .documents
        .into_iter()
        .map(|d| new_document(&library, d))
        .collect();
    let results = state
        .tenant
        .write(&library, commands)
        .await?
        .into_iter()
        .map(|outcome| match outcome {
            Ok(Outcome::DocumentUpserted(done)) => BatchItemResult::Ok(done),
            Ok(_) => BatchItemResult::Err(unexpected().body),
            Err(e) => BatchItemResult::Err(e.body),
        })
        .collect();
    Ok(json(StatusCode::OK, &api::BatchUpsertResponse { results }))
}

async fn get_document(
    State(state): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    let (library, document) = path(ids)?;
    match state
        .tenant
        .query(&Query::GetDocument { library, document })
        .await?
    {
        QueryResponse::Document(doc) => Ok(json(StatusCode::OK, &doc)),
        _ => Err(unexpected()),
    }
}

async fn delete_document(
    State(state): State<AppState>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    let (library, document) = path(ids)?;
    let command = Command::DeleteDocument {
        library: library.clone(),
        document,
    };
    match write_one(&state, &library, command).await? {
        Outcome::DocumentDeleted { .. } => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(unexpected()),
    }
}

async fn search(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let started = Instant::now();
    let request = api::from_json::<api::SearchRequest>(&raw)?;
    match state
        .tenant
        .query(&Query::Search { library, request })
        .await?
    {
        QueryResponse::Search(mut found) => {
            found.took_ms = started.elapsed().as_secs_f64() * 1e3;
            Ok(json(StatusCode::OK, &found))
        }
        _ => Err(unexpected()),
    }
}

async fn snapshot(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
) -> Reply {
    let library = path(lib)?;
    if api::validate_library_name(&library).is_err() {
        return Err(arrwdb_core::Error::LibraryNotFound(library).into());
    }
    let bytes = state.tenant.snapshot(&library).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

async fn rebuild(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let request = api::from_json::<api::RebuildRequest>(&raw)?;
    let command = Command::RebuildIndex {
        library: library.clone(),
        index: request.index,
    };
    match write_one(&state, &library, command).await? {
        Outcome::IndexRebuilt(info) => Ok(json(StatusCode::OK, &info)),
        _ => Err(unexpected()),
    }
}

async fn optimize(
    State(state): State<AppState>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    api::OptimizeRequest::from_body(&raw)?;
    let command = Command::Optimize {
        library: library.clone(),
    };
    match write_one(&state, &library, command).await? {
        Outcome::Optimized(info) => Ok(json(StatusCode::OK, &info)),
        _ => Err(unexpected()),
    }
}
