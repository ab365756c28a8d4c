//! The REST API: a thin transport over the JSON types of `arrwdb_core::api` and the
//! tenant's engine instance. Bodies are read as bytes and parsed with
//! [`api::from_json`], so a malformed body gets the very message the edge worker
//! gives; every failure, including unknown routes, wrong methods and oversized bodies,
//! is the shared JSON error shape. Searches and listings also feed the search latency
//! metric and the slow-query log ([`crate::telemetry::slow_query`]); every route is
//! described in `/openapi.json` ([`crate::openapi`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrwdb_core::api::{self, BatchItemResult};
use arrwdb_core::{Command, Outcome, Query as EngineQuery, QueryResponse};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde::Serialize;

use crate::auth::{Auth, Caller};
use crate::error::ApiError;
use crate::metrics::RequestId;
use crate::telemetry::QueryShape;
use crate::tenant::Tenant;

/// Shared state of the router.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The default tenant (for `/ready`); handlers use the caller's.
    pub tenant: Arc<Tenant>,
    /// Tenants, keys and authentication.
    pub auth: Arc<Auth>,
    /// The job queue.
    pub jobs: Arc<crate::jobs::Jobs>,
    /// Settings of the event transports.
    pub events: crate::events::EventsArgs,
    pub max_body_bytes: usize,
}

type Reply = Result<Response, ApiError>;

/// The router with every route, fallback and body limit.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(crate::metrics::scrape))
        .route("/openapi.json", get(crate::openapi::serve))
        .route("/console", get(console_page))
        .route("/console.js", get(console_script))
        .route("/v1/libraries", get(list_libraries).post(create_library))
        .route(
            "/v1/libraries/{lib}",
            get(get_library).delete(delete_library),
        )
        .route(
            "/v1/libraries/{lib}/documents",
            get(list_documents).post(upsert_document),
        )
        .route(
            "/v1/libraries/{lib}/documents/delete",
            post(delete_documents),
        )
        .route("/v1/libraries/{lib}/documents/batch", post(upsert_batch))
        .route(
            "/v1/libraries/{lib}/documents/{doc}",
            get(get_document).delete(delete_document),
        )
        .route("/v1/libraries/{lib}/search", post(search))
        .route(
            "/v1/libraries/{lib}/documents/stream",
            post(crate::stream::upsert_stream),
        )
        .route(
            "/v1/libraries/{lib}/search/stream",
            post(crate::stream::search_stream),
        )
        .route("/v1/libraries/{lib}/snapshot", post(snapshot))
        .route("/v1/libraries/{lib}/rebuild", post(rebuild))
        .route("/v1/libraries/{lib}/optimize", post(optimize))
        .route(
            "/v1/admin/tenants",
            get(crate::admin::list_tenants).post(crate::admin::create_tenant),
        )
        .route(
            "/v1/admin/tenants/{tenant}",
            get(crate::admin::get_tenant).patch(crate::admin::update_tenant),
        )
        .route(
            "/v1/admin/tenants/{tenant}/deactivate",
            post(crate::admin::deactivate_tenant),
        )
        .route(
            "/v1/admin/tenants/{tenant}/keys",
            get(crate::admin::list_keys).post(crate::admin::create_key),
        )
        .route("/v1/admin/keys/{id}/rotate", post(crate::admin::rotate_key))
        .route("/v1/admin/keys/{id}/revoke", post(crate::admin::revoke_key))
        .merge(crate::events::routes())
        .merge(crate::jobs::routes())
        // Every /v1 route above needs a key (the middleware lets /health, /ready and
        // /metrics through); register /v1 routes above this line.
        .route_layer(axum::middleware::from_fn_with_state(
            state.auth.clone(),
            crate::auth::require_key,
        ))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            limit,
            reject_declared_oversize,
        ))
        .layer(axum::middleware::from_fn(crate::metrics::track))
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
    let streamed = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some_and(|p| crate::stream::UNLIMITED_ROUTES.contains(&p.as_str()));
    match declared {
        Some(length) if length > limit as u64 && !streamed => ApiError::new(
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

/// The web console for a running host (www/console.html), compiled into the binary so
/// the server needs no files beside it. Its API calls go to this same origin with the
/// key the user signs in with (kept in sessionStorage, sent only as a header).
const CONSOLE_HTML: &str = include_str!("../../www/console.html");
const CONSOLE_JS: &str = include_str!("../../www/console.js");
/// The console loads nothing but its own script and talks only to this origin.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn console_asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /console`: the web console (no key needed to load it; every API call it makes
/// needs one).
async fn console_page() -> Response {
    console_asset("text/html; charset=utf-8", CONSOLE_HTML)
}

/// `GET /console.js`: the console's script.
async fn console_script() -> Response {
    console_asset("text/javascript; charset=utf-8", CONSOLE_JS)
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

async fn list_libraries(Extension(caller): Extension<Caller>) -> Reply {
    match caller.tenant.query(&EngineQuery::ListLibraries).await? {
        QueryResponse::Libraries(list) => Ok(json(StatusCode::OK, &list)),
        _ => Err(unexpected()),
    }
}

/// Runs one command and returns its outcome.
async fn write_one(caller: &Caller, library: &str, command: Command) -> Result<Outcome, ApiError> {
    let mut outcomes = caller.tenant.write(library, vec![command]).await?;
    outcomes.pop().ok_or_else(unexpected)?
}

async fn create_library(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let raw = body(raw, state.max_body_bytes)?;
    let config = api::from_json::<api::CreateLibraryRequest>(&raw)?.into_config()?;
    let name = config.name.clone();
    match write_one(&caller, &name, Command::CreateLibrary(config)).await? {
        Outcome::LibraryCreated(info) => Ok(json(StatusCode::CREATED, &info)),
        _ => Err(unexpected()),
    }
}

async fn get_library(
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
) -> Reply {
    let library = path(lib)?;
    match caller
        .tenant
        .query(&EngineQuery::GetLibrary { library })
        .await?
    {
        QueryResponse::Library(info) => Ok(json(StatusCode::OK, &info)),
        _ => Err(unexpected()),
    }
}

async fn delete_library(
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
) -> Reply {
    let library = path(lib)?;
    // Names outside the library alphabet can never exist; refuse them before they
    // reach storage keys.
    if api::validate_library_name(&library).is_err() {
        return Err(arrwdb_core::Error::LibraryNotFound(library).into());
    }
    caller.tenant.delete_library(&library).await?;
    crate::metrics::forget_index_kind(&caller.tenant_name, &library);
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
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let request = api::from_json::<api::UpsertDocumentRequest>(&raw)?;
    match write_one(&caller, &library, new_document(&library, request)).await? {
        Outcome::DocumentUpserted(done) => Ok(json(StatusCode::OK, &done)),
        _ => Err(unexpected()),
    }
}

async fn upsert_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let request = api::from_json::<api::BatchUpsertRequest>(&raw)?;
    request.validate()?;
    let commands: Vec<Command> = request
        .documents
        .into_iter()
        .map(|d| new_document(&library, d))
        .collect();
    let results = caller
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
    Extension(caller): Extension<Caller>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    let (library, document) = path(ids)?;
    match caller
        .tenant
        .query(&EngineQuery::GetDocument { library, document })
        .await?
    {
        QueryResponse::Document(doc) => Ok(json(StatusCode::OK, &doc)),
        _ => Err(unexpected()),
    }
}

async fn delete_document(
    Extension(caller): Extension<Caller>,
    ids: Result<Path<(String, String)>, PathRejection>,
) -> Reply {
    let (library, document) = path(ids)?;
    let command = Command::DeleteDocument {
        library: library.clone(),
        document,
    };
    match write_one(&caller, &library, command).await? {
        Outcome::DocumentDeleted { .. } => Ok(StatusCode::NO_CONTENT.into_response()),
        _ => Err(unexpected()),
    }
}

/// Query parameters of a document listing; `filter` is a JSON object in a string.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    cursor: Option<String>,
    limit: Option<u32>,
    filter: Option<String>,
}

async fn list_documents(
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    lib: Result<Path<String>, PathRejection>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Reply {
    let started = Instant::now();
    let library = path(lib)?;
    let Query(params) = params.map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
    let filter = match params.filter.as_deref() {
        Some(text) => Some(api::from_json(text.as_bytes()).map_err(|e| {
            ApiError::invalid(format!(
                "query parameter `filter`: {}",
                ApiError::from(e).message()
            ))
        })?),
        None => None,
    };
    let request = api::ListDocumentsRequest {
        cursor: params.cursor,
        limit: params.limit,
        filter,
    };
    let query = EngineQuery::ListDocuments {
        library: library.clone(),
        request: request.clone(),
    };
    match caller.tenant.query(&query).await? {
        QueryResponse::Documents(list) => {
            let reply = json(StatusCode::OK, &list);
            let shape = QueryShape {
                route: "/v1/libraries/{lib}/documents",
                library: &library,
                mode: "list",
                index: "-",
                k: request.limit.unwrap_or(api::DEFAULT_LIST_LIMIT),
                candidates: 0,
                filter: request.filter.as_ref().map(|f| &f.0),
                results: list.documents.len(),
                request_id: request_id(&id),
            };
            crate::telemetry::slow_query(&shape, started.elapsed());
            Ok(reply)
        }
        _ => Err(unexpected()),
    }
}

async fn delete_documents(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let request = api::from_json::<api::DeleteDocumentsRequest>(&raw)?;
    let command = Command::DeleteDocuments {
        library: library.clone(),
        request,
    };
    match write_one(&caller, &library, command).await? {
        Outcome::DocumentsDeleted { ids, .. } => Ok(json(
            StatusCode::OK,
            &api::DeleteDocumentsResponse {
                deleted: ids.len() as u64,
                ids,
            },
        )),
        _ => Err(unexpected()),
    }
}

async fn search(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Option<Extension<RequestId>>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    let started = Instant::now();
    let request = api::from_json::<api::SearchRequest>(&raw)?;
    let (mut found, _) = run_search(&caller, library.clone(), &request).await?;
    let shape = search_shape(SEARCH_ROUTE, &library, &request, &id, found.hits.len());
    found.took_ms = started.elapsed().as_secs_f64() * 1e3;
    let reply = json(StatusCode::OK, &found);
    finish_search(&caller, shape, started.elapsed()).await;
    Ok(reply)
}

/// The matched route of [`search`] (for the slow-query log).
const SEARCH_ROUTE: &str = "/v1/libraries/{lib}/search";

/// Runs a search; returns the response and the time the engine took.
pub(crate) async fn run_search(
    caller: &Caller,
    library: String,
    request: &api::SearchRequest,
) -> Result<(api::SearchResponse, std::time::Duration), ApiError> {
    let started = Instant::now();
    let query = EngineQuery::Search {
        library,
        request: request.clone(),
    };
    match caller.tenant.query(&query).await? {
        QueryResponse::Search(found) => Ok((found, started.elapsed())),
        _ => Err(unexpected()),
    }
}

/// The logged shape of a search (see [`crate::telemetry::QueryShape`]).
pub(crate) fn search_shape<'a>(
    route: &'a str,
    library: &'a str,
    request: &'a api::SearchRequest,
    id: &'a Option<Extension<RequestId>>,
    results: usize,
) -> QueryShape<'a> {
    let mode = crate::metrics::search_mode(request);
    let fused = mode == "hybrid" || request.rerank.is_some();
    let candidates = request.candidates.unwrap_or(if fused {
        request.k.clamp(100, api::MAX_K)
    } else {
        request.k
    });
    QueryShape {
        route,
        library,
        mode,
        index: "-",
        k: request.k,
        candidates,
        filter: request.filter.as_ref().map(|f| &f.0),
        results,
        request_id: request_id(id),
    }
}

/// After a search has been answered: its latency metric (by mode and index kind) and
/// the slow-query log.
pub(crate) async fn finish_search(caller: &Caller, mut shape: QueryShape<'_>, took: Duration) {
    let index =
        crate::metrics::index_kind(&caller.tenant_name, &caller.tenant, shape.library).await;
    crate::metrics::metrics().search(shape.mode, index, took);
    shape.index = index;
    crate::telemetry::slow_query(&shape, took);
}

/// The request id set by [`crate::metrics::track`] (`-` without it).
pub(crate) fn request_id(id: &Option<Extension<RequestId>>) -> &str {
    id.as_ref()
        .map_or("-", |Extension(RequestId(id))| id.as_str())
}

async fn snapshot(
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
) -> Reply {
    let library = path(lib)?;
    if api::validate_library_name(&library).is_err() {
        return Err(arrwdb_core::Error::LibraryNotFound(library).into());
    }
    let bytes = caller.tenant.snapshot(&library).await?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

async fn rebuild(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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
    let outcome = write_one(&caller, &library, command).await;
    crate::metrics::forget_index_kind(&caller.tenant_name, &library);
    match outcome? {
        Outcome::IndexRebuilt(info) => Ok(json(StatusCode::OK, &info)),
        _ => Err(unexpected()),
    }
}

async fn optimize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let library = path(lib)?;
    let raw = body(raw, state.max_body_bytes)?;
    api::OptimizeRequest::from_body(&raw)?;
    let command = Command::Optimize {
        library: library.clone(),
    };
    match write_one(&caller, &library, command).await? {
        Outcome::Optimized(info) => Ok(json(StatusCode::OK, &info)),
        _ => Err(unexpected()),
    }
}
