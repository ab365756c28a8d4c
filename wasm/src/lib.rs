//! # arrwdb-wasm: the engine inside the `arrwdb` npm package
//!
//! This crate exists so that a browser tab, a Web Worker or a Node process runs the
//! *same* engine as the edge worker and the host. It exports one low-level class,
//! [`RawEngine`], that the package's hand-written JavaScript (`wasm/npm/lib/`) wraps
//! into the public `Database`, `PersistentDatabase`, `Replica` and `WorkerDatabase`
//! classes. Everything asynchronous (IndexedDB, HTTP, workers) lives in that JavaScript;
//! this crate stays synchronous and small.
//!
//! Key choices:
//! - Requests and responses cross the boundary as JSON text (`JSON.stringify` in, a
//!   `serde_json` string out, `JSON.parse` back), parsed by the core's own serde types,
//!   so validation, defaults and error messages are the HTTP API's. Text beats walking
//!   JS objects with serde-wasm-bindgen: these objects are small (vectors are not in
//!   the text), it honours `deny_unknown_fields`, and it instantiates one deserializer
//!   per type instead of two (JS value → `serde_json::Value` → type), which keeps the
//!   `.wasm` smaller.
//! - Vectors never go through JSON: query vectors, `Float32Array` embeddings and batch
//!   matrices arrive as `&[f32]`, one `memcpy` into wasm memory; the vectors of search
//!   hits and of a stored document leave as one `Float32Array` beside the JSON text.
//! - Every mutation goes through [`Engine::prepare`] then [`Engine::apply`]. With
//!   logging on, the applied [`WalRecord`]s are kept until [`RawEngine::take_log`] hands
//!   them to JavaScript as framed WAL segments (`arrwdb_core::codec`), the format the
//!   host writes to object storage; [`RawEngine::apply_segment`] replays them. That is
//!   the whole persistence and replication contract between Rust and JavaScript.
//! - Errors are thrown as `Error`s named `ArrwdbError` with a `kind`; the JavaScript
//!   layer turns them into instances of its `ArrwdbError` class.
//!
//! The engine has no clock and no randomness: the JavaScript layer supplies generated
//! document ids (`crypto.randomUUID()`) and `took_ms` before and after the call.

use std::collections::BTreeSet;

use arrwdb_core::api::{self, SearchRequest, UpsertDocumentRequest};
use arrwdb_core::codec;
use arrwdb_core::{ChunkData, DocumentData, Metadata};
use arrwdb_core::{Command, Engine, Error, Outcome, Query, QueryResponse, WalOp, WalRecord};
use js_sys::{Array, Reflect, Uint8Array};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

/// A JS-facing result: the value, or the `ArrwdbError` to throw.
type JsResult<T> = Result<T, js_sys::Error>;

/// Marks, in `upsert`'s `lengths`, a chunk whose embedding is in the JSON text.
const EMBEDDING_IN_JSON: u32 = u32::MAX;

/// The engine, with an optional log of applied records. Not part of the public
/// package API: the JavaScript classes wrap it.
#[wasm_bindgen]
#[derive(Debug, Default)]
pub struct RawEngine {
    engine: Engine,
    /// Whether applied records are kept for [`RawEngine::take_log`].
    logging: bool,
    log: Vec<WalRecord>,
}

#[wasm_bindgen]
impl RawEngine {
    /// An empty engine; with `logging`, every applied record is kept for `takeLog`.
    #[wasm_bindgen(constructor)]
    pub fn new(logging: bool) -> RawEngine {
        RawEngine {
            logging,
            ..RawEngine::default()
        }
    }

    /// `createLibrary(optionsJson) -> LibraryInfo JSON`.
    #[wasm_bindgen(js_name = createLibrary)]
    pub fn create_library(&mut self, options: &str) -> JsResult<String> {
        let mut run = || {
            let request: api::CreateLibraryRequest = parse(options, "library options")?;
            match self.execute(Command::CreateLibrary(request.into_config()?))? {
                Outcome::LibraryCreated(info) => json(&info),
                _ => Err(unexpected()),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// All libraries as JSON, ordered by name.
    #[wasm_bindgen(js_name = listLibraries)]
    pub fn list_libraries(&self) -> JsResult<String> {
        match self.engine.query(&Query::ListLibraries) {
            Ok(QueryResponse::Libraries(list)) => json(&list.libraries),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(e),
        }
        .map_err(|e| js_error(&e))
    }

    /// One library and its statistics, as JSON.
    #[wasm_bindgen(js_name = getLibrary)]
    pub fn get_library(&self, library: &str) -> JsResult<String> {
        let query = Query::GetLibrary {
            library: library.into(),
        };
        match self.engine.query(&query) {
            Ok(QueryResponse::Library(info)) => json(&info),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(e),
        }
        .map_err(|e| js_error(&e))
    }

    /// Sequence number of the library's last applied record, 0 if there is no such
    /// library.
    pub fn seq(&self, library: &str) -> f64 {
        self.engine.library(library).map_or(0.0, |l| l.seq() as f64)
    }

    /// Deletes a library.
    #[wasm_bindgen(js_name = deleteLibrary)]
    pub fn delete_library(&mut self, library: &str) -> JsResult<()> {
        self.execute(Command::DeleteLibrary {
            library: library.into(),
        })
        .map(drop)
        .map_err(|e| js_error(&e))
    }

    /// Upserts one document given as JSON text, with `id` filled in when the JSON has
    /// none. `lengths[i]` is the length of chunk `i`'s embedding inside `vectors` (the
    /// chunk's `Float32Array`s, concatenated), or `u32::MAX` when the chunk's embedding
    /// is in the JSON. Returns the `UpsertResult` JSON.
    pub fn upsert(
        &mut self,
        library: &str,
        document: &str,
        id: &str,
        vectors: &[f32],
        lengths: &[u32],
    ) -> JsResult<String> {
        let mut run = || {
            let mut request: UpsertDocumentRequest = parse(document, "document")?;
            let mut offset = 0usize;
            for (chunk, &length) in request.chunks.iter_mut().zip(lengths) {
                if length == EMBEDDING_IN_JSON {
                    continue;
                }
                let end = offset.saturating_add(length as usize);
                let embedding = vectors
                    .get(offset..end)
                    .ok_or_else(|| Error::Internal("embedding lengths exceed the data".into()))?;
                chunk.embedding = embedding.to_vec();
                offset = end;
            }
            let id = request.id.clone().unwrap_or_else(|| id.into());
            let command = Command::UpsertDocument {
                library: library.into(),
                document: request.into_document(id),
            };
            match self.execute(command)? {
                Outcome::DocumentUpserted(ids) => json(&ids),
                _ => Err(unexpected()),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// Upserts `ids.length` single-chunk documents at once: document `ids[i]` gets one
    /// chunk (id `{ids[i]}#0`) with the embedding `vectors[i*dim..(i+1)*dim]`, the text
    /// `texts[i]` and the chunk metadata `metadata[i]` (`texts` and `metadata` are JSON
    /// arrays or empty strings for none). Every document is validated before any is
    /// applied, so a bad batch changes nothing. Returns the new sequence number.
    #[wasm_bindgen(js_name = upsertBatch)]
    pub fn upsert_batch(
        &mut self,
        library: &str,
        ids: &str,
        vectors: &[f32],
        texts: &str,
        metadata: &str,
    ) -> JsResult<f64> {
        let records = self.prepare_batch(library, ids, vectors, texts, metadata)?;
        self.apply_prepared(library, records)
            .map_err(|e| js_error(&e))
    }

    /// A stored document: `[json, embeddings]`, the `DocumentResponse` JSON with every
    /// chunk's `embedding` empty, and the chunks' embeddings one after another in one
    /// `Float32Array` (never through JSON).
    #[wasm_bindgen(js_name = getDocument)]
    pub fn get_document(&self, library: &str, id: &str) -> JsResult<Array> {
        let query = Query::GetDocument {
            library: library.into(),
            document: id.into(),
        };
        match self.engine.query(&query) {
            Ok(QueryResponse::Document(mut document)) => {
                let vectors = concat(
                    document
                        .chunks
                        .iter_mut()
                        .map(|c| std::mem::take(&mut c.embedding)),
                );
                json(&document).map(|text| with_vectors(text, &vectors))
            }
            Ok(_) => Err(unexpected()),
            Err(e) => Err(e),
        }
        .map_err(|e| js_error(&e))
    }

    /// Deletes a document and its chunks.
    #[wasm_bindgen(js_name = deleteDocument)]
    pub fn delete_document(&mut self, library: &str, id: &str) -> JsResult<()> {
        self.execute(Command::DeleteDocument {
            library: library.into(),
            document: id.into(),
        })
        .map(drop)
        .map_err(|e| js_error(&e))
    }

    /// Deletes documents by id or by filter (`DeleteDocumentsRequest` JSON: exactly one
    /// of `ids` and `filter`), as one logged record. Returns the
    /// `DeleteDocumentsResponse` JSON (ids that did not exist are not listed).
    #[wasm_bindgen(js_name = deleteDocuments)]
    pub fn delete_documents(&mut self, library: &str, request: &str) -> JsResult<String> {
        let mut run = || {
            let request: api::DeleteDocumentsRequest = parse(request, "delete request")?;
            let command = Command::DeleteDocuments {
                library: library.into(),
                request,
            };
            match self.execute(command)? {
                Outcome::DocumentsDeleted { ids, .. } => json(&api::DeleteDocumentsResponse {
                    deleted: ids.len() as u64,
                    ids,
                }),
                _ => Err(unexpected()),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// One page of the library's documents (`ListDocumentsRequest` JSON: `cursor`,
    /// `limit`, `filter`); returns the `DocumentList` JSON.
    #[wasm_bindgen(js_name = listDocuments)]
    pub fn list_documents(&self, library: &str, request: &str) -> JsResult<String> {
        let run = || {
            let request: api::ListDocumentsRequest = parse(request, "list request")?;
            let query = Query::ListDocuments {
                library: library.into(),
                request,
            };
            match self.engine.query(&query)? {
                QueryResponse::Documents(list) => json(&list),
                _ => Err(unexpected()),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// Searches with a JSON request; `vector`, when given, replaces the request's.
    /// Returns `[json, vectors]`: the `SearchResponse` JSON (`took_ms` is the caller's
    /// to fill) without hit vectors, and, when the request includes `"vector"`, every
    /// hit's vector in hit order in one `Float32Array` (empty otherwise).
    pub fn search(
        &self,
        library: &str,
        request: &str,
        vector: Option<Vec<f32>>,
    ) -> JsResult<Array> {
        let run = || {
            let mut request: SearchRequest = parse(request, "search request")?;
            if vector.is_some() {
                request.vector = vector;
            }
            let query = Query::Search {
                library: library.into(),
                request,
            };
            match self.engine.query(&query)? {
                QueryResponse::Search(mut response) => {
                    // Every hit has its vector or none has (`include`); the JavaScript
                    // side splits the buffer evenly.
                    let vectors =
                        concat(response.hits.iter_mut().filter_map(|hit| hit.vector.take()));
                    json(&response).map(|text| with_vectors(text, &vectors))
                }
                _ => Err(unexpected()),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// Rebuilds the index with the JSON `RebuildOptions`; returns `LibraryInfo` JSON.
    pub fn rebuild(&mut self, library: &str, options: &str) -> JsResult<String> {
        let mut run = || {
            let request: api::RebuildRequest = parse(options, "rebuild options")?;
            let command = Command::RebuildIndex {
                library: library.into(),
                index: request.index,
            };
            match self.execute(command)? {
                Outcome::IndexRebuilt(info) => json(&info),
                _ => Err(unexpected()),
            }
        };
        run().map_err(|e| js_error(&e))
    }

    /// Compacts deleted space and rebuilds the index; returns `LibraryInfo` JSON.
    pub fn optimize(&mut self, library: &str) -> JsResult<String> {
        let command = Command::Optimize {
            library: library.into(),
        };
        match self.execute(command) {
            Ok(Outcome::Optimized(info)) => json(&info),
            Ok(_) => Err(unexpected()),
            Err(e) => Err(e),
        }
        .map_err(|e| js_error(&e))
    }

    /// The library as snapshot bytes (`magic | version | postcard | crc32`).
    #[wasm_bindgen(js_name = exportSnapshot)]
    pub fn export_snapshot(&self, library: &str) -> JsResult<Vec<u8>> {
        self.engine.snapshot(library).map_err(|e| js_error(&e))
    }

    /// Loads a snapshot, replacing any library of the same name; returns its name.
    /// Not logged: persistence stores the snapshot itself.
    #[wasm_bindgen(js_name = importSnapshot)]
    pub fn import_snapshot(&mut self, bytes: &[u8]) -> JsResult<String> {
        self.engine.restore(bytes).map_err(|e| js_error(&e))
    }

    /// Forgets a library without logging (before reloading it from storage).
    pub fn evict(&mut self, library: &str) -> bool {
        self.engine.evict(library)
    }

    /// Hands over the records applied since the last call, as WAL segments: one per run
    /// of consecutive records of one library, each `[library, firstSeq, lastSeq, flags,
    /// bytes]` where `flags` has bit 1 for "starts with the library's creation" and bit
    /// 2 for "ends with its deletion".
    #[wasm_bindgen(js_name = takeLog)]
    pub fn take_log(&mut self) -> JsResult<Array> {
        let mut run = || {
            let records = std::mem::take(&mut self.log);
            let out = Array::new();
            let mut rest = &records[..];
            while let Some(first) = rest.first() {
                let len = rest
                    .iter()
                    .enumerate()
                    .take_while(|(i, r)| {
                        r.library == first.library && r.seq == first.seq + *i as u64
                    })
                    .count();
                let (segment, tail) = rest.split_at(len);
                rest = tail;
                let last = &segment[len - 1];
                let flags = u32::from(matches!(first.op, WalOp::CreateLibrary(_)))
                    | (u32::from(last.op == WalOp::DeleteLibrary) << 1);
                let bytes = codec::encode_wal_segment(segment)?;
                let entry = Array::new();
                entry.push(&JsValue::from_str(&first.library));
                entry.push(&JsValue::from_f64(first.seq as f64));
                entry.push(&JsValue::from_f64(last.seq as f64));
                entry.push(&JsValue::from_f64(f64::from(flags)));
                entry.push(&Uint8Array::from(&bytes[..]));
                out.push(&entry);
            }
            Ok(out)
        };
        run().map_err(|e: Error| js_error(&e))
    }

    /// Replays one WAL segment (as the host writes them), skipping records this engine
    /// already has. Returns `[library, seq]` after it: seq 0 if the library is gone.
    /// Records are not logged.
    #[wasm_bindgen(js_name = applySegment)]
    pub fn apply_segment(&mut self, bytes: &[u8]) -> JsResult<Array> {
        let mut run = || {
            let records = codec::decode_wal_segment(bytes)?;
            let mut library = String::new();
            for record in &records {
                library.clone_from(&record.library);
                let have = self.engine.library(&record.library).map_or(0, |l| l.seq());
                if record.seq <= have {
                    continue;
                }
                self.engine.apply(record)?;
            }
            let seq = self.seq(&library);
            let out = Array::new();
            out.push(&JsValue::from_str(&library));
            out.push(&JsValue::from_f64(seq));
            Ok(out)
        };
        run().map_err(|e: Error| js_error(&e))
    }
}

impl RawEngine {
    /// Validates a batch (see [`RawEngine::upsert_batch`]) into records prepared
    /// against the current state; an item's error names its position.
    fn prepare_batch(
        &self,
        library: &str,
        ids: &str,
        vectors: &[f32],
        texts: &str,
        metadata: &str,
    ) -> JsResult<Vec<WalRecord>> {
        let fail = |e: Error| js_error(&e);
        let ids: Vec<String> = parse(ids, "batch ids").map_err(fail)?;
        let texts: Option<Vec<String>> = parse_optional(texts, "batch texts").map_err(fail)?;
        let metadata: Option<Vec<Metadata>> =
            parse_optional(metadata, "batch metadata").map_err(fail)?;
        let dimension = self
            .engine
            .library(library)
            .ok_or_else(|| fail(Error::LibraryNotFound(library.into())))?
            .config()
            .dimension as usize;
        let expected = ids.len().saturating_mul(dimension);
        if vectors.len() != expected {
            return Err(fail(Error::Invalid(format!(
                "batch vectors hold {} numbers, expected {} ids × dimension {dimension} = {expected}",
                vectors.len(),
                ids.len(),
            ))));
        }
        for (what, len) in [
            ("texts", texts.as_ref().map(Vec::len)),
            ("metadata", metadata.as_ref().map(Vec::len)),
        ] {
            if let Some(len) = len
                && len != ids.len()
            {
                return Err(fail(Error::Invalid(format!(
                    "batch {what} has {len} entries, expected one per id ({})",
                    ids.len()
                ))));
            }
        }
        let mut seen = BTreeSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(fail(Error::Invalid(format!(
                "batch ids contain `{dup}` twice"
            ))));
        }
        let mut texts = texts.map(Vec::into_iter);
        let mut metadata = metadata.map(Vec::into_iter);
        let mut records = Vec::with_capacity(ids.len());
        for (i, (id, embedding)) in ids
            .into_iter()
            .zip(vectors.chunks_exact(dimension.max(1)))
            .enumerate()
        {
            let chunk = ChunkData {
                id: format!("{id}#0"),
                text: texts.as_mut().and_then(Iterator::next).unwrap_or_default(),
                embedding: embedding.to_vec(),
                metadata: metadata
                    .as_mut()
                    .and_then(Iterator::next)
                    .unwrap_or_default(),
            };
            let command = Command::UpsertDocument {
                library: library.into(),
                document: DocumentData {
                    id,
                    metadata: Metadata::default(),
                    chunks: vec![chunk],
                },
            };
            let record = self
                .engine
                .prepare(command)
                .map_err(|e| js_error_with(&e, &format!("batch item {i}: {e}")))?;
            records.push(record);
        }
        Ok(records)
    }

    /// The write path shared by every runtime: validate into a record, then apply it.
    fn execute(&mut self, command: Command) -> Result<Outcome, Error> {
        let record = self.engine.prepare(command)?;
        let outcome = self.engine.apply(&record)?;
        if self.logging {
            self.log.push(record);
        }
        Ok(outcome)
    }

    /// Applies records that were all prepared against the current state, numbering
    /// them consecutively (apply validates each again). Returns the last sequence.
    fn apply_prepared(&mut self, library: &str, records: Vec<WalRecord>) -> Result<f64, Error> {
        let Some(base) = records.first().map(|r| r.seq) else {
            return Ok(self.seq(library));
        };
        for (i, mut record) in records.into_iter().enumerate() {
            record.seq = base + i as u64;
            self.engine.apply(&record)?;
            if self.logging {
                self.log.push(record);
            }
        }
        Ok(self.seq(library))
    }
}

/// The thrown form of a core error: same message, plus `kind` and a recognisable name.
/// Out of line (like the helpers below): every exported method ends in it.
#[inline(never)]
fn js_error(error: &Error) -> js_sys::Error {
    js_error_with(error, &error.to_string())
}

/// [`js_error`] with another message.
#[inline(never)]
fn js_error_with(error: &Error, message: &str) -> js_sys::Error {
    let js = js_sys::Error::new(message);
    js.set_name("ArrwdbError");
    // Setting a property on a fresh, unfrozen object cannot fail.
    let _ = Reflect::set(
        &js,
        &JsValue::from_str("kind"),
        &JsValue::from_str(error.kind().as_str()),
    );
    js
}

#[inline(never)]
fn unexpected() -> Error {
    Error::Internal("unexpected engine outcome".into())
}

/// Parses request JSON into a core API type; any shape error (wrong type, missing or
/// unknown field, bad syntax) is an `invalid` error naming `what`.
/// The position serde_json appends is left out: it points into JSON text the caller
/// never wrote (the JavaScript layer's `JSON.stringify` of their object).
fn parse<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| parse_error(&e, what))
}

/// [`parse`]'s error, out of line so each of its instances does not carry a copy.
#[inline(never)]
fn parse_error(e: &serde_json::Error, what: &str) -> Error {
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) if e.line() != 0 => &message[..at],
        _ => &message[..],
    };
    Error::Invalid(format!("invalid {what}: {message}"))
}

/// [`parse`], with an empty string meaning "not given".
fn parse_optional<T: DeserializeOwned>(text: &str, what: &str) -> Result<Option<T>, Error> {
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text, what).map(Some)
    }
}

/// The vectors in one buffer, one after another.
fn concat(vectors: impl Iterator<Item = Vec<f32>>) -> Vec<f32> {
    let mut flat = Vec::new();
    for mut v in vectors {
        flat.append(&mut v);
    }
    flat
}

/// `[text, Float32Array of vectors]`: the vectors cross in one copy, not as JSON numbers.
fn with_vectors(text: String, vectors: &[f32]) -> Array {
    Array::of2(
        &JsValue::from(text),
        &js_sys::Float32Array::from(vectors).into(),
    )
}

/// A response as JSON text, the HTTP API's body.
fn json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|e| encode_error(&e))
}

/// [`json`]'s error, out of line so each of its instances does not carry a copy.
#[inline(never)]
fn encode_error(e: &serde_json::Error) -> Error {
    Error::Internal(format!("cannot encode: {e}"))
}
