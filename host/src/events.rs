//! Change events: every durable state change becomes a typed [`Event`], delivered to
//! subscribers over Server-Sent Events (`GET /v1/events`) and WebSocket (`GET /v1/ws`,
//! see [`ws`]). docs/events.md describes the wire formats and the resume rules.
//!
//! Key choices:
//! - The bus is process-global, like the metrics registry, so the committer in
//!   `tenant.rs` and the job runner can publish without threading a handle through
//!   every constructor. Each tenant has its own bus: a subscriber can only ever be
//!   attached to its caller's tenant, so events never cross tenants.
//! - Publishing never waits: it takes one short `std` mutex (id assignment, ring
//!   buffer, history) and hands the event to a `tokio::sync::broadcast` channel, which
//!   overwrites the oldest message instead of blocking. A subscriber that falls behind
//!   (slow client, TCP backpressure) refills the gap from the ring buffer and the WAL,
//!   so a slow consumer costs no memory beyond the shared buffer.
//! - Event ids are per tenant, strictly increasing and gap-free within a process, and
//!   start at `boot time in ms × 1000`, so ids of a later process are larger than any
//!   id of an earlier one (unless it published over a million events per second on
//!   average) and stay below 2^53 (exact in JavaScript) until the year 2255.
//! - Resume: the ring buffer (`--events-buffer`) holds the newest events whole. Older
//!   ones are kept as a compact *history* (`--events-history` entries): one entry per
//!   committed WAL segment (its library, first sequence number, first event id, time),
//!   from which the events are rebuilt exactly by reading the segment back from
//!   storage. Events that cannot be rebuilt (job and snapshot events, segments of a
//!   deleted library or already garbage-collected, ids from before this process) are
//!   never skipped silently: the subscriber gets an `event: reset` instead.

#[path = "ws.rs"]
pub mod ws;

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use arrwdb_core::{WalOp, WalRecord, api, codec};
use axum::Extension;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{broadcast, watch};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::http::AppState;
use crate::storage::ObjectStorage;

/// Flags of the event transports (flattened into `arrwdb serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Change events kept whole in memory per tenant, for `Last-Event-ID` resume.
    #[arg(long, env = "ARRWDB_EVENTS_BUFFER", default_value_t = 10_000)]
    pub events_buffer: usize,
    /// Older events remembered per tenant as WAL positions (one entry per WAL
    /// segment), so a resume beyond the buffer is replayed from the WAL.
    #[arg(long, env = "ARRWDB_EVENTS_HISTORY", default_value_t = 100_000)]
    pub events_history: usize,
    /// Interval of SSE heartbeat comments and WebSocket pings, in milliseconds.
    #[arg(long, env = "ARRWDB_EVENTS_HEARTBEAT_MS", default_value_t = 15_000)]
    pub events_heartbeat_ms: u64,
    /// Messages queued for one WebSocket client; a client that lets it fill up is
    /// disconnected (close code 1008) instead of being buffered for.
    #[arg(long, env = "ARRWDB_WS_QUEUE", default_value_t = 256)]
    pub ws_queue: usize,
}

impl EventsArgs {
    /// The settings from the environment and the defaults (no command line).
    fn from_env() -> Option<Self> {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            events: EventsArgs,
        }
        <Only as clap::Parser>::try_parse_from(["arrwdb"])
            .ok()
            .map(|o| o.events)
    }

    /// The heartbeat interval (at least 10 ms).
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.events_heartbeat_ms.max(10))
    }
}

/// Every event type the server emits (a `types` filter must name these, or a
/// `prefix.*` of them, or `*`).
pub const EVENT_TYPES: &[&str] = &[
    "library.created",
    "library.deleted",
    "document.upserted",
    "document.deleted",
    "index.rebuilt",
    "index.optimized",
    "snapshot.created",
    "job.started",
    "job.progress",
    "job.completed",
    "job.failed",
    "job.cancelled",
];

/// One change event.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// Per-tenant event id, assigned when published (0 before).
    pub id: u64,
    /// `library.created`, `document.upserted`, `job.completed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant whose state changed; events never cross tenants.
    pub tenant: String,
    /// The library concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Document (or job) ids concerned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ids: Vec<String>,
    /// The WAL sequence number of the record, for changes that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// When the event was published (the WAL segment became durable), in ms since
    /// the Unix epoch.
    pub time_ms: u64,
    /// Extra fields (a job's progress, a snapshot's sequence number).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Event {
    /// An event without ids, sequence number or data.
    pub fn new(tenant: &str, kind: &str, library: Option<&str>) -> Self {
        Event {
            id: 0,
            kind: kind.into(),
            tenant: tenant.into(),
            library: library.map(Into::into),
            ids: Vec::new(),
            seq: None,
            time_ms: 0,
            data: serde_json::Value::Null,
        }
    }

    /// The event of one WAL record.
    fn from_record(tenant: &str, record: &WalRecord) -> Self {
        let (kind, ids, data) = match &record.op {
            WalOp::CreateLibrary(config) => (
                "library.created",
                Vec::new(),
                serde_json::to_value(config).unwrap_or_default(),
            ),
            WalOp::DeleteLibrary => ("library.deleted", Vec::new(), serde_json::Value::Null),
            WalOp::UpsertDocument(doc) => (
                "document.upserted",
                vec![doc.id.clone()],
                serde_json::json!({"chunks": doc.chunks.len()}),
            ),
            WalOp::DeleteDocument { id } => (
                "document.deleted",
                vec![id.clone()],
                serde_json::Value::Null,
            ),
            WalOp::DeleteDocuments { ids } => {
                ("document.deleted", ids.clone(), serde_json::Value::Null)
            }
            WalOp::RebuildIndex(index) => (
                "index.rebuilt",
                Vec::new(),
                serde_json::json!({ "index": index }),
            ),
            WalOp::Optimize => ("index.optimized", Vec::new(), serde_json::Value::Null),
        };
        let mut event = Event::new(tenant, kind, Some(&record.library));
        event.ids = ids;
        event.seq = Some(record.seq);
        event.data = data;
        event
    }
}

/// A published event with its JSON, serialized once for every subscriber.
#[derive(Debug)]
pub struct Published {
    pub event: Event,
    pub json: String,
}

type Shared = Arc<Published>;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a range of event ids in the history was.
#[derive(Debug, Clone)]
enum What {
    /// One WAL segment: `count` records from `first_seq`, committed at `time_ms`.
    Wal { first_seq: u64, time_ms: u64 },
    /// Events that cannot be rebuilt (`kind` None: of any type).
    Gone { kind: Option<String> },
}

/// `count` consecutive event ids from `first_id`.
#[derive(Debug, Clone)]
struct Entry {
    first_id: u64,
    count: u64,
    library: Option<String>,
    what: What,
}

impl Entry {
    fn end(&self) -> u64 {
        self.first_id + self.count
    }
}

/// A part of a WAL segment to rebuild events from.
#[derive(Debug, Clone)]
struct WalChunk {
    library: String,
    first_seq: u64,
    /// Event id of the segment's first record, and the segment's record count.
    entry_first_id: u64,
    entry_count: u64,
    time_ms: u64,
    /// The ids wanted: `from..to`.
    from: u64,
    to: u64,
}

/// What a subscriber still has to deliver before the live stream.
#[derive(Debug, Clone)]
enum Item {
    Event(Shared),
    Wal(WalChunk),
    Reset { reason: String, id: u64 },
}

/// One tenant's bus.
#[derive(Debug)]
struct TenantBus {
    state: Mutex<TenantState>,
    tx: broadcast::Sender<Shared>,
}

#[derive(Debug)]
struct TenantState {
    next_id: u64,
    buffer: VecDeque<Shared>,
    history: VecDeque<Entry>,
    /// Ids below this are not in the history any more.
    history_start: u64,
}

impl TenantState {
    fn push_history(&mut self, entry: Entry, cap: usize) {
        if let Some(last) = self.history.back_mut()
            && let (What::Gone { kind: a }, What::Gone { kind: b }) = (&last.what, &entry.what)
            && a == b
            && last.library == entry.library
            && last.end() == entry.first_id
        {
            last.count += entry.count;
            return;
        }
        self.history.push_back(entry);
        while self.history.len() > cap.max(1) {
            self.history.pop_front();
            self.history_start = self.history.front().map_or(self.next_id, |e| e.first_id);
        }
    }

    /// What a subscriber that has seen every event up to `last` must get before the
    /// live stream (which starts at `next_id`).
    fn plan(&self, last: u64, filter: &Filter) -> Vec<Item> {
        let newest = self.next_id - 1;
        if last > newest {
            return vec![Item::Reset {
                reason: format!(
                    "event id {last} was not issued by this server process (newest: {newest})"
                ),
                id: newest,
            }];
        }
        let buffered_from = self.buffer.front().map_or(self.next_id, |e| e.event.id);
        let mut items = Vec::new();
        if last + 1 < buffered_from {
            if last + 1 < self.history_start {
                return vec![Item::Reset {
                    reason: format!(
                        "events after id {last} are no longer available (the oldest known is {})",
                        self.history_start
                    ),
                    id: newest,
                }];
            }
            let mut missed = 0;
            for entry in &self.history {
                let from = entry.first_id.max(last + 1);
                let to = entry.end().min(buffered_from);
                if from >= to || !filter.library_matches(entry.library.as_deref()) {
                    continue;
                }
                match (&entry.what, &entry.library) {
                    (What::Wal { first_seq, time_ms }, Some(library)) => {
                        items.push(Item::Wal(WalChunk {
                            library: library.clone(),
                            first_seq: *first_seq,
                            entry_first_id: entry.first_id,
                            entry_count: entry.count,
                            time_ms: *time_ms,
                            from,
                            to,
                        }));
                    }
                    (What::Gone { kind }, _) if filter.kind_may_match(kind.as_deref()) => {
                        missed += to - from;
                    }
                    _ => {}
                }
            }
            if missed > 0 {
                return vec![Item::Reset {
                    reason: format!(
                        "{missed} events after id {last} cannot be replayed (job or snapshot events, or a deleted library's changes, older than the buffer)"
                    ),
                    id: newest,
                }];
            }
        }
        items.extend(
            self.buffer
                .iter()
                .filter(|e| e.event.id > last)
                .cloned()
                .map(Item::Event),
        );
        items
    }
}

/// The process-wide event bus.
#[derive(Debug)]
pub struct EventBus {
    tenants: Mutex<BTreeMap<String, Arc<TenantBus>>>,
    buffer: AtomicUsize,
    history: AtomicUsize,
    configured: AtomicBool,
    storage: OnceLock<ObjectStorage>,
    /// Ids of this process start above this.
    base: u64,
    shutdown: watch::Sender<bool>,
}

impl Default for EventBus {
    fn default() -> Self {
        let args = EventsArgs::from_env();
        EventBus {
            tenants: Mutex::new(BTreeMap::new()),
            buffer: AtomicUsize::new(args.as_ref().map_or(10_000, |a| a.events_buffer)),
            history: AtomicUsize::new(args.as_ref().map_or(100_000, |a| a.events_history)),
            configured: AtomicBool::new(false),
            storage: OnceLock::new(),
            base: now_ms().saturating_mul(1000),
            shutdown: watch::Sender::new(false),
        }
    }
}

/// Broadcast capacity per tenant; a subscriber further behind refills from the buffer.
const CHANNEL: usize = 1024;

impl EventBus {
    /// Applies the command-line settings and gives the bus read access to the WAL
    /// (for resumes older than the buffer). Call once at startup.
    pub fn init(&self, args: &EventsArgs, storage: ObjectStorage) {
        self.configure(args);
        let _ = self.storage.set(storage);
    }

    /// Applies the buffer and history sizes (the first call wins).
    pub fn configure(&self, args: &EventsArgs) {
        if !self.configured.swap(true, Ordering::AcqRel) {
            self.buffer.store(args.events_buffer, Ordering::Relaxed);
            self.history.store(args.events_history, Ordering::Relaxed);
        }
    }

    /// Ends every event stream (on shutdown, so graceful shutdown does not wait for
    /// subscribers that never disconnect).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns `true` on shutdown. The first call also starts a task
    /// that waits for SIGTERM / SIGINT (tokio delivers a signal to every listener, so
    /// this does not take it from the server's own shutdown handler).
    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        static LISTENING: AtomicBool = AtomicBool::new(false);
        if !LISTENING.swap(true, Ordering::AcqRel) {
            tokio::spawn(async {
                let term = async {
                    use tokio::signal::unix::{SignalKind, signal};
                    match signal(SignalKind::terminate()) {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    Ok(()) = tokio::signal::ctrl_c() => {}
                    () = term => {}
                }
                bus().shutdown();
            });
        }
        self.shutdown.subscribe()
    }

    fn tenant(&self, name: &str) -> Arc<TenantBus> {
        let mut tenants = lock(&self.tenants);
        if let Some(bus) = tenants.get(name) {
            return bus.clone();
        }
        let (tx, _) = broadcast::channel(CHANNEL);
        let bus = Arc::new(TenantBus {
            state: Mutex::new(TenantState {
                next_id: self.base + 1,
                buffer: VecDeque::new(),
                history: VecDeque::new(),
                history_start: self.base + 1,
            }),
            tx,
        });
        tenants.insert(name.into(), bus.clone());
        bus
    }

    /// Assigns ids and publishes `events` of `tenant` (all from one WAL segment when
    /// `wal` is set: its library and first sequence number).
    fn emit(&self, tenant: &str, events: Vec<Event>, wal: Option<(&str, u64)>) {
        if events.is_empty() {
            return;
        }
        let bus = self.tenant(tenant);
        let time_ms = now_ms();
        let (buffer_cap, history_cap) = (
            self.buffer.load(Ordering::Relaxed),
            self.history.load(Ordering::Relaxed),
        );
        let mut state = lock(&bus.state);
        let first_id = state.next_id;
        if let Some((library, first_seq)) = wal {
            let entry = Entry {
                first_id,
                count: events.len() as u64,
                library: Some(library.into()),
                what: What::Wal { first_seq, time_ms },
            };
            state.push_history(entry, history_cap);
        }
        for mut event in events {
            event.id = state.next_id;
            state.next_id += 1;
            if event.time_ms == 0 {
                event.time_ms = time_ms;
            }
            if wal.is_none() {
                let entry = Entry {
                    first_id: event.id,
                    count: 1,
                    library: event.library.clone(),
                    what: What::Gone {
                        kind: Some(event.kind.clone()),
                    },
                };
                state.push_history(entry, history_cap);
            }
            crate::metrics::metrics().event_published(&event.kind);
            let json = serde_json::to_string(&event).unwrap_or_default();
            let shared = Arc::new(Published { event, json });
            state.buffer.push_back(shared.clone());
            while state.buffer.len() > buffer_cap {
                state.buffer.pop_front();
            }
            // No receiver is not an error; a full channel overwrites, never blocks.
            let _ = bus.tx.send(shared);
        }
    }

    /// Publishes one event to the tenant's subscribers.
    pub fn publish(&self, event: Event) {
        let tenant = event.tenant.clone();
        self.emit(&tenant, vec![event], None);
    }

    /// Called by the committer once `records` of `library` are durable (in order, as
    /// one WAL segment).
    pub fn committed(&self, tenant: &str, library: &str, records: &[WalRecord]) {
        let Some(first) = records.first() else {
            return;
        };
        let events = records
            .iter()
            .map(|r| Event::from_record(tenant, r))
            .collect();
        self.emit(tenant, events, Some((library, first.seq)));
        if records.iter().any(|r| matches!(r.op, WalOp::DeleteLibrary)) {
            // Its segments are deleted now (and the name may be reused): its history
            // can no longer be read back.
            let bus = self.tenant(tenant);
            let mut state = lock(&bus.state);
            for entry in &mut state.history {
                if entry.library.as_deref() == Some(library)
                    && matches!(entry.what, What::Wal { .. })
                {
                    entry.what = What::Gone { kind: None };
                }
            }
        }
    }

    /// Called when a snapshot of `library` at `seq` is written and published.
    pub fn snapshot_created(&self, tenant: &str, library: &str, seq: u64, bytes: usize) {
        let mut event = Event::new(tenant, "snapshot.created", Some(library));
        event.seq = Some(seq);
        event.data = serde_json::json!({ "bytes": bytes });
        self.publish(event);
    }

    /// Subscribes to `tenant`'s events matching `filter`, after event `last` if set.
    pub fn subscribe(&self, tenant: &str, filter: Filter, last: Option<u64>) -> Subscription {
        let bus = self.tenant(tenant);
        let state = lock(&bus.state);
        let rx = bus.tx.subscribe();
        let newest = state.next_id - 1;
        let pending = match last {
            Some(last) => state.plan(last, &filter),
            None => Vec::new(),
        };
        drop(state);
        crate::metrics::metrics().events_subscribers.inc();
        Subscription {
            tenant: tenant.into(),
            bus,
            filter,
            rx,
            pending: pending.into(),
            last: last.map_or(newest, |l| l.min(newest)),
            shutdown: self.shutdown_signal(),
            storage: self.storage.get().cloned(),
        }
    }
}

/// The process-wide bus.
pub fn bus() -> &'static EventBus {
    static BUS: OnceLock<EventBus> = OnceLock::new();
    BUS.get_or_init(EventBus::default)
}

/// One accepted type pattern.
#[derive(Debug, Clone, PartialEq)]
enum TypePattern {
    Any,
    Exact(String),
    /// `document.` for `document.*`.
    Prefix(String),
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    library: Option<String>,
    /// Empty: every type.
    types: Vec<TypePattern>,
}

impl Filter {
    /// Parses `library` and the comma-separated `types` (`document.upserted`,
    /// `document.*`, `*`).
    ///
    /// # Errors
    /// 400 for a malformed library name or an unknown type.
    pub fn new(library: Option<&str>, types: Option<&str>) -> Result<Self, ApiError> {
        let library = match library {
            Some(name) => {
                api::validate_library_name(name)?;
                Some(name.to_string())
            }
            None => None,
        };
        let mut patterns = Vec::new();
        for t in types.unwrap_or("").split(',').map(str::trim) {
            if t.is_empty() {
                continue;
            }
            let pattern = if t == "*" {
                TypePattern::Any
            } else if let Some(prefix) = t.strip_suffix('*')
                && prefix.ends_with('.')
                && EVENT_TYPES.iter().any(|k| k.starts_with(prefix))
            {
                TypePattern::Prefix(prefix.into())
            } else if EVENT_TYPES.contains(&t) {
                TypePattern::Exact(t.into())
            } else {
                return Err(ApiError::invalid(format!(
                    "unknown event type `{t}`: use one of {}, a prefix such as `document.*`, or `*`",
                    EVENT_TYPES.join(", ")
                )));
            };
            patterns.push(pattern);
        }
        Ok(Filter {
            library,
            types: patterns,
        })
    }

    fn library_matches(&self, library: Option<&str>) -> bool {
        self.library
            .as_deref()
            .is_none_or(|wanted| library == Some(wanted))
    }

    fn kind_matches(&self, kind: &str) -> bool {
        self.types.is_empty()
            || self.types.iter().any(|p| match p {
                TypePattern::Any => true,
                TypePattern::Exact(k) => k == kind,
                TypePattern::Prefix(prefix) => kind.starts_with(prefix.as_str()),
            })
    }

    /// `kind` None: unknown, so possibly wanted.
    fn kind_may_match(&self, kind: Option<&str>) -> bool {
        kind.is_none_or(|k| self.kind_matches(k))
    }

    /// Whether `event` is wanted.
    pub fn matches(&self, event: &Event) -> bool {
        self.library_matches(event.library.as_deref()) && self.kind_matches(&event.kind)
    }
}

/// What a subscription delivers.
#[derive(Debug, Clone)]
pub enum Delivery {
    Event(Shared),
    /// Events were lost; the stream goes on after event `id`.
    Reset {
        reason: String,
        id: u64,
    },
}

/// One subscriber: the replay it still owes, then the live stream. Dropping it
/// unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    tenant: String,
    bus: Arc<TenantBus>,
    filter: Filter,
    rx: broadcast::Receiver<Shared>,
    pending: VecDeque<Item>,
    /// Every event up to this id has been delivered or filtered out.
    last: u64,
    shutdown: watch::Receiver<bool>,
    /// Where WAL segments are read back from (none: gaps become resets).
    storage: Option<ObjectStorage>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        crate::metrics::metrics().events_subscribers.dec();
    }
}

impl Subscription {
    /// The next event or reset; `None` once the server shuts down. Cancel-safe.
    pub async fn next(&mut self) -> Option<Delivery> {
        loop {
            if *self.shutdown.borrow() {
                return None;
            }
            if let Some(item) = self.pending.front().cloned() {
                match item {
                    Item::Event(shared) => {
                        self.pending.pop_front();
                        if let Some(d) = self.offer(shared) {
                            return Some(d);
                        }
                    }
                    Item::Reset { reason, id } => {
                        self.pending.pop_front();
                        self.last = self.last.max(id);
                        return Some(Delivery::Reset { reason, id });
                    }
                    Item::Wal(chunk) => match self.rebuild(&chunk).await {
                        Ok(events) => {
                            self.pending.pop_front();
                            for event in events.into_iter().rev() {
                                self.pending.push_front(Item::Event(event));
                            }
                        }
                        Err(reason) => {
                            // Give up the rest of the WAL replay: report the gap.
                            let mut id = chunk.to - 1;
                            while let Some(Item::Wal(c)) = self.pending.front() {
                                id = id.max(c.to - 1);
                                self.pending.pop_front();
                            }
                            self.last = self.last.max(id);
                            return Some(Delivery::Reset { reason, id });
                        }
                    },
                }
                continue;
            }
            let received = tokio::select! {
                received = self.rx.recv() => received,
                _ = self.shutdown.changed() => return None,
            };
            match received {
                Ok(shared) => {
                    if let Some(d) = self.offer(shared) {
                        return Some(d);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let state = lock(&self.bus.state);
                    self.pending = state.plan(self.last, &self.filter).into();
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// Delivers `shared` unless already delivered or filtered out.
    fn offer(&mut self, shared: Shared) -> Option<Delivery> {
        if shared.event.id <= self.last {
            return None;
        }
        self.last = shared.event.id;
        self.filter
            .matches(&shared.event)
            .then_some(Delivery::Event(shared))
    }

    /// Reads a WAL segment back and rebuilds the events `chunk` names, exactly as
    /// they were published.
    async fn rebuild(&self, chunk: &WalChunk) -> Result<Vec<Shared>, String> {
        let gap = |why: String| {
            format!(
                "events {}..{} of library `{}` cannot be replayed: {why}",
                chunk.from, chunk.to, chunk.library
            )
        };
        let storage = self
            .storage
            .as_ref()
            .ok_or_else(|| gap("this server keeps no WAL access for events".into()))?;
        let key = arrwdb_core::storage::wal_key(&self.tenant, &chunk.library, chunk.first_seq);
        let bytes = storage.get(&key).await.map_err(|e| gap(e.to_string()))?;
        let records = tokio::task::spawn_blocking(move || codec::decode_wal_segment(&bytes))
            .await
            .map_err(|e| gap(e.to_string()))?
            .map_err(|e| gap(format!("{key}: {e}")))?;
        // The library may have been deleted (and its name reused) meanwhile.
        let still_wal = lock(&self.bus.state)
            .history
            .iter()
            .any(|e| e.first_id == chunk.entry_first_id && matches!(e.what, What::Wal { .. }));
        if !still_wal || records.len() as u64 != chunk.entry_count {
            return Err(gap("the library was deleted".into()));
        }
        let mut out = Vec::new();
        for (i, record) in records.iter().enumerate() {
            let id = chunk.entry_first_id + i as u64;
            if record.library != chunk.library || record.seq != chunk.first_seq + i as u64 {
                return Err(gap(format!("{key} does not hold the expected records")));
            }
            if id < chunk.from || id >= chunk.to {
                continue;
            }
            let mut event = Event::from_record(&self.tenant, record);
            event.id = id;
            event.time_ms = chunk.time_ms;
            let json = serde_json::to_string(&event).unwrap_or_default();
            out.push(Arc::new(Published { event, json }));
        }
        Ok(out)
    }
}

/// `/v1/events` (SSE) and `/v1/ws` (WebSocket).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(sse))
        .route("/v1/ws", get(ws::upgrade))
}

/// Query parameters of `GET /v1/events`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SseParams {
    library: Option<String>,
    types: Option<String>,
    last_event_id: Option<String>,
}

/// Parses an event id sent back by a client.
///
/// # Errors
/// 400 when it is not a decimal number.
pub fn parse_event_id(text: &str) -> Result<u64, ApiError> {
    text.trim()
        .parse()
        .map_err(|_| ApiError::invalid(format!("`{text}` is not an event id (a decimal number)")))
}

/// One SSE frame of a delivery.
fn frame(delivery: &Delivery) -> Bytes {
    match delivery {
        Delivery::Event(shared) => Bytes::from(format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            shared.event.id, shared.event.kind, shared.json
        )),
        Delivery::Reset { reason, id } => {
            let data = serde_json::json!({"reason": reason, "id": id});
            Bytes::from(format!("id: {id}\nevent: reset\ndata: {data}\n\n"))
        }
    }
}

async fn sse(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    params: Result<Query<SseParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    bus().configure(&state.events);
    let Query(params) = params.map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
    let filter = Filter::new(params.library.as_deref(), params.types.as_deref())?;
    let header_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::invalid("the Last-Event-ID header is not text"))
        })
        .transpose()?;
    let last = match header_id.or(params.last_event_id.as_deref()) {
        Some(text) => Some(parse_event_id(text)?),
        None => None,
    };
    let subscription = bus().subscribe(&caller.tenant_name, filter, last);
    let period = state.events.heartbeat();
    let heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let opening = futures::stream::once(async { Ok::<_, Infallible>(Bytes::from(": ok\n\n")) });
    let body = futures::stream::unfold(
        (subscription, heartbeat),
        |(mut subscription, mut heartbeat)| async move {
            let bytes = tokio::select! {
                delivery = subscription.next() => frame(&delivery?),
                _ = heartbeat.tick() => Bytes::from_static(b": heartbeat\n\n"),
            };
            Some((Ok::<_, Infallible>(bytes), (subscription, heartbeat)))
        },
    );
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(futures::StreamExt::chain(opening, body)),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_match() {
        let f = Filter::new(Some("docs"), Some("document.*, index.rebuilt")).expect("valid");
        let mut e = Event::new("t", "document.deleted", Some("docs"));
        assert!(f.matches(&e));
        e.library = Some("other".into());
        assert!(!f.matches(&e));
        let e = Event::new("t", "library.created", Some("docs"));
        assert!(!f.matches(&e));
        assert!(Filter::new(None, Some("document.upsert")).is_err());
        assert!(Filter::new(None, Some("nope.*")).is_err());
        assert!(Filter::new(Some("../x"), None).is_err());
        assert!(Filter::new(None, Some("*")).is_ok_and(|f| f.kind_matches("job.failed")));
    }

    /// A subscriber that is not polled while thousands of events go by catches up from
    /// the buffer and the WAL without a gap or a repeat.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_subscriber_refills_from_the_buffer_and_the_wal() {
        use arrwdb_core::DocumentData;
        let bus = EventBus::default();
        let storage = ObjectStorage::open("memory://").expect("memory");
        bus.init(
            &EventsArgs {
                events_buffer: 50,
                events_history: 1000,
                events_heartbeat_ms: 1000,
                ws_queue: 8,
            },
            storage.clone(),
        );
        let mut sub = bus.subscribe("t", Filter::default(), None);
        let mut seq = 0;
        for _ in 0..40 {
            let records: Vec<WalRecord> = (0..97)
                .map(|i| {
                    seq += 1;
                    WalRecord {
                        library: "l".into(),
                        seq,
                        op: WalOp::UpsertDocument(DocumentData {
                            id: format!("d{i}"),
                            metadata: Default::default(),
                            chunks: Vec::new(),
                        }),
                    }
                })
                .collect();
            let key = arrwdb_core::storage::wal_key("t", "l", records[0].seq);
            let bytes = codec::encode_wal_segment(&records).expect("encode");
            storage.put(&key, bytes).await.expect("put");
            bus.committed("t", "l", &records);
        }
        let mut ids = Vec::new();
        while ids.len() < 40 * 97 {
            match sub.next().await {
                Some(Delivery::Event(e)) => {
                    assert_eq!(e.event.seq, Some(ids.len() as u64 + 1));
                    ids.push(e.event.id);
                }
                other => panic!("after {} events: {other:?}", ids.len()),
            }
        }
        assert!(ids.windows(2).all(|w| w[1] == w[0] + 1));
    }
}
