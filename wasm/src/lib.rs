//! # arrwdb-wasm: the `arrwdb` npm package
//!
//! This crate exists so that a browser tab or a Node process runs the *same* engine as
//! the edge worker and the host: it is a thin wasm-bindgen adapter over
//! [`arrwdb_core::Engine`] and adds nothing but what JavaScript needs.
//!
//! - Requests are plain JS objects of the JSON API's shapes ([`arrwdb_core::api`]), parsed
//!   with serde-wasm-bindgen into the core's own types, so validation and defaults are
//!   written once. Vectors may be `Float32Array`s; those are copied into wasm memory in
//!   one `Float32Array::to_vec()` instead of being walked element by element.
//! - Every mutation goes through [`Engine::prepare`] then [`Engine::apply`], the state
//!   machine the other runtimes drive, so snapshots exported here load everywhere.
//! - Responses are plain JS objects equal to `JSON.parse` of the host's HTTP bodies,
//!   except that stored vectors come back as `Float32Array`s.
//! - Errors are thrown as `Error`s named `ArrwdbError` whose `message` is the core
//!   error's text (the same text the host and edge send in `{"error":{"message"}}`) and
//!   whose `kind` is [`ErrorKind::as_str`] (`invalid`, `not_found`, `conflict`, `internal`).
//!
//! The engine has no clock and no randomness: this adapter supplies `took_ms` from
//! `performance.now()` and missing document ids from `crypto.randomUUID()` before the
//! command is prepared, so the resulting WAL record replays identically anywhere.

use arrwdb_core::api::{SearchRequest, UpsertDocumentRequest};
use arrwdb_core::{Command, Engine, Error, Outcome, Query, QueryResponse};
use js_sys::{Array, Float32Array, Object, Reflect};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** Any JSON value: metadata is arbitrary JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** How vectors are compared. Scores are always "higher is closer". */
export type Metric = "cosine" | "dot" | "l2";

/** Index kind and its parameters; missing parameters take their defaults. */
export type IndexConfig =
  | { type: "flat" }
  | { type: "hnsw"; m?: number; ef_construction?: number; ef_search?: number; seed?: number }
  | { type: "ivf"; nlist?: number; nprobe?: number; train_size?: number; pq_m?: number; seed?: number }
  | { type: "kdtree"; leaf_size?: number }
  | { type: "lsh"; num_tables?: number; hash_size?: number; seed?: number };

/** Options of `rebuild` (the body of `POST /v1/libraries/{lib}/rebuild`). */
export interface RebuildOptions {
  /** The new index; the library is re-indexed over every live chunk. */
  index: IndexConfig;
}

/** What the caller should do about an error: fix the request, look elsewhere, re-read state, or report a bug. */
export type ErrorKind = "invalid" | "not_found" | "conflict" | "internal";

/** Every method throws this on failure; `message` is the same text the HTTP API returns. */
export interface ArrwdbError extends Error {
  name: "ArrwdbError";
  kind: ErrorKind;
}

/** Options of `createLibrary` (the body of `POST /v1/libraries`). */
export interface CreateLibraryOptions {
  /** 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`. */
  name: string;
  /** Vector dimension, 1 to 4096. */
  dimension: number;
  /** Defaults to `"cosine"`. */
  metric?: Metric;
  /** Defaults to `{ type: "flat" }`. */
  index?: IndexConfig;
  /** Compact codes scanned before exact rescoring (flat and exact scans only).
   * Defaults to `{ type: "none" }`; `oversample` 1 to 64, default 4. */
  quantization?: Quantization;
}

/** Quantization of a library's exact scan. */
export type Quantization =
  | { type: "none" }
  | { type: "sq8"; oversample?: number }
  | { type: "binary"; oversample?: number };

/** A library and its statistics. */
export interface LibraryInfo {
  id: string;
  name: string;
  dimension: number;
  metric: Metric;
  index: IndexConfig;
  quantization: Quantization;
  documents: number;
  chunks: number;
  /** Sequence number of the last applied WAL record. */
  seq: number;
}

/** One chunk of a document to upsert. */
export interface ChunkInput {
  /** At most 512 bytes; defaults to `"{documentId}#{position}"`. */
  id?: string;
  /** At most 64 KiB of UTF-8. */
  text?: string;
  /** Exactly `dimension` finite numbers. A `Float32Array` is copied in one step. */
  embedding: Float32Array | number[];
  metadata?: Json;
}

/** A document to insert or replace as a whole (the body of `POST /v1/libraries/{lib}/documents`). */
export interface DocumentInput {
  /** At most 512 bytes; defaults to `crypto.randomUUID()`. */
  id?: string;
  metadata?: Json;
  /** At least one chunk. */
  chunks: ChunkInput[];
}

/** Ids assigned by an upsert. */
export interface UpsertResult {
  id: string;
  chunk_ids: string[];
}

/** A stored chunk. */
export interface StoredChunk {
  id: string;
  text: string;
  embedding: Float32Array;
  metadata: Json;
}

/** A stored document, as returned by `getDocument`. */
export interface StoredDocument {
  id: string;
  metadata: Json;
  chunks: StoredChunk[];
}

/** A search (the body of `POST /v1/libraries/{lib}/search`). */
export interface SearchRequest {
  /** The query vector; a `Float32Array` is copied in one step. */
  vector?: Float32Array | number[];
  text?: string;
  /** Number of hits, 1 to 1000; defaults to 10. */
  k?: number;
  filter?: Json;
  mode?: "vector" | "keyword" | "hybrid";
  fusion?: Json;
  rerank?: Json;
  params?: { ef?: number; nprobe?: number };
  /** What hits carry besides ids and score; defaults to `["text", "metadata"]`. */
  include?: ("text" | "metadata" | "vector")[];
  /** Only hits scoring at least this much. */
  min_score?: number;
  /** Only hits at most this far (cosine and l2 libraries). */
  distance_threshold?: number;
}

/** One search result. */
export interface Hit {
  chunk_id: string;
  document_id: string;
  /** Higher is closer, whatever the metric. */
  score: number;
  /** The metric's distance where it has one (cosine: `1 - score`, l2: euclidean). */
  distance?: number;
  text?: string;
  metadata?: Json;
  vector?: Float32Array;
}

/** The answer to a search, best hit first. */
export interface SearchResponse {
  hits: Hit[];
  took_ms: number;
}
"#;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_namespace = ["globalThis", "crypto"], js_name = randomUUID)]
    fn random_uuid() -> Result<String, JsValue>;

    #[wasm_bindgen(catch, js_namespace = ["globalThis", "performance"], js_name = now)]
    fn performance_now() -> Result<f64, JsValue>;
}

/// A JS-facing result: the value, or the `ArrwdbError` to throw.
type JsResult<T> = Result<T, js_sys::Error>;

/// An in-memory arrwDB engine holding any number of libraries.
///
/// ```js
/// import init, { Database } from "arrwdb";
/// await init();
/// const db = new Database();
/// db.createLibrary({ name: "colors", dimension: 3, metric: "cosine" });
/// db.upsert("colors", { id: "red", chunks: [{ text: "red", embedding: new Float32Array([1, 0, 0]) }] });
/// const { hits } = db.search("colors", { vector: [0.9, 0.1, 0], k: 1 });
/// ```
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct Database {
    engine: Engine,
}

#[wasm_bindgen]
impl Database {
    /// An empty database.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Database {
        Database::default()
    }

    /// Creates a library. Throws `invalid` for a bad name, dimension or option, and
    /// `conflict` if the library exists.
    #[wasm_bindgen(js_name = createLibrary, unchecked_return_type = "LibraryInfo")]
    pub fn create_library(
        &mut self,
        #[wasm_bindgen(unchecked_param_type = "CreateLibraryOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let run = || {
            let request: arrwdb_core::api::CreateLibraryRequest =
                parse(options, "library options")?;
            match self.execute(Command::CreateLibrary(request.into_config()?))? {
                Outcome::LibraryCreated(info) => to_js(&info),
                other => Err(unexpected(&other)),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// All libraries, ordered by name.
    #[wasm_bindgen(js_name = listLibraries, unchecked_return_type = "LibraryInfo[]")]
    pub fn list_libraries(&self) -> JsResult<JsValue> {
        let run = || match self.engine.query(&Query::ListLibraries)? {
            QueryResponse::Libraries(list) => to_js(&list.libraries),
            other => Err(unexpected(&other)),
        };
        run().map_err(|e| js_error(&e))
    }

    /// One library and its statistics. Throws `not_found` for an unknown library.
    #[wasm_bindgen(js_name = getLibrary, unchecked_return_type = "LibraryInfo")]
    pub fn get_library(&self, library: &str) -> JsResult<JsValue> {
        let run = || match self.engine.query(&Query::GetLibrary {
            library: library.into(),
        })? {
            QueryResponse::Library(info) => to_js(&info),
            other => Err(unexpected(&other)),
        };
        run().map_err(|e| js_error(&e))
    }

    /// Deletes a library and everything in it. Throws `not_found` for an unknown library.
    #[wasm_bindgen(js_name = deleteLibrary)]
    pub fn delete_library(&mut self, library: &str) -> JsResult<()> {
        self.execute(Command::DeleteLibrary {
            library: library.into(),
        })
        .map(drop)
        .map_err(|e| js_error(&e))
    }

    /// Inserts or replaces a whole document. A missing document id is generated with
    /// `crypto.randomUUID()`, a missing chunk id is `{documentId}#{position}`.
    ///
    /// Throws `invalid` for a malformed document (wrong dimension, non-finite values, no
    /// chunks, bad ids), `not_found` for an unknown library, `conflict` when a chunk id
    /// belongs to another document.
    #[wasm_bindgen(unchecked_return_type = "UpsertResult")]
    pub fn upsert(
        &mut self,
        library: &str,
        #[wasm_bindgen(unchecked_param_type = "DocumentInput")] document: JsValue,
    ) -> JsResult<JsValue> {
        let run = || {
            let request = parse_document(document)?;
            let id = match &request.id {
                Some(id) => id.clone(),
                None => random_uuid().map_err(|_| {
                    Error::Internal(
                        "crypto.randomUUID() is unavailable here (it needs a secure context); \
                         give the document an `id`"
                            .into(),
                    )
                })?,
            };
            let command = Command::UpsertDocument {
                library: library.into(),
                document: request.into_document(id),
            };
            match self.execute(command)? {
                Outcome::DocumentUpserted(ids) => to_js(&ids),
                other => Err(unexpected(&other)),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// A stored document with its chunks; embeddings come back as `Float32Array`s.
    /// Throws `not_found` for an unknown library or document.
    #[wasm_bindgen(js_name = getDocument, unchecked_return_type = "StoredDocument")]
    pub fn get_document(&self, library: &str, id: &str) -> JsResult<JsValue> {
        let run = || {
            let query = Query::GetDocument {
                library: library.into(),
                document: id.into(),
            };
            let QueryResponse::Document(mut document) = self.engine.query(&query)? else {
                return Err(Error::Internal(
                    "unexpected response to a document read".into(),
                ));
            };
            let embeddings: Vec<Vec<f32>> = document
                .chunks
                .iter_mut()
                .map(|c| core::mem::take(&mut c.embedding))
                .collect();
            let out = to_js(&document)?;
            let chunks = get(&out, "chunks")?;
            for (i, embedding) in embeddings.iter().enumerate() {
                set(
                    &get(&chunks, i as u32)?,
                    "embedding",
                    &Float32Array::from(&embedding[..]),
                )?;
            }
            Ok(out)
        };
        run().map_err(|e| js_error(&e))
    }

    /// Deletes a document and its chunks. Throws `not_found` for an unknown library or
    /// document.
    #[wasm_bindgen(js_name = deleteDocument)]
    pub fn delete_document(&mut self, library: &str, id: &str) -> JsResult<()> {
        self.execute(Command::DeleteDocument {
            library: library.into(),
            document: id.into(),
        })
        .map(drop)
        .map_err(|e| js_error(&e))
    }

    /// The `k` nearest chunks to `request.vector`, best first. Throws `invalid` for a bad
    /// request (wrong dimension, non-finite values, bad `k`, unsupported options) and
    /// `not_found` for an unknown library.
    #[wasm_bindgen(unchecked_return_type = "SearchResponse")]
    pub fn search(
        &self,
        library: &str,
        #[wasm_bindgen(unchecked_param_type = "SearchRequest")] request: JsValue,
    ) -> JsResult<JsValue> {
        let run = || {
            let started = now();
            let request = parse_search(request)?;
            let query = Query::Search {
                library: library.into(),
                request,
            };
            let QueryResponse::Search(mut response) = self.engine.query(&query)? else {
                return Err(Error::Internal("unexpected response to a search".into()));
            };
            let vectors: Vec<Option<Vec<f32>>> =
                response.hits.iter_mut().map(|h| h.vector.take()).collect();
            response.took_ms = now() - started;
            let out = to_js(&response)?;
            let hits = get(&out, "hits")?;
            for (i, vector) in vectors.iter().enumerate() {
                if let Some(vector) = vector {
                    set(
                        &get(&hits, i as u32)?,
                        "vector",
                        &Float32Array::from(&vector[..]),
                    )?;
                }
            }
            Ok(out)
        };
        run().map_err(|e| js_error(&e))
    }

    /// Replaces the library's index with `options.index` and rebuilds it over every
    /// live chunk. Throws `invalid` for bad index parameters or options and
    /// `not_found` for an unknown library.
    #[wasm_bindgen(unchecked_return_type = "LibraryInfo")]
    pub fn rebuild(
        &mut self,
        library: &str,
        #[wasm_bindgen(unchecked_param_type = "RebuildOptions")] options: JsValue,
    ) -> JsResult<JsValue> {
        let run = || {
            let request: arrwdb_core::api::RebuildRequest = parse(options, "rebuild options")?;
            let command = Command::RebuildIndex {
                library: library.into(),
                index: request.index,
            };
            match self.execute(command)? {
                Outcome::IndexRebuilt(info) => to_js(&info),
                other => Err(unexpected(&other)),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// Compacts the space left by deleted chunks and rebuilds the index; search
    /// results of an exact index are unchanged. Throws `not_found` for an unknown
    /// library.
    #[wasm_bindgen(unchecked_return_type = "LibraryInfo")]
    pub fn optimize(&mut self, library: &str) -> JsResult<JsValue> {
        let command = Command::Optimize {
            library: library.into(),
        };
        let outcome = self.execute(command).and_then(|outcome| match outcome {
            Outcome::Optimized(info) => to_js(&info),
            other => Err(unexpected(&other)),
        });
        outcome.map_err(|e| js_error(&e))
    }

    /// The library as snapshot bytes (`magic | version | postcard | crc32`), loadable by
    /// `importSnapshot` here and by every other runtime. Throws `not_found` for an
    /// unknown library.
    #[wasm_bindgen(js_name = exportSnapshot)]
    pub fn export_snapshot(&self, library: &str) -> JsResult<Vec<u8>> {
        self.engine.snapshot(library).map_err(|e| js_error(&e))
    }

    /// Loads a snapshot, replacing any library of the same name; returns the library's
    /// name. Throws `internal` for corrupt, truncated or unknown-version bytes, and then
    /// changes nothing.
    #[wasm_bindgen(js_name = importSnapshot)]
    pub fn import_snapshot(&mut self, bytes: &[u8]) -> JsResult<String> {
        self.engine.restore(bytes).map_err(|e| js_error(&e))
    }
}

impl Database {
    /// The write path shared by every runtime: validate into a record, then apply it.
    fn execute(&mut self, command: Command) -> Result<Outcome, Error> {
        let record = self.engine.prepare(command)?;
        self.engine.apply(&record)
    }
}

/// The thrown form of a core error: same message, plus `kind` and a recognisable name.
fn js_error(error: &Error) -> js_sys::Error {
    let js = js_sys::Error::new(&error.to_string());
    js.set_name("ArrwdbError");
    // Setting a property on a fresh, unfrozen object cannot fail.
    let _ = Reflect::set(
        &js,
        &JsValue::from_str("kind"),
        &JsValue::from_str(error.kind().as_str()),
    );
    js
}

fn unexpected(outcome: &impl core::fmt::Debug) -> Error {
    Error::Internal(format!("unexpected engine outcome {outcome:?}"))
}

/// Deserializes a request object into a core API type; any shape error (wrong type,
/// missing or unknown field) is an `invalid` error.
///
/// The object is read into a JSON value first: serde-wasm-bindgen reads a struct by
/// looking up its known fields only, so it would silently accept the unknown fields
/// that the API types deny (a misspelt `metric` must not become a cosine library).
fn parse<T: DeserializeOwned>(value: JsValue, what: &str) -> Result<T, Error> {
    let json: serde_json::Value = serde_wasm_bindgen::from_value(value).map_err(|e| {
        let e = JsValue::from(e);
        Error::Invalid(format!("invalid {what}: {}", js_message(&e)))
    })?;
    serde_json::from_value(json).map_err(|e| Error::Invalid(format!("invalid {what}: {e}")))
}

/// The message of a JS exception, for error texts.
fn js_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| "unknown JavaScript exception".into())
}

/// Serializes a response as plain JS objects, the same values `JSON.parse` would give
/// for the HTTP API's bodies.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, Error> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| Error::Internal(format!("cannot build the response: {e}")))
}

/// `object[key]`; a throwing getter is the caller's `invalid` input.
fn get(object: &JsValue, key: impl Into<JsValue>) -> Result<JsValue, Error> {
    Reflect::get(object, &key.into())
        .map_err(|e| Error::Invalid(format!("cannot read a property: {}", js_message(&e))))
}

/// `object[key] = value` on an object this module created.
fn set(object: &JsValue, key: &str, value: &JsValue) -> Result<(), Error> {
    Reflect::set(object, &JsValue::from_str(key), value)
        .map(drop)
        .map_err(|e| Error::Internal(format!("cannot set `{key}`: {}", js_message(&e))))
}

/// If `object.field` is a `Float32Array`, returns a shallow copy of `object` whose
/// `field` is an empty array (for serde to parse cheaply) and the vector, copied once.
fn take_f32_array(object: &JsValue, field: &str) -> Result<Option<(JsValue, Vec<f32>)>, Error> {
    if !object.is_object() {
        return Ok(None);
    }
    let Some(array) = get(object, field)?.dyn_into::<Float32Array>().ok() else {
        return Ok(None);
    };
    let copy = Object::assign(&Object::new(), object.unchecked_ref());
    set(&copy, field, &Array::new())?;
    Ok(Some((copy.into(), array.to_vec())))
}

fn parse_document(document: JsValue) -> Result<UpsertDocumentRequest, Error> {
    let mut embeddings = Vec::new();
    let mut document = document;
    if document.is_object()
        && let Ok(chunks) = get(&document, "chunks")?.dyn_into::<Array>()
    {
        let copies = Array::new_with_length(chunks.length());
        for (i, chunk) in chunks.iter().enumerate() {
            match take_f32_array(&chunk, "embedding")? {
                Some((copy, embedding)) => {
                    copies.set(i as u32, copy);
                    embeddings.push((i, embedding));
                }
                None => copies.set(i as u32, chunk),
            }
        }
        // Only documents with typed-array embeddings need the copy.
        if !embeddings.is_empty() {
            let copy = Object::assign(&Object::new(), document.unchecked_ref());
            set(&copy, "chunks", &copies)?;
            document = copy.into();
        }
    }
    let mut request: UpsertDocumentRequest = parse(document, "document")?;
    for (i, embedding) in embeddings {
        if let Some(chunk) = request.chunks.get_mut(i) {
            chunk.embedding = embedding;
        }
    }
    Ok(request)
}

fn parse_search(request: JsValue) -> Result<SearchRequest, Error> {
    match take_f32_array(&request, "vector")? {
        Some((copy, vector)) => {
            let mut request: SearchRequest = parse(copy, "search request")?;
            request.vector = Some(vector);
            Ok(request)
        }
        None => parse(request, "search request"),
    }
}

/// Milliseconds from a monotonic clock where the host has one.
fn now() -> f64 {
    performance_now().unwrap_or_else(|_| js_sys::Date::now())
}
