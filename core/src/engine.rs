//! The engine: every library's state, and the prepare / apply / query entry points.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::api::{
    self, ChunkOutput, DocumentResponse, Hit, Include, LibraryInfo, LibraryList, ScoreBreakdown,
    SearchMode, SearchRequest, SearchResponse, UpsertResponse,
};
use crate::codec;
use crate::command::{Command, Outcome, Query, QueryResponse, WalOp, WalRecord};
use crate::error::{Error, Result};
use crate::filter::{FieldPath, Filter};
use crate::index::hnsw::HnswIndex;
use crate::index::{
    self, Allowed, AnyIndex, Bitset, IndexRead, IndexWrite, Scored, SearchOptions, VectorStore,
};
use crate::kernels;
use crate::model::{
    DocumentData, EmbeddingConfig, IndexConfig, LibraryConfig, LibraryConfigV1, Metadata, Metric,
};
use crate::rank::{self, Candidate, Fusion, Reranker};
use crate::text::{Analyzer, TextIndex};

/// Candidates per retriever in hybrid and reranked searches, unless the request says.
const DEFAULT_CANDIDATES: u32 = 100;

/// A filter matching at most `1 / EXACT_FILTER_DIVISOR` of the live chunks is searched
/// exactly over the matching set: cheaper than walking an index that would mostly skip,
/// and exact.
const EXACT_FILTER_DIVISOR: usize = 50;

/// All libraries of one tenant. See the crate docs for the write path.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Engine {
    libraries: BTreeMap<String, LibraryState>,
}

/// One library: its configuration, its documents, the chunks by slot, their vectors
/// and the index over them. Chunks live in dense `u32` slots; deleting leaves a
/// tombstone (`None`, and the slot leaves `live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryState {
    config: LibraryConfig,
    seq: u64,
    #[serde(deserialize_with = "codec::bulk::sorted_map")]
    documents: BTreeMap<String, StoredDocument>,
    #[serde(deserialize_with = "codec::bulk::sorted_map")]
    chunk_slots: BTreeMap<String, u32>,
    slots: Vec<Option<StoredChunk>>,
    vectors: VectorStore,
    live: Bitset,
    index: AnyIndex,
    live_chunks: u64,
    /// BM25 over the chunks' text.
    text: TextIndex,
}

/// [`LibraryState`] as snapshot format v1 stored it: no text index, which the upgrade
/// builds from the chunks' text.
#[derive(Debug, Deserialize)]
pub(crate) struct LibraryStateV1 {
    config: LibraryConfigV1,
    seq: u64,
    #[serde(deserialize_with = "codec::bulk::sorted_map")]
    documents: BTreeMap<String, StoredDocument>,
    #[serde(deserialize_with = "codec::bulk::sorted_map")]
    chunk_slots: BTreeMap<String, u32>,
    slots: Vec<Option<StoredChunk>>,
    vectors: VectorStore,
    live: Bitset,
    index: AnyIndex,
    live_chunks: u64,
}

impl From<LibraryStateV1> for LibraryState {
    fn from(v1: LibraryStateV1) -> Self {
        let mut state = LibraryState {
            config: v1.config.into(),
            seq: v1.seq,
            documents: v1.documents,
            chunk_slots: v1.chunk_slots,
            slots: v1.slots,
            vectors: v1.vectors,
            live: v1.live,
            index: v1.index,
            live_chunks: v1.live_chunks,
            text: TextIndex::new(),
        };
        state.rebuild_text();
        state
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredDocument {
    metadata: Metadata,
    slots: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredChunk {
    id: String,
    document: String,
    text: String,
    metadata: Metadata,
}

impl Engine {
    /// An engine with no libraries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The library called `name`.
    pub fn library(&self, name: &str) -> Option<&LibraryState> {
        self.libraries.get(name)
    }

    /// Names of all libraries, in order.
    pub fn library_names(&self) -> impl Iterator<Item = &str> {
        self.libraries.keys().map(String::as_str)
    }

    /// Validates `command` against the current state and returns the record that
    /// performs it. Changes nothing.
    ///
    /// # Errors
    /// `Invalid` for a malformed command (wrong dimension, non-finite values, empty
    /// chunk list, bad ids, a chunk text over [`api::MAX_CHUNK_TEXT_BYTES`], bad index
    /// parameters), `NotFound` for an unknown library or document, `Conflict` for an
    /// existing library or a chunk id owned by another document.
    pub fn prepare(&self, command: Command) -> Result<WalRecord> {
        let library = String::from(command.library());
        let (seq, op) = match command {
            Command::CreateLibrary(config) => {
                if self.libraries.contains_key(&config.name) {
                    return Err(Error::LibraryExists(config.name));
                }
                validate_config(&config)?;
                (1, WalOp::CreateLibrary(config))
            }
            Command::DeleteLibrary { .. } => (self.get(&library)?.seq + 1, WalOp::DeleteLibrary),
            Command::UpsertDocument { document, .. } => {
                let lib = self.get(&library)?;
                validate_request_limits(&document)?;
                lib.validate_document(&document)?;
                (lib.seq + 1, WalOp::UpsertDocument(document))
            }
            Command::DeleteDocument { document, .. } => {
                let lib = self.get(&library)?;
                lib.document(&document)?;
                (lib.seq + 1, WalOp::DeleteDocument { id: document })
            }
            Command::RebuildIndex { index, .. } => {
                let lib = self.get(&library)?;
                index.validate()?;
                (lib.seq + 1, WalOp::RebuildIndex(index))
            }
            Command::Optimize { .. } => (self.get(&library)?.seq + 1, WalOp::Optimize),
            Command::DeleteDocuments { request, .. } => {
                let lib = self.get(&library)?;
                let ids = lib.resolve_deletes(&request)?;
                (lib.seq + 1, WalOp::DeleteDocuments { ids })
            }
        };
        Ok(WalRecord { library, seq, op })
    }

    /// Applies one record. Records must come in sequence order per library; a record
    /// is validated again, so a corrupted or hand-made log cannot break invariants.
    ///
    /// # Errors
    /// `Conflict` for a record out of sequence, and every error of [`Engine::prepare`].
    pub fn apply(&mut self, record: &WalRecord) -> Result<Outcome> {
        let budget = Budget {
            threads: build_threads(),
            stop: &|| false,
        };
        self.apply_within(record, budget)?
            .ok_or_else(|| Error::Internal("an index build stopped unasked".into()))
    }

    /// [`Engine::apply`], building an index (`RebuildIndex`, `Optimize`) on
    /// `budget.threads` threads and giving it up once `budget.stop` answers `true`:
    /// then the answer is `Ok(None)` and the library is as it was before the record.
    /// The index built is the same for any thread count.
    ///
    /// # Errors
    /// Those of [`Engine::apply`].
    pub fn apply_within(
        &mut self,
        record: &WalRecord,
        budget: Budget<'_>,
    ) -> Result<Option<Outcome>> {
        let name = &record.library;
        if let WalOp::CreateLibrary(config) = &record.op {
            if self.libraries.contains_key(name) {
                return Err(Error::LibraryExists(name.clone()));
            }
            if config.name != *name || record.seq != 1 {
                return Err(Error::Corrupt {
                    what: "WAL record",
                    reason: format!("library `{name}` created at sequence {}", record.seq),
                });
            }
            validate_config(config)?;
            let state = LibraryState::new(config.clone());
            let info = state.info();
            self.libraries.insert(name.clone(), state);
            return Ok(Some(Outcome::LibraryCreated(info)));
        }
        let lib = self
            .libraries
            .get_mut(name)
            .ok_or_else(|| Error::LibraryNotFound(name.clone()))?;
        if record.seq != lib.seq + 1 {
            return Err(Error::OutOfOrder {
                library: name.clone(),
                expected: lib.seq + 1,
                received: record.seq,
            });
        }
        let outcome = match &record.op {
            WalOp::CreateLibrary(_) => return Err(Error::LibraryExists(name.clone())),
            WalOp::DeleteLibrary => {
                self.libraries.remove(name);
                return Ok(Some(Outcome::LibraryDeleted {
                    library: name.clone(),
                }));
            }
            WalOp::UpsertDocument(document) => {
                lib.validate_document(document)?;
                Outcome::DocumentUpserted(lib.upsert(document))
            }
            WalOp::DeleteDocument { id } => {
                lib.document(id)?;
                lib.remove_document(id);
                Outcome::DocumentDeleted {
                    library: name.clone(),
                    id: id.clone(),
                }
            }
            WalOp::RebuildIndex(index) => {
                index.validate()?;
                if lib.rebuild_index(index.clone(), budget).is_none() {
                    return Ok(None);
                }
                lib.seq = record.seq;
                return Ok(Some(Outcome::IndexRebuilt(lib.info())));
            }
            WalOp::Optimize => {
                if lib.optimize(budget).is_none() {
                    return Ok(None);
                }
                lib.seq = record.seq;
                return Ok(Some(Outcome::Optimized(lib.info())));
            }
            WalOp::DeleteDocuments { ids } => {
                // Ids that are gone already (a log is outside input) are skipped: the
                // outcome lists what this record deleted.
                let deleted: Vec<String> = ids
                    .iter()
                    .filter(|id| lib.documents.contains_key(id.as_str()))
                    .cloned()
                    .collect();
                for id in &deleted {
                    lib.remove_document(id);
                }
                Outcome::DocumentsDeleted {
                    library: name.clone(),
                    ids: deleted,
                }
            }
        };
        lib.seq = record.seq;
        Ok(Some(outcome))
    }

    /// Answers a read-only request.
    ///
    /// # Errors
    /// `NotFound` for unknown libraries or documents, `Invalid` for a bad search.
    pub fn query(&self, query: &Query) -> Result<QueryResponse> {
        Ok(match query {
            Query::ListLibraries => QueryResponse::Libraries(LibraryList {
                libraries: self.libraries.values().map(LibraryState::info).collect(),
            }),
            Query::GetLibrary { library } => QueryResponse::Library(self.get(library)?.info()),
            Query::GetDocument { library, document } => {
                QueryResponse::Document(self.get(library)?.document_response(document)?)
            }
            Query::Search { library, request } => {
                QueryResponse::Search(self.get(library)?.search(request)?)
            }
            Query::ListDocuments { library, request } => {
                QueryResponse::Documents(self.get(library)?.list_documents(request)?)
            }
        })
    }

    /// Encodes one library as a snapshot (see [`codec`] for the framing).
    ///
    /// # Errors
    /// `NotFound` for an unknown library.
    pub fn snapshot(&self, library: &str) -> Result<Vec<u8>> {
        codec::encode_snapshot(self.get(library)?)
    }

    /// Replaces (or adds) the library contained in `bytes`; returns its name.
    ///
    /// # Errors
    /// `Internal` for a corrupt, truncated or unknown-version snapshot; the engine is
    /// unchanged then.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<String> {
        let state = codec::decode_snapshot(bytes)?;
        state.check()?;
        let name = state.config.name.clone();
        self.libraries.insert(name.clone(), state);
        Ok(name)
    }

    /// Forgets a library without logging anything (used when reloading from storage).
    pub fn evict(&mut self, library: &str) -> bool {
        self.libraries.remove(library).is_some()
    }

    fn get(&self, library: &str) -> Result<&LibraryState> {
        self.libraries
            .get(library)
            .ok_or_else(|| Error::LibraryNotFound(String::from(library)))
    }
}

fn validate_config(config: &LibraryConfig) -> Result<()> {
    api::validate_library_name(&config.name)?;
    if config.dimension == 0 || config.dimension > api::MAX_DIMENSION {
        return Err(Error::invalid(format!(
            "dimension must be between 1 and {}, got {}",
            api::MAX_DIMENSION,
            config.dimension
        )));
    }
    config.index.validate()?;
    if let IndexConfig::Ivf(ivf) = &config.index
        && ivf.pq_m != 0
        && !config.dimension.is_multiple_of(ivf.pq_m)
    {
        return Err(Error::invalid(format!(
            "index parameter `pq_m` must divide the dimension {}, got {}",
            config.dimension, ivf.pq_m
        )));
    }
    config.quantization.validate()?;
    config.text.validate()?;
    config
        .embedding
        .as_ref()
        .map_or(Ok(()), EmbeddingConfig::validate)
}

/// Limits that only apply to new requests (not to records already logged, which must
/// keep replaying): chunk text size.
fn validate_request_limits(document: &DocumentData) -> Result<()> {
    for (i, chunk) in document.chunks.iter().enumerate() {
        if chunk.text.len() > api::MAX_CHUNK_TEXT_BYTES {
            return Err(Error::invalid(format!(
                "chunks[{i}].text is {} bytes of UTF-8, more than the limit of {} bytes (64 KiB)",
                chunk.text.len(),
                api::MAX_CHUNK_TEXT_BYTES
            )));
        }
    }
    Ok(())
}

/// Checks a vector's length and values for this library.
fn validate_vector(config: &LibraryConfig, field: &str, v: &[f32]) -> Result<()> {
    if v.len() != config.dimension as usize {
        return Err(Error::WrongDimension {
            expected: config.dimension,
            received: v.len(),
        });
    }
    if let Some(position) = v.iter().position(|x| !x.is_finite()) {
        return Err(Error::NonFinite {
            field: String::from(field),
            position,
        });
    }
    if config.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
        return Err(Error::invalid(format!(
            "{field} is all zeros, which has no cosine similarity"
        )));
    }
    Ok(())
}

/// How [`Engine::apply_within`] may build an index.
#[derive(Clone, Copy)]
pub struct Budget<'a> {
    /// Threads of an HNSW build (used with `std`; the graph is the same for any count).
    pub threads: usize,
    /// Asked between the nodes of a build; `true` gives the build up.
    pub stop: &'a (dyn Fn() -> bool + Sync),
}

impl core::fmt::Debug for Budget<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Budget")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Threads of a full HNSW rebuild through [`Engine::apply`]: every core with `std`
/// natively; 1 in wasm (single-threaded) and without `std`.
fn build_threads() -> usize {
    #[cfg(all(feature = "std", not(target_family = "wasm")))]
    {
        extern crate std;
        std::thread::available_parallelism().map_or(1, core::num::NonZeroUsize::get)
    }
    #[cfg(not(all(feature = "std", not(target_family = "wasm"))))]
    {
        1
    }
}

/// A new index of kind `config` over the `live` slots of `vectors`, in slot order (see
/// [`LibraryState::rebuild_index`]); `None` once `budget.stop` answers `true`.
fn build_index(
    config: &IndexConfig,
    vectors: &VectorStore,
    live: &Bitset,
    budget: Budget<'_>,
) -> Option<AnyIndex> {
    if let IndexConfig::Hnsw(params) = config {
        let slots: Vec<u32> = live.iter().collect();
        let graph = HnswIndex::build_until(params, vectors, &slots, budget.threads, budget.stop)?;
        return Some(AnyIndex::Hnsw(graph));
    }
    let mut index = AnyIndex::new(config, vectors);
    for slot in live.iter() {
        if (budget.stop)() {
            return None;
        }
        index.insert(vectors, slot);
    }
    Some(index)
}

/// The request's mode, explicit or inferred, checked against what it carries.
fn search_mode(request: &SearchRequest) -> Result<SearchMode> {
    let (vector, text) = (request.vector.is_some(), request.text.is_some());
    let mode = request.mode.unwrap_or(match (vector, text) {
        (true, true) => SearchMode::Hybrid,
        (false, true) => SearchMode::Keyword,
        _ => SearchMode::Vector,
    });
    let problem = match (mode, vector, text) {
        (SearchMode::Vector, false, true) => Some(
            "a vector search needs `vector`; this library has no embedding provider to \
             embed `text`, so use mode `keyword` (text only) or `hybrid` (vector and text)",
        ),
        (SearchMode::Vector, false, false) => {
            Some("a search needs `vector` (vector search), `text` (keyword search) or both")
        }
        (SearchMode::Vector, true, true) => {
            Some("a vector search does not use `text`; use mode `hybrid` to combine them")
        }
        (SearchMode::Keyword, _, false) => Some("a keyword search needs `text`"),
        (SearchMode::Keyword, true, true) => {
            Some("a keyword search does not use `vector`; use mode `hybrid` to combine them")
        }
        (SearchMode::Hybrid, false, _) => Some(
            "a hybrid search needs `vector` and `text`; this library has no embedding \
             provider to embed `text`",
        ),
        (SearchMode::Hybrid, true, false) => Some("a hybrid search needs `text`"),
        _ => None,
    };
    match problem {
        Some(message) => Err(Error::invalid(message)),
        None => Ok(mode),
    }
}

impl LibraryState {
    fn new(config: LibraryConfig) -> Self {
        let vectors =
            VectorStore::with_quantization(config.dimension, config.metric, config.quantization);
        let index = AnyIndex::new(&config.index, &vectors);
        LibraryState {
            config,
            seq: 1,
            documents: BTreeMap::new(),
            chunk_slots: BTreeMap::new(),
            slots: Vec::new(),
            vectors,
            live: Bitset::default(),
            index,
            live_chunks: 0,
            text: TextIndex::new(),
        }
    }

    fn analyzer(&self) -> Analyzer {
        Analyzer::new(&self.config.text)
    }

    /// The library's configuration.
    pub fn config(&self) -> &LibraryConfig {
        &self.config
    }

    /// Sequence number of the last applied record.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The JSON description of this library.
    pub fn info(&self) -> LibraryInfo {
        LibraryInfo {
            id: self.config.name.clone(),
            name: self.config.name.clone(),
            dimension: self.config.dimension,
            metric: self.config.metric,
            index: self.config.index.clone(),
            quantization: self.config.quantization,
            text: self.config.text,
            embedding: self.config.embedding.clone(),
            documents: self.documents.len() as u64,
            chunks: self.live_chunks,
            seq: self.seq,
        }
    }

    fn document(&self, id: &str) -> Result<&StoredDocument> {
        self.documents
            .get(id)
            .ok_or_else(|| Error::DocumentNotFound {
                library: self.config.name.clone(),
                document: String::from(id),
            })
    }

    fn validate_document(&self, document: &DocumentData) -> Result<()> {
        api::validate_id("document", &document.id)?;
        if document.chunks.is_empty() {
            return Err(Error::invalid("a document needs at least one chunk"));
        }
        let mut seen = BTreeSet::new();
        for (i, chunk) in document.chunks.iter().enumerate() {
            api::validate_id("chunk", &chunk.id)?;
            if !seen.insert(chunk.id.as_str()) {
                return Err(Error::invalid(format!(
                    "chunk id `{}` appears twice",
                    chunk.id
                )));
            }
            if let Some(slot) = self.chunk_slots.get(&chunk.id) {
                let owner = self
                    .chunk(*slot)
                    .map(|c| c.document.as_str())
                    .unwrap_or_default();
                if owner != document.id {
                    return Err(Error::ChunkIdTaken {
                        chunk: chunk.id.clone(),
                        document: String::from(owner),
                    });
                }
            }
            if chunk.embedding.is_empty() {
                return Err(Error::invalid(match &self.config.embedding {
                    Some(e) => format!(
                        "chunks[{i}] has no `embedding`, and this runtime cannot reach the library's embedding provider `{}`: send the vector, or write through the arrwdb host",
                        e.provider
                    ),
                    None => format!(
                        "chunks[{i}] has no `embedding`: send one, or create the library with an embedding provider (\"embedding\": {{\"provider\", \"model\"}}) on the arrwdb host"
                    ),
                }));
            }
            validate_vector(
                &self.config,
                &format!("chunks[{i}].embedding"),
                &chunk.embedding,
            )?;
        }
        Ok(())
    }

    fn chunk(&self, slot: u32) -> Option<&StoredChunk> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn upsert(&mut self, document: &DocumentData) -> UpsertResponse {
        self.remove_document(&document.id);
        let analyzer = self.analyzer();
        let mut slots = Vec::with_capacity(document.chunks.len());
        for chunk in &document.chunks {
            let slot = self.vectors.push(&chunk.embedding);
            self.text.insert(&analyzer, slot, &chunk.text);
            self.slots.push(Some(StoredChunk {
                id: chunk.id.clone(),
                document: document.id.clone(),
                text: chunk.text.clone(),
                metadata: chunk.metadata.clone(),
            }));
            self.chunk_slots.insert(chunk.id.clone(), slot);
            self.live.insert(slot);
            self.live_chunks += 1;
            self.index.insert(&self.vectors, slot);
            slots.push(slot);
        }
        let stored = StoredDocument {
            metadata: document.metadata.clone(),
            slots,
        };
        self.documents.insert(document.id.clone(), stored);
        UpsertResponse {
            id: document.id.clone(),
            chunk_ids: document.chunks.iter().map(|c| c.id.clone()).collect(),
        }
    }

    /// Replaces the index configuration and rebuilds the index from every live slot in
    /// slot order, so the result depends only on the live set: HNSW in batches on
    /// `budget.threads` threads ([`HnswIndex::build`]: the same bytes for any thread
    /// count), the other kinds slot after slot. `None`, with nothing changed, once
    /// `budget.stop` answers `true`.
    fn rebuild_index(&mut self, config: IndexConfig, budget: Budget<'_>) -> Option<()> {
        let index = build_index(&config, &self.vectors, &self.live, budget)?;
        self.config.index = config;
        self.index = index;
        Some(())
    }

    /// Compacts tombstones: the live chunks get dense slots in their old slot order
    /// (so exact results and their tie-breaks are unchanged), then the index is rebuilt
    /// over them (IVF retrains on the first `train_size` of them). The new index is
    /// built before anything changes: `None`, with nothing changed, once `budget.stop`
    /// answers `true`.
    fn optimize(&mut self, budget: Budget<'_>) -> Option<()> {
        let mut vectors = VectorStore::with_quantization(
            self.config.dimension,
            self.config.metric,
            self.config.quantization,
        );
        let mut live = Bitset::with_capacity(self.live_chunks as usize);
        // Old slot -> new slot; `u32::MAX` for tombstones.
        let mut renumbered = Vec::with_capacity(self.slots.len());
        for (old, chunk) in self.slots.iter().enumerate() {
            if chunk.is_none() {
                renumbered.push(u32::MAX);
                continue;
            }
            let slot = vectors.push(self.vectors.vector(old as u32));
            live.insert(slot);
            renumbered.push(slot);
        }
        let index = build_index(&self.config.index, &vectors, &live, budget)?;
        let mut slots = Vec::with_capacity(self.live_chunks as usize);
        for (chunk, &slot) in core::mem::take(&mut self.slots)
            .into_iter()
            .zip(&renumbered)
        {
            if let Some(chunk) = chunk {
                self.chunk_slots.insert(chunk.id.clone(), slot);
                slots.push(Some(chunk));
            }
        }
        for document in self.documents.values_mut() {
            for slot in &mut document.slots {
                *slot = renumbered.get(*slot as usize).copied().unwrap_or(u32::MAX);
            }
            document.slots.retain(|&s| s != u32::MAX);
        }
        self.slots = slots;
        self.vectors = vectors;
        self.live = live;
        self.index = index;
        self.rebuild_text();
        Some(())
    }

    /// Builds the text index from scratch over the live chunks, in slot order.
    fn rebuild_text(&mut self) {
        let analyzer = self.analyzer();
        let mut text = TextIndex::new();
        for (slot, chunk) in self.slots.iter().enumerate() {
            if let Some(chunk) = chunk {
                text.insert(&analyzer, slot as u32, &chunk.text);
            }
        }
        self.text = text;
    }

    fn remove_document(&mut self, id: &str) {
        let Some(old) = self.documents.remove(id) else {
            return;
        };
        let analyzer = self.analyzer();
        for slot in old.slots {
            if let Some(chunk) = self.slots.get_mut(slot as usize).and_then(Option::take) {
                self.text.remove(&analyzer, slot, &chunk.text);
                self.chunk_slots.remove(&chunk.id);
                self.live.remove(slot);
                self.live_chunks -= 1;
                self.index.remove(&self.vectors, slot);
            }
        }
    }

    /// Whether any chunk of `document` (with the document's metadata) matches.
    fn document_matches(&self, document: &StoredDocument, filter: &Filter) -> bool {
        document.slots.iter().any(|&slot| {
            self.chunk(slot)
                .is_some_and(|c| filter.matches(&c.metadata.0, &document.metadata.0))
        })
    }

    /// The documents a bulk delete names: the listed ids that exist, or every document
    /// with a matching chunk; sorted.
    fn resolve_deletes(&self, request: &api::DeleteDocumentsRequest) -> Result<Vec<String>> {
        match (&request.ids, &request.filter) {
            (Some(ids), None) => {
                if ids.len() > api::MAX_BATCH_DOCUMENTS {
                    return Err(Error::invalid(format!(
                        "at most {} ids per delete, got {}",
                        api::MAX_BATCH_DOCUMENTS,
                        ids.len()
                    )));
                }
                for id in ids {
                    api::validate_id("document", id)?;
                }
                // Inserted one by one rather than collected: collecting sorts first,
                // which would add a copy of the standard library's sort to the `.wasm`.
                let mut set = BTreeSet::new();
                for id in ids {
                    if self.documents.contains_key(id.as_str()) {
                        set.insert(id.as_str());
                    }
                }
                Ok(set.into_iter().map(String::from).collect())
            }
            (None, Some(filter)) => {
                let filter = Filter::parse(&filter.0)?;
                Ok(self
                    .documents
                    .iter()
                    .filter(|(_, d)| self.document_matches(d, &filter))
                    .map(|(id, _)| id.clone())
                    .collect())
            }
            _ => Err(Error::invalid(
                "a bulk delete takes exactly one of `ids` and `filter`",
            )),
        }
    }

    /// One page of documents in id order, after `cursor`.
    fn list_documents(&self, request: &api::ListDocumentsRequest) -> Result<api::DocumentList> {
        let limit = request.limit.unwrap_or(api::DEFAULT_LIST_LIMIT);
        if limit == 0 || limit > api::MAX_LIST_LIMIT {
            return Err(Error::invalid(format!(
                "limit must be between 1 and {}, got {limit}",
                api::MAX_LIST_LIMIT
            )));
        }
        let filter = request
            .filter
            .as_ref()
            .map(|f| Filter::parse(&f.0))
            .transpose()?;
        let after = match &request.cursor {
            Some(cursor) => core::ops::Bound::Excluded(cursor.clone()),
            None => core::ops::Bound::Unbounded,
        };
        let mut documents = Vec::new();
        let mut next_cursor = None;
        for (id, doc) in self
            .documents
            .range::<String, _>((after, core::ops::Bound::Unbounded))
        {
            if filter
                .as_ref()
                .is_some_and(|f| !self.document_matches(doc, f))
            {
                continue;
            }
            if documents.len() == limit as usize {
                next_cursor = documents
                    .last()
                    .map(|d: &api::DocumentSummary| d.id.clone());
                break;
            }
            documents.push(api::DocumentSummary {
                id: id.clone(),
                metadata: doc.metadata.clone(),
                chunks: doc.slots.len() as u32,
            });
        }
        Ok(api::DocumentList {
            documents,
            next_cursor,
        })
    }

    fn document_response(&self, id: &str) -> Result<DocumentResponse> {
        let doc = self.document(id)?;
        let chunks = doc
            .slots
            .iter()
            .filter_map(|&slot| {
                self.chunk(slot).map(|c| ChunkOutput {
                    id: c.id.clone(),
                    text: c.text.clone(),
                    embedding: self.vectors.vector(slot).to_vec(),
                    metadata: c.metadata.clone(),
                })
            })
            .collect();
        Ok(DocumentResponse {
            id: String::from(id),
            metadata: doc.metadata.clone(),
            chunks,
        })
    }

    /// Runs a vector, keyword or hybrid search (see [`SearchRequest`]): each retriever
    /// ranks the chunks allowed by the filter, hybrid fuses both lists, rerankers reorder
    /// the candidates, and the best `k` are returned.
    fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        let mode = search_mode(request)?;
        if request.k == 0 || request.k > api::MAX_K {
            return Err(Error::invalid(format!(
                "k must be between 1 and {}, got {}",
                api::MAX_K,
                request.k
            )));
        }
        let filter = request
            .filter
            .as_ref()
            .map(|f| Filter::parse(&f.0))
            .transpose()?;
        let fusion = match &request.fusion {
            Some(_) if mode != SearchMode::Hybrid => {
                return Err(Error::invalid(
                    "`fusion` applies to hybrid searches (both `vector` and `text`)",
                ));
            }
            Some(f) => Fusion::parse(&f.0)?,
            None => Fusion::default(),
        };
        let rerankers = request
            .rerank
            .as_ref()
            .map(|r| Reranker::parse_list(&r.0))
            .transpose()?
            .unwrap_or_default();
        if let Some(query) = &request.vector {
            validate_vector(&self.config, "vector", query)?;
        }
        if let Some(text) = &request.text
            && text.len() > api::MAX_CHUNK_TEXT_BYTES
        {
            return Err(Error::invalid(format!(
                "`text` is {} bytes, more than the limit of {} bytes",
                text.len(),
                api::MAX_CHUNK_TEXT_BYTES
            )));
        }
        if mode == SearchMode::Keyword && request.distance_threshold.is_some() {
            return Err(Error::invalid(
                "`distance_threshold` applies to vector scores; use `min_score` with a keyword search",
            ));
        }
        // The same bounds as the index parameters they override (`ef_search`, `nprobe`
        // up to the largest `nlist`); an index that has no such knob ignores it.
        for (name, value, max) in [
            ("ef", request.params.ef, crate::model::MAX_EF),
            ("nprobe", request.params.nprobe, crate::model::MAX_NLIST),
        ] {
            if let Some(v) = value
                && !(1..=max).contains(&v)
            {
                return Err(Error::invalid(format!(
                    "`params.{name}` must be between 1 and {max}, got {v}"
                )));
            }
        }
        let k = request.k as usize;
        let depth = match request.candidates {
            Some(c) if c == 0 || c > api::MAX_K => {
                return Err(Error::invalid(format!(
                    "candidates must be between 1 and {}, got {c}",
                    api::MAX_K
                )));
            }
            _ if mode != SearchMode::Hybrid && rerankers.is_empty() => k,
            Some(c) => (c as usize).max(k),
            None => (DEFAULT_CANDIDATES as usize).max(k),
        };
        let floor = self.score_floor(request)?;
        let vector_floor = if mode == SearchMode::Vector {
            floor
        } else {
            self.distance_floor(request)?
        };

        let matching = filter.as_ref().map(|f| self.matching(f));
        let vector_hits = match (&request.vector, mode) {
            (Some(query), SearchMode::Vector | SearchMode::Hybrid) => {
                let options = SearchOptions {
                    k: depth,
                    ef: request.params.ef,
                    nprobe: request.params.nprobe,
                };
                let mut hits = self.top_k(query, matching.as_ref(), &options);
                hits.retain(|s| vector_floor.is_none_or(|f| s.score >= f));
                hits
            }
            _ => Vec::new(),
        };
        let keyword_hits = match (&request.text, mode) {
            (Some(text), SearchMode::Keyword | SearchMode::Hybrid) => self.text.search(
                &self.analyzer(),
                &self.config.text,
                text,
                &Allowed::new(&self.live, matching.as_ref()),
                depth,
            ),
            _ => Vec::new(),
        };
        let mut candidates = match mode {
            SearchMode::Vector => rank::single(&vector_hits, false),
            SearchMode::Keyword => rank::single(&keyword_hits, true),
            SearchMode::Hybrid => rank::fuse(&vector_hits, &keyword_hits, &fusion)?,
        };
        for reranker in &rerankers {
            candidates = self.rerank(candidates, reranker, request, k)?;
        }
        let breakdown = mode != SearchMode::Vector || !rerankers.is_empty();
        Ok(SearchResponse {
            hits: candidates
                .iter()
                .take(k)
                .filter(|c| floor.is_none_or(|f| c.score >= f))
                .map(|c| self.hit(c, request, breakdown))
                .collect(),
            took_ms: 0.0,
        })
    }

    /// Applies one reranker to the candidates.
    fn rerank(
        &self,
        mut list: Vec<Candidate>,
        reranker: &Reranker,
        request: &SearchRequest,
        k: usize,
    ) -> Result<Vec<Candidate>> {
        let weight = reranker.weight();
        match reranker {
            Reranker::Recency {
                field,
                half_life_days,
                ..
            } => {
                let Some(now_ms) = request.now else {
                    return Err(Error::invalid(
                        "the recency reranker needs `now` (milliseconds since 1970)",
                    ));
                };
                let path = FieldPath::parse(field)?;
                let now = now_ms as f64 / 1000.0;
                let null = serde_json::Value::Null;
                rank::blend(&mut list, weight, |slot| {
                    let Some(chunk) = self.chunk(slot) else {
                        return 0.0;
                    };
                    let document = self
                        .documents
                        .get(&chunk.document)
                        .map_or(&null, |d| &d.metadata.0);
                    path.resolve(&chunk.metadata.0, document)
                        .and_then(rank::timestamp_seconds)
                        .map_or(0.0, |t| {
                            let age_days = ((now - t) / 86_400.0).max(0.0);
                            libm::exp2(-age_days / half_life_days)
                        })
                });
            }
            Reranker::Position { .. } => rank::blend(&mut list, weight, |slot| {
                let position = self.chunk(slot).and_then(|c| {
                    let doc = self.documents.get(&c.document)?;
                    doc.slots.iter().position(|&s| s == slot)
                });
                position.map_or(0.0, |p| 1.0 / (1.0 + p as f64))
            }),
            Reranker::Length { target, .. } => {
                let target = f64::from(target.unwrap_or(rank::DEFAULT_LENGTH_TARGET));
                rank::blend(&mut list, weight, |slot| {
                    let len = self.chunk(slot).map_or(0, |c| c.text.chars().count()) as f64;
                    len.min(target) / len.max(target)
                });
            }
            Reranker::Mmr { .. } => {
                let norms: BTreeMap<u32, f32> = list
                    .iter()
                    .map(|c| (c.slot, kernels::norm(self.vectors.vector(c.slot))))
                    .collect();
                list = rank::mmr(list, k, weight, |a, b| {
                    let (na, nb) = (
                        norms.get(&a).copied().unwrap_or(0.0),
                        norms.get(&b).copied().unwrap_or(0.0),
                    );
                    if na == 0.0 || nb == 0.0 {
                        return 0.0;
                    }
                    let dot = kernels::dot(self.vectors.vector(a), self.vectors.vector(b));
                    f64::from(dot) / (f64::from(na) * f64::from(nb))
                });
            }
        }
        Ok(list)
    }

    /// The lowest score a vector hit may have: `min_score`, and `distance_threshold`
    /// turned into a score (cosine: `1 - d`, l2: `-d`), whichever is stricter.
    fn score_floor(&self, request: &SearchRequest) -> Result<Option<f32>> {
        if request.min_score.is_some_and(|v| !v.is_finite()) {
            return Err(Error::invalid("`min_score` must be a finite number"));
        }
        let from_distance = self.distance_floor(request)?;
        Ok(match (request.min_score, from_distance) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        })
    }

    /// `distance_threshold` as a lowest vector score.
    fn distance_floor(&self, request: &SearchRequest) -> Result<Option<f32>> {
        // A distance is never negative, so a negative bound would silently match nothing.
        if request
            .distance_threshold
            .is_some_and(|v| !(v.is_finite() && v >= 0.0))
        {
            return Err(Error::invalid(
                "`distance_threshold` must be a finite number of at least 0",
            ));
        }
        Ok(match (request.distance_threshold, self.config.metric) {
            (None, _) => None,
            (Some(d), Metric::Cosine) => Some(1.0 - d),
            (Some(d), Metric::L2) => Some(-d),
            (Some(_), Metric::Dot) => {
                return Err(Error::invalid(
                    "`distance_threshold` needs a metric with a distance (cosine or l2); use `min_score` with dot",
                ));
            }
        })
    }

    /// The live slots whose chunk (with its document) matches `filter`.
    fn matching(&self, filter: &Filter) -> Bitset {
        let mut set = Bitset::with_capacity(self.slots.len());
        let null = serde_json::Value::Null;
        for slot in self.live.iter() {
            let Some(chunk) = self.chunk(slot) else {
                continue;
            };
            let document = self
                .documents
                .get(&chunk.document)
                .map_or(&null, |d| &d.metadata.0);
            if filter.matches(&chunk.metadata.0, document) {
                set.insert(slot);
            }
        }
        set
    }

    /// The best `k` live (and matching) slots, best first, ties broken by slot.
    fn top_k(
        &self,
        query: &[f32],
        matching: Option<&Bitset>,
        options: &SearchOptions,
    ) -> Vec<Scored> {
        let query = self.vectors.query(query);
        let allowed = Allowed::new(&self.live, matching);
        if matching.is_some() && allowed.count() <= self.live_chunks as usize / EXACT_FILTER_DIVISOR
        {
            index::exact_search(&self.vectors, &query, &allowed, options.k)
        } else {
            self.index.search(&self.vectors, &query, &allowed, options)
        }
    }

    fn hit(&self, found: &Candidate, request: &SearchRequest, breakdown: bool) -> Hit {
        let slot = found.slot;
        let chunk = self.chunk(slot);
        let distance = found
            .vector
            .and_then(|(score, _)| match self.config.metric {
                Metric::Cosine => Some(1.0 - score),
                Metric::L2 => Some(-score),
                Metric::Dot => None,
            });
        Hit {
            chunk_id: chunk.map(|c| c.id.clone()).unwrap_or_default(),
            document_id: chunk.map(|c| c.document.clone()).unwrap_or_default(),
            score: found.score,
            distance,
            text: chunk
                .filter(|_| request.includes(Include::Text))
                .map(|c| c.text.clone()),
            metadata: chunk
                .filter(|_| request.includes(Include::Metadata))
                .map(|c| c.metadata.clone()),
            vector: request
                .includes(Include::Vector)
                .then(|| self.vectors.vector(slot).to_vec()),
            breakdown: breakdown.then(|| ScoreBreakdown {
                vector_score: found.vector.map(|v| v.0),
                vector_rank: found.vector.map(|v| v.1),
                keyword_score: found.keyword.map(|v| v.0),
                keyword_rank: found.keyword.map(|v| v.1),
                fused_score: found.fused,
            }),
        }
    }

    /// Checks the invariants of a decoded snapshot, so that outside bytes can never
    /// make a later search or apply index out of bounds.
    fn check(&self) -> Result<()> {
        let corrupt = |reason: String| Error::Corrupt {
            what: "snapshot",
            reason,
        };
        validate_config(&self.config)?;
        let n = self.slots.len();
        if !self.vectors.is_consistent()
            || self.vectors.quantization() != self.config.quantization
            || self.vectors.len() != n
            || self.vectors.dimension() != self.config.dimension as usize
            || self.vectors.metric() != self.config.metric
            || n > u32::MAX as usize
        {
            return Err(corrupt(format!(
                "{n} slots but {} stored vectors",
                self.vectors.len()
            )));
        }
        let live = self.slots.iter().filter(|s| s.is_some()).count();
        if self.live.count() != live
            || (0..n as u32).any(|slot| self.live.contains(slot) != self.chunk(slot).is_some())
        {
            return Err(corrupt(String::from(
                "the live set disagrees with the chunks",
            )));
        }
        if live as u64 != self.live_chunks || self.chunk_slots.len() != live {
            return Err(corrupt(format!("{live} live chunks but counters disagree")));
        }
        for (id, &slot) in &self.chunk_slots {
            if self.chunk(slot).map(|c| &c.id) != Some(id) {
                return Err(corrupt(format!("chunk `{id}` points at slot {slot}")));
            }
        }
        let mut owned = 0usize;
        let mut seen = Bitset::with_capacity(n);
        for (doc_id, doc) in &self.documents {
            for &slot in &doc.slots {
                match self.chunk(slot) {
                    // Each live slot is owned exactly once: a slot listed twice would
                    // let the counts agree while another chunk has no owner.
                    Some(c) if c.document == *doc_id && !seen.contains(slot) => {
                        seen.insert(slot);
                        owned += 1;
                    }
                    _ => return Err(corrupt(format!("document `{doc_id}` owns slot {slot}"))),
                }
            }
        }
        if owned != live {
            return Err(corrupt(format!(
                "{owned} chunks owned by documents, {live} live"
            )));
        }
        self.index.check(n)?;
        self.index.check_live(&self.live, n)?;
        self.text.check(n)?;
        if self.text.docs() != self.live_chunks {
            return Err(corrupt(String::from(
                "the text index disagrees with the live chunks",
            )));
        }
        Ok(())
    }
}
