//! # arrwdb-core
//!
//! The arrwDB engine: a deterministic state machine over libraries of documents and
//! chunks. It does no I/O, reads no clock and draws no randomness, so the same
//! sequence of [`WalRecord`]s applied to the same snapshot gives bit-identical state
//! in every runtime (native, wasm32 in a browser, wasm32 under wasmtime).
//!
//! The write path is two steps:
//!
//! 1. [`Engine::prepare`] validates a [`Command`] against the current state and turns
//!    it into a [`WalRecord`] without changing anything;
//! 2. the caller makes the record durable (a WAL segment in object storage), then
//!    [`Engine::apply`] changes the state.
//!
//! ```
//! use arrwdb_core::{api, Command, Engine, Query, QueryResponse};
//!
//! let mut engine = Engine::new();
//! let create: api::CreateLibraryRequest =
//!     serde_json::from_str(r#"{"name":"docs","dimension":2,"metric":"cosine"}"#).unwrap();
//! let record = engine.prepare(Command::CreateLibrary(create.into_config().unwrap())).unwrap();
//! engine.apply(&record).unwrap();
//!
//! let upsert: api::UpsertDocumentRequest = serde_json::from_str(
//!     r#"{"id":"a","chunks":[{"text":"hello","embedding":[1.0,0.0]}]}"#).unwrap();
//! let record = engine
//!     .prepare(Command::UpsertDocument { library: "docs".into(), document: upsert.into_document("a".into()) })
//!     .unwrap();
//! engine.apply(&record).unwrap();
//!
//! let search: api::SearchRequest = serde_json::from_str(r#"{"vector":[0.9,0.1],"k":1}"#).unwrap();
//! let QueryResponse::Search(found) =
//!     engine.query(&Query::Search { library: "docs".into(), request: search }).unwrap()
//! else { unreachable!() };
//! assert_eq!(found.hits[0].chunk_id, "a#0");
//! ```
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod api;
pub mod codec;
mod command;
mod engine;
mod error;
pub mod filter;
pub mod index;
pub mod kernels;
mod model;
pub mod rank;
pub mod storage;
pub mod text;

pub use command::{Command, Outcome, Query, QueryResponse, WalOp, WalRecord};
pub use engine::{Budget, Engine, LibraryState};
pub use error::{Error, ErrorKind};
pub use model::{
    ChunkData, DocumentData, EmbeddingConfig, HnswParams, IndexConfig, IvfParams, KdTreeParams,
    LibraryConfig, LshParams, Metadata, Metric,
};
