//! NDJSON streaming: `POST /v1/libraries/{lib}/documents/stream` ingests one document
//! per line from a body of any size, and `POST /v1/libraries/{lib}/search/stream`
//! returns hits one per line.
//!
//! Key choices:
//! - The request body is read chunk by chunk and cut into lines; at most one line
//!   (capped at the server's body limit) and one batch of documents are held at a
//!   time, so memory does not grow with the body. Batches go through the tenant's
//!   group commit like any other write, so every acknowledged line is durable.
//! - The per-line results are spooled to an anonymous temporary file and streamed back
//!   once the body is consumed. Answering while the body is still arriving would
//!   deadlock clients that send the whole body before they read (most HTTP/1.1
//!   clients), and keeping the results in memory would grow with the body.
//! - A line that is blank is skipped; a line that fails gets `{"line", "error"}` and
//!   the stream carries on. Lines are numbered from 1.

use std::io::{Seek as _, SeekFrom, Write as _};
use std::time::Instant;

use arrwdb_core::api::{self, BatchItemResult};
use arrwdb_core::{Command, Outcome, Query, QueryResponse};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt as _;
use serde::Serialize;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::AppState;

/// The route of [`search_stream`] (for the slow-query log).
const SEARCH_STREAM_ROUTE: &str = "/v1/libraries/{lib}/search/stream";

/// Routes whose bodies may exceed the body limit (they are read incrementally).
pub const UNLIMITED_ROUTES: &[&str] = &["/v1/libraries/{lib}/documents/stream"];

/// Documents per write batch.
const BATCH_DOCUMENTS: usize = 256;
/// Bytes of document lines per write batch.
const BATCH_BYTES: usize = 4 << 20;

/// One line of the ingestion response.
#[derive(Debug, Serialize)]
struct LineResult {
    line: u64,
    #[serde(flatten)]
    result: BatchItemResult,
}

/// The response's trailer line.
#[derive(Debug, Serialize)]
struct Summary {
    done: bool,
    lines: u64,
    upserted: u64,
    failed: u64,
    took_ms: f64,
}

fn io_error(e: std::io::Error) -> ApiError {
    ApiError::internal(format!("cannot spool the stream's results: {e}"))
}

/// Writes results to the spool file, counting them.
struct Spool {
    file: std::io::BufWriter<std::fs::File>,
    upserted: u64,
    failed: u64,
}

impl Spool {
    fn push(&mut self, line: u64, result: BatchItemResult) -> Result<(), ApiError> {
        match result {
            BatchItemResult::Ok(_) => self.upserted += 1,
            BatchItemResult::Err(_) => self.failed += 1,
        }
        let mut bytes = api::to_json(&LineResult { line, result });
        bytes.push(b'\n');
        self.file.write_all(&bytes).map_err(io_error)
    }
}

/// A batch of parsed lines waiting for their write.
#[derive(Default)]
struct Batch {
    lines: Vec<u64>,
    commands: Vec<Command>,
    bytes: usize,
}

async fn flush(
    caller: &Caller,
    library: &str,
    batch: &mut Batch,
    spool: &mut Spool,
) -> Result<(), ApiError> {
    if batch.commands.is_empty() {
        return Ok(());
    }
    let lines = std::mem::take(&mut batch.lines);
    let commands = std::mem::take(&mut batch.commands);
    batch.bytes = 0;
    match caller.tenant.write(library, commands).await {
        Ok(outcomes) => {
            for (line, outcome) in lines.into_iter().zip(outcomes) {
                let result = match outcome {
                    Ok(Outcome::DocumentUpserted(done)) => BatchItemResult::Ok(done),
                    Ok(_) => BatchItemResult::Err(
                        ApiError::internal("the engine answered with an unexpected message").body,
                    ),
                    Err(e) => BatchItemResult::Err(e.body),
                };
                spool.push(line, result)?;
            }
        }
        Err(e) => {
            for line in lines {
                spool.push(line, BatchItemResult::Err(e.body.clone()))?;
            }
        }
    }
    Ok(())
}

fn parse_line(library: &str, text: &[u8]) -> Result<Command, ApiError> {
    let request = api::from_json::<api::UpsertDocumentRequest>(text)?;
    let id = request
        .id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    Ok(Command::UpsertDocument {
        library: library.into(),
        document: request.into_document(id),
    })
}

async fn take_line(
    caller: &Caller,
    library: &str,
    number: u64,
    text: &[u8],
    batch: &mut Batch,
    spool: &mut Spool,
) -> Result<(), ApiError> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match parse_line(library, text) {
        Ok(command) => {
            batch.lines.push(number);
            batch.commands.push(command);
            batch.bytes += text.len();
            if batch.commands.len() >= BATCH_DOCUMENTS || batch.bytes >= BATCH_BYTES {
                flush(caller, library, batch, spool).await?;
            }
            Ok(())
        }
        Err(e) => spool.push(number, BatchItemResult::Err(e.body)),
    }
}

/// Reads and drops what a client is still sending, up to [`DRAIN_BYTES`] or
/// [`DRAIN_TIME`], before an early error answer: a client that is mid-way through
/// writing a small body otherwise gets a broken pipe instead of the answer when the
/// connection closes under it. A larger body is cut off, as before.
async fn drain_briefly(body: Body) {
    let mut chunks = body.into_data_stream();
    let mut read = 0usize;
    let drain = async {
        while let Some(Ok(chunk)) = chunks.next().await {
            read += chunk.len();
            if read >= DRAIN_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
}

/// See [`drain_briefly`].
const DRAIN_BYTES: usize = 1 << 20;
/// See [`drain_briefly`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// `POST /v1/libraries/{lib}/documents/stream`: one document (the body of a single
/// upsert) per line; answers one result line per input line, then a summary line.
pub async fn upsert_stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    lib: Result<Path<String>, PathRejection>,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let library = lib
        .map(|Path(p)| p)
        .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
    // An unknown library fails the request before the body is processed.
    match caller
        .tenant
        .query(&Query::GetLibrary {
            library: library.clone(),
        })
        .await
    {
        Ok(QueryResponse::Library(_)) => {}
        Ok(_) => return Err(ApiError::internal("unexpected query response")),
        Err(e) => {
            drain_briefly(body).await;
            return Err(e);
        }
    }
    let max_line = state.max_body_bytes;
    let file = tempfile_in_tmp()?;
    let mut spool = Spool {
        file: std::io::BufWriter::new(file),
        upserted: 0,
        failed: 0,
    };
    let mut batch = Batch::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut skipping = false; // inside a line that is over the limit
    let mut number: u64 = 0;
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("cannot read the body: {e}")))?;
        let mut rest: &[u8] = &chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            number += 1;
            if skipping {
                skipping = false;
                pending.clear();
                spool.push(number, too_long(max_line))?;
            } else if pending.is_empty() {
                take_line(
                    &caller,
                    &library,
                    number,
                    &rest[..end],
                    &mut batch,
                    &mut spool,
                )
                .await?;
            } else {
                pending.extend_from_slice(&rest[..end]);
                let line = std::mem::take(&mut pending);
                take_line(&caller, &library, number, &line, &mut batch, &mut spool).await?;
            }
            rest = &rest[end + 1..];
        }
        if !skipping {
            pending.extend_from_slice(rest);
            if pending.len() > max_line {
                skipping = true;
                pending = Vec::new();
            }
        }
    }
    if skipping || !pending.is_empty() {
        number += 1;
        if skipping {
            spool.push(number, too_long(max_line))?;
        } else {
            let line = std::mem::take(&mut pending);
            take_line(&caller, &library, number, &line, &mut batch, &mut spool).await?;
        }
    }
    flush(&caller, &library, &mut batch, &mut spool).await?;
    let summary = Summary {
        done: true,
        lines: number,
        upserted: spool.upserted,
        failed: spool.failed,
        took_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    let mut bytes = api::to_json(&summary);
    bytes.push(b'\n');
    spool.file.write_all(&bytes).map_err(io_error)?;
    let mut file = spool
        .file
        .into_inner()
        .map_err(|e| io_error(e.into_error()))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error)?;
    let reader = tokio::fs::File::from_std(file);
    let stream = tokio_util::io::ReaderStream::new(reader);
    Ok(ndjson(Body::from_stream(stream)))
}

fn too_long(limit: usize) -> BatchItemResult {
    BatchItemResult::Err(
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid",
            format!("line is longer than the limit of {limit} bytes"),
        )
        .body,
    )
}

/// An unnamed temporary file (removed by the OS when closed).
fn tempfile_in_tmp() -> Result<std::fs::File, ApiError> {
    tempfile::tempfile().map_err(io_error)
}

fn ndjson(body: Body) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        body,
    )
        .into_response()
}

/// `POST /v1/libraries/{lib}/search/stream`: the body of a search; answers each hit as
/// one line, best first, then `{"done":true,"hits":n,"took_ms":…}`.
pub async fn search_stream(
    Extension(caller): Extension<Caller>,
    id: Option<Extension<crate::metrics::RequestId>>,
    lib: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let library = lib
        .map(|Path(p)| p)
        .map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
    let raw = raw
        .map_err(|rejection| ApiError::new(rejection.status(), "invalid", rejection.body_text()))?;
    let request = api::from_json::<api::SearchRequest>(&raw)?;
    let (found, _) = crate::http::run_search(&caller, library.clone(), &request).await?;
    let took = started.elapsed();
    let count = found.hits.len();
    let shape = crate::http::search_shape(SEARCH_STREAM_ROUTE, &library, &request, &id, count);
    crate::http::finish_search(&caller, shape, took).await;
    let trailer =
        serde_json::json!({"done": true, "hits": count, "took_ms": took.as_secs_f64() * 1e3});
    let lines = futures::stream::iter(found.hits)
        .map(|hit| api::to_json(&hit))
        .chain(futures::stream::once(async move { api::to_json(&trailer) }))
        .map(|mut line| {
            line.push(b'\n');
            Ok::<_, std::convert::Infallible>(Bytes::from(line))
        });
    Ok(ndjson(Body::from_stream(lines)))
}
