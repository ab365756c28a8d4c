//! Commands (what a client asks for), WAL records (what the engine agreed to do) and
//! queries (read-only requests), with their outcomes.

use alloc::string::String;
use serde::{Deserialize, Serialize};

use crate::api::{
    DeleteDocumentsRequest, DocumentList, DocumentResponse, LibraryInfo, LibraryList,
    ListDocumentsRequest, SearchRequest, SearchResponse, UpsertResponse,
};
use crate::model::{DocumentData, IndexConfig, LibraryConfig, LibraryConfigV1};
use alloc::vec::Vec;

/// A mutation request. [`crate::Engine::prepare`] validates it into a [`WalRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateLibrary(LibraryConfig),
    DeleteLibrary {
        library: String,
    },
    /// Insert or replace a whole document; every id must already be resolved
    /// (see [`crate::api::UpsertDocumentRequest::into_document`]).
    UpsertDocument {
        library: String,
        document: DocumentData,
    },
    DeleteDocument {
        library: String,
        document: String,
    },
    /// Replace the library's index configuration and rebuild the index over every
    /// live chunk.
    RebuildIndex {
        library: String,
        index: IndexConfig,
    },
    /// Compact tombstones: renumber the live chunks densely and rebuild the index.
    Optimize {
        library: String,
    },
    /// Delete documents by id or by filter; `prepare` resolves them to ids.
    DeleteDocuments {
        library: String,
        request: DeleteDocumentsRequest,
    },
}

impl Command {
    /// The library this command changes.
    pub fn library(&self) -> &str {
        match self {
            Command::CreateLibrary(config) => &config.name,
            Command::DeleteLibrary { library }
            | Command::UpsertDocument { library, .. }
            | Command::DeleteDocument { library, .. }
            | Command::RebuildIndex { library, .. }
            | Command::Optimize { library }
            | Command::DeleteDocuments { library, .. } => library,
        }
    }
}

/// One validated mutation at a position of a library's log. Applying the same
/// records in the same order gives the same state in every runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalRecord {
    pub library: String,
    /// Position in the library's log, starting at 1 with its creation.
    pub seq: u64,
    pub op: WalOp,
}

/// The change a [`WalRecord`] makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalOp {
    CreateLibrary(LibraryConfig),
    DeleteLibrary,
    UpsertDocument(DocumentData),
    DeleteDocument {
        id: String,
    },
    /// Rebuild the index with this configuration (see [`Command::RebuildIndex`]).
    RebuildIndex(IndexConfig),
    /// Compact tombstones (see [`Command::Optimize`]).
    Optimize,
    /// Delete these documents (sorted, resolved when the command was prepared).
    DeleteDocuments {
        ids: Vec<String>,
    },
}

/// [`WalRecord`] as WAL format v1 stored it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct WalRecordV1 {
    library: String,
    seq: u64,
    op: WalOpV1,
}

/// [`WalOp`] as WAL format v1 stored it (its library config had no text settings).
#[derive(Debug, Clone, PartialEq, Deserialize)]
enum WalOpV1 {
    CreateLibrary(LibraryConfigV1),
    DeleteLibrary,
    UpsertDocument(DocumentData),
    DeleteDocument { id: String },
    RebuildIndex(IndexConfig),
    Optimize,
}

impl From<WalRecordV1> for WalRecord {
    fn from(v1: WalRecordV1) -> Self {
        let op = match v1.op {
            WalOpV1::CreateLibrary(config) => WalOp::CreateLibrary(config.into()),
            WalOpV1::DeleteLibrary => WalOp::DeleteLibrary,
            WalOpV1::UpsertDocument(d) => WalOp::UpsertDocument(d),
            WalOpV1::DeleteDocument { id } => WalOp::DeleteDocument { id },
            WalOpV1::RebuildIndex(index) => WalOp::RebuildIndex(index),
            WalOpV1::Optimize => WalOp::Optimize,
        };
        WalRecord {
            library: v1.library,
            seq: v1.seq,
            op,
        }
    }
}

/// What applying a record did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    LibraryCreated(LibraryInfo),
    LibraryDeleted { library: String },
    DocumentUpserted(UpsertResponse),
    DocumentDeleted { library: String, id: String },
    IndexRebuilt(LibraryInfo),
    Optimized(LibraryInfo),
    DocumentsDeleted { library: String, ids: Vec<String> },
}

/// A read-only request.
// A query lives for one call, so boxing the large search variant would only add an
// allocation and churn every constructor.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Query {
    ListLibraries,
    GetLibrary {
        library: String,
    },
    GetDocument {
        library: String,
        document: String,
    },
    Search {
        library: String,
        request: SearchRequest,
    },
    ListDocuments {
        library: String,
        request: ListDocumentsRequest,
    },
}

/// The answer to a [`Query`], one variant per query kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryResponse {
    Libraries(LibraryList),
    Library(LibraryInfo),
    Document(DocumentResponse),
    Search(SearchResponse),
    Documents(DocumentList),
}
