//! Change events: every durable state change becomes a typed [`Event`] (skeleton; the
//! bus, SSE and WebSocket transports are filled in by issue 7's events work).
//!
//! The bus is process-global, like the metrics registry, so the committer in
//! `tenant.rs` and the job runner can publish without threading a handle through
//! every constructor.

use std::sync::OnceLock;

use arrwdb_core::WalRecord;
use axum::Router;

use crate::http::AppState;

/// Flags of the event transports (flattened into `arrwdb serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {}

/// One change event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// The tenant whose state changed; events never cross tenants.
    pub tenant: String,
    /// `library.created`, `document.upserted`, `job.completed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The library concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Document (or job) ids concerned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The WAL sequence number of the record, for changes that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Extra fields (a job's progress, a snapshot's sequence number).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Event {
    /// An event without ids, sequence number or data.
    pub fn new(tenant: &str, kind: &str, library: Option<&str>) -> Self {
        Event {
            tenant: tenant.into(),
            kind: kind.into(),
            library: library.map(Into::into),
            ids: Vec::new(),
            seq: None,
            data: serde_json::Value::Null,
        }
    }
}

/// The process-wide event bus.
#[derive(Debug, Default)]
pub struct EventBus {}

impl EventBus {
    /// Publishes one event to the tenant's subscribers.
    pub fn publish(&self, event: Event) {
        let _ = event;
    }

    /// Called by the committer once `records` of `library` are durable (in order).
    pub fn committed(&self, tenant: &str, library: &str, records: &[WalRecord]) {
        let _ = (tenant, library, records);
    }

    /// Called when a snapshot of `library` at `seq` is written and published.
    pub fn snapshot_created(&self, tenant: &str, library: &str, seq: u64, bytes: usize) {
        let _ = (tenant, library, seq, bytes);
    }
}

/// The process-wide bus.
pub fn bus() -> &'static EventBus {
    static BUS: OnceLock<EventBus> = OnceLock::new();
    BUS.get_or_init(EventBus::default)
}

/// `/v1/events` (SSE) and `/v1/ws` (WebSocket).
pub fn routes() -> Router<AppState> {
    Router::new()
}
