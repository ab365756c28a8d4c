//! The engine, as the edge worker's WebAssembly component running under wasmtime.
//!
//! Every prepare, apply, query, snapshot and restore crosses the `arrw:db/engine`
//! interface of the *same* `.wasm` file the edge runtimes serve, so all three runtimes
//! execute one build of the engine; the host only encodes and decodes the postcard
//! messages (`arrwdb_core::codec`). The one exception is a full index rebuild, which
//! [`EngineInstance::apply`] may run on native threads within the instance's bounds and
//! load back into it ([`crate::native_build`]).
//!
//! [`EngineComponent`] holds what is built once (wasmtime `Engine`, `Linker`, the
//! pre-instantiated component, an epoch ticker); [`EngineInstance`] is one `Store` plus
//! instance, the unit of isolation (one per tenant), bounded in memory by `StoreLimits`
//! and in time by an epoch deadline, so a runaway call traps instead of hanging the
//! server.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrwdb_core::{Command, Outcome, Query, QueryResponse, WalRecord, codec};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceTable, ResourceType};
use wasmtime::error::Context as _;
use wasmtime::{Config, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::ApiError;
use crate::native_build::{self, BuildThreads};

mod bindings {
    wasmtime::component::bindgen!({ world: "edge", path: "../edge-worker/wit" });
}

use bindings::exports::arrw::db::engine::Error as WitError;
use bindings::{Edge, EdgePre};

/// How often the epoch ticker advances wasmtime's epoch. Deadlines are whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Resource bounds of one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Longest a single engine call may run before it traps.
    pub call_timeout: Duration,
    /// Most native threads one full index rebuild may use (`--build-threads`); 0 keeps
    /// rebuilds inside the instance. See [`crate::native_build`].
    pub build_threads: usize,
}

/// Why a component call failed.
#[derive(Debug)]
pub enum CallError {
    /// The engine refused the request (the WIT `error` variant, or a message that did
    /// not decode). The instance is intact.
    Refused(ApiError),
    /// The instance trapped (including the epoch deadline and the memory limit). Its
    /// state is unknown: the caller must discard it and rebuild from storage.
    Trapped(String),
    /// The call was given up (a native index rebuild past the call deadline,
    /// [`crate::native_build`]): the instance is intact and unchanged.
    Stopped(String),
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Refused(e) => e,
            CallError::Trapped(message) => ApiError::internal(format!(
                "the engine instance trapped and was reset: {message}"
            )),
            CallError::Stopped(message) => ApiError::internal(message),
        }
    }
}

fn wit_error(e: WitError) -> ApiError {
    match e {
        WitError::Invalid(m) => ApiError::invalid(m),
        WitError::NotFound(m) => ApiError::not_found(m),
        WitError::Conflict(m) => ApiError::conflict(m),
        WitError::Internal(m) => ApiError::internal(m),
    }
}

/// Store data: WASI (no preopens, no network, stderr inherited) and the limits.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limiter,
}

/// `StoreLimits`, also counting the bytes of linear memory the instance holds (wasm
/// memory only grows), for [`EngineInstance::memory_bytes`].
struct Limiter {
    limits: StoreLimits,
    memory: usize,
    /// The growth `memory` counts until wasmtime reports it failed.
    growing: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allow = self.limits.memory_growing(current, desired, maximum)?;
        if allow {
            self.growing = desired.saturating_sub(current);
            self.memory = self.memory.saturating_add(self.growing);
        }
        Ok(allow)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory = self
            .memory
            .saturating_sub(std::mem::take(&mut self.growing));
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Packages that `wasmtime_wasi::p2::add_to_linker_sync` provides (the
/// `wasi:cli/imports` world, at 0.2.12 in wasmtime-wasi 48, which also satisfies
/// older 0.2.x imports).
const WASI_P2_PACKAGES: [&str; 6] = [
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Defines every other import (the wasi:http types and outgoing handler that spin-sdk
/// links in, which the engine export never calls) as a function that traps.
///
/// Not `Linker::define_unknown_imports_as_traps`: in wasmtime 48 it looks imports up by
/// their exact versioned name, so it also stubs `wasi:cli/stderr@0.2.6` although the
/// linker provides `@0.2.12`, and the stub then shadows the real WASI function.
fn trap_imports_outside_wasi_p2(
    linker: &mut Linker<HostState>,
    component: &Component,
) -> wasmtime::Result<()> {
    let engine = component.engine();
    let ty = component.component_type();
    // Resources already imported: later interfaces re-export them (`use`), and those
    // aliases must resolve to the earlier definition rather than get a new one.
    let mut known = Vec::new();
    for (name, import) in ty.imports(engine) {
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            wasmtime::bail!(
                "the engine component imports `{name}`, which this host cannot provide"
            );
        };
        let provided = WASI_P2_PACKAGES.iter().any(|p| name.starts_with(p));
        let mut stubs = if provided {
            None
        } else {
            Some(linker.instance(name)?)
        };
        for (export, item) in instance.exports(engine) {
            match (item.ty, stubs.as_mut()) {
                (ComponentItem::Resource(resource), stubs) => {
                    if known.contains(&resource) {
                        continue;
                    }
                    known.push(resource);
                    if let Some(stubs) = stubs {
                        stubs.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                    }
                }
                (ComponentItem::ComponentFunc(_), Some(stubs)) => {
                    let what = format!("{name}#{export}");
                    stubs.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!("`{what}` is not available to the engine in the host")
                    })?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The compiled, linked and pre-instantiated edge component.
pub struct EngineComponent {
    pre: EdgePre<HostState>,
    limits: InstanceLimits,
    ticker_stop: Arc<AtomicBool>,
    /// Native threads for the full rebuilds of every instance: the machine's cores.
    builds: Arc<BuildThreads>,
}

impl std::fmt::Debug for EngineComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineComponent")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl EngineComponent {
    /// Compiles the component at `path`, links WASI p2 (no preopens, no network) and
    /// traps for every other import, and pre-instantiates it.
    ///
    /// # Errors
    /// A missing or invalid file, or a component whose `arrw:db/engine` export does not
    /// match this host's WIT.
    pub fn load(path: &Path, limits: InstanceLimits, cache: bool) -> wasmtime::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        if cache {
            // wasmtime's own, safe cache: compiled code keyed by a hash of the input and
            // the compiler settings, under the user's cache directory. A cache that
            // cannot start only costs the compile time.
            match wasmtime::Cache::new(wasmtime::CacheConfig::new()) {
                Ok(cache) => {
                    config.cache(Some(cache));
                }
                Err(e) => tracing::warn!(error = %e, "compilation cache unavailable"),
            }
        }
        let engine = wasmtime::Engine::new(&config)?;
        let component = Component::from_file(&engine, path)
            .with_context(|| format!("load the engine component {}", path.display()))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        trap_imports_outside_wasi_p2(&mut linker, &component)?;
        let pre = EdgePre::new(linker.instantiate_pre(&component)?).with_context(|| {
            format!(
                "{} does not export arrw:db/engine as this host expects",
                path.display()
            )
        })?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        let stop = ticker_stop.clone();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .context("start the epoch ticker")?;
        Ok(EngineComponent {
            pre,
            limits,
            ticker_stop,
            builds: Arc::new(BuildThreads::new(crate::cores())),
        })
    }

    /// A fresh instance with an empty engine.
    ///
    /// # Errors
    /// Instantiation failures (e.g. the memory limit is below the component's minimum).
    pub fn instantiate(&self) -> wasmtime::Result<EngineInstance> {
        let wasi = WasiCtx::builder()
            .inherit_stderr()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .build();
        let state = HostState {
            wasi,
            table: ResourceTable::new(),
            limits: Limiter {
                limits,
                memory: 0,
                growing: 0,
            },
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|s| &mut s.limits);
        // wasmtime caps what one call may copy out of the guest (128 MiB by default), so
        // a larger snapshot trapped. The guest cannot return more than its memory holds,
        // and that is already bounded by the memory limit.
        store.set_hostcall_fuel(self.limits.memory_bytes.max(128 << 20));
        let deadline_ticks =
            (self.limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        store.set_epoch_deadline(deadline_ticks);
        let edge = self
            .pre
            .instantiate(&mut store)
            .context("instantiate the engine component")?;
        Ok(EngineInstance {
            store,
            edge,
            deadline_ticks,
            limits: self.limits,
            builds: self.builds.clone(),
        })
    }
}

impl Drop for EngineComponent {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

/// One instance of the engine component and its store. Single-threaded: callers
/// serialize access (the tenant's mutex).
pub struct EngineInstance {
    store: Store<HostState>,
    edge: Edge,
    deadline_ticks: u64,
    limits: InstanceLimits,
    builds: Arc<BuildThreads>,
}

impl std::fmt::Debug for EngineInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineInstance")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, CallError> {
    codec::to_bytes(value).map_err(|e| CallError::Refused(e.into()))
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, CallError> {
    codec::from_bytes(what, bytes).map_err(|e| CallError::Refused(e.into()))
}

impl EngineInstance {
    /// Runs one export call under a fresh epoch deadline; traps become
    /// [`CallError::Trapped`], engine errors [`CallError::Refused`].
    fn call<T>(
        &mut self,
        f: impl FnOnce(&Edge, &mut Store<HostState>) -> wasmtime::Result<Result<T, WitError>>,
    ) -> Result<T, CallError> {
        self.store.set_epoch_deadline(self.deadline_ticks);
        match f(&self.edge, &mut self.store) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(CallError::Refused(wit_error(e))),
            Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::Interrupt) => {
                Err(CallError::Trapped(format!(
                    "engine call exceeded its {:?} deadline",
                    self.limits.call_timeout
                )))
            }
            Err(e) => {
                // The full error carries the wasm backtrace: log it, answer the cause.
                tracing::error!(error = ?e, "engine call trapped");
                let cause = match e.downcast_ref::<Trap>() {
                    Some(trap) => trap.to_string(),
                    None => e.root_cause().to_string(),
                };
                Err(CallError::Trapped(cause))
            }
        }
    }

    /// Validates `command` into a WAL record without changing state.
    pub fn prepare(&mut self, command: &Command) -> Result<WalRecord, CallError> {
        let bytes = encode(command)?;
        let out = self.call(|e, s| e.arrw_db_engine().call_prepare(s, &bytes))?;
        decode("WAL record", &out)
    }

    /// Applies one WAL record. A full index rebuild runs on native threads when it fits
    /// the instance's bounds ([`crate::native_build`]); the state it leaves is the same.
    pub fn apply(&mut self, record: &WalRecord) -> Result<Outcome, CallError> {
        if !native_build::rebuilds_index(record) {
            return self.apply_inside(record);
        }
        let counted = |runtime: &str, result: &Result<Outcome, CallError>| {
            let result = if result.is_ok() { "built" } else { "failed" };
            crate::metrics::metrics().index_rebuilt(runtime, result);
        };
        if self.limits.build_threads > 0 {
            let builds = self.builds.clone();
            let native = native_build::apply(self, &builds, record).transpose();
            if let Some(result) = native {
                counted("native", &result);
                return result;
            }
        }
        let result = self.apply_inside(record);
        counted("component", &result);
        result
    }

    /// Applies one WAL record inside the instance.
    fn apply_inside(&mut self, record: &WalRecord) -> Result<Outcome, CallError> {
        let bytes = encode(record)?;
        let out = self.call(|e, s| e.arrw_db_engine().call_apply(s, &bytes))?;
        decode("outcome", &out)
    }

    /// Answers a read-only query.
    pub fn query(&mut self, query: &Query) -> Result<QueryResponse, CallError> {
        let bytes = encode(query)?;
        let out = self.call(|e, s| e.arrw_db_engine().call_query(s, &bytes))?;
        decode("query response", &out)
    }

    /// The framed snapshot of `library`.
    pub fn snapshot(&mut self, library: &str) -> Result<Vec<u8>, CallError> {
        self.call(|e, s| e.arrw_db_engine().call_snapshot(s, library))
    }

    /// Loads a framed snapshot; returns the name of the library it holds.
    pub fn restore(&mut self, snapshot: &[u8]) -> Result<String, CallError> {
        self.call(|e, s| e.arrw_db_engine().call_restore(s, snapshot))
    }

    /// The bounds this instance runs within.
    pub fn limits(&self) -> InstanceLimits {
        self.limits
    }

    /// Bytes of linear memory the instance holds: the most it ever used (wasm memory
    /// does not shrink; the guest's allocator reuses what it frees).
    pub fn memory_bytes(&self) -> usize {
        self.store.data().limits.memory
    }

    /// Forgets `library` without logging anything.
    pub fn evict(&mut self, library: &str) -> Result<bool, CallError> {
        self.call(|e, s| e.arrw_db_engine().call_evict(s, library).map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrwdb_core::{ChunkData, DocumentData, Engine, LibraryConfig, Metadata, Metric};

    /// The release component, built by `cargo xtask build` before the tests run.
    fn component(memory_bytes: usize) -> EngineComponent {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/wasm32-wasip2/release/arrwdb_edge.wasm");
        let limits = InstanceLimits {
            memory_bytes,
            call_timeout: Duration::from_secs(120),
            build_threads: 2,
        };
        EngineComponent::load(&path, limits, true).unwrap_or_else(|e| {
            panic!(
                "{e:#}: build it with `cargo build --release -p arrwdb-edge --target wasm32-wasip2`"
            )
        })
    }

    /// A library whose snapshot is larger than wasmtime's default 128 MiB limit on what
    /// one call may copy out of the guest: the instance must hand it over, not trap.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn snapshots_larger_than_128_mib_leave_the_instance() {
        let (n, dimension) = (90_000u32, 384u32);
        let mut engine = Engine::new();
        let config = LibraryConfig {
            name: "big".into(),
            dimension,
            metric: Metric::Cosine,
            index: Default::default(),
            quantization: Default::default(),
            text: Default::default(),
            embedding: None,
        };
        let record = engine.prepare(Command::CreateLibrary(config)).unwrap();
        engine.apply(&record).unwrap();
        let mut x = 1u32;
        for i in 0..n {
            let embedding = (0..dimension)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    (x % 1000) as f32 / 1000.0 - 0.5
                })
                .collect();
            let document = DocumentData {
                id: i.to_string(),
                metadata: Metadata::default(),
                chunks: vec![ChunkData {
                    id: i.to_string(),
                    text: String::new(),
                    embedding,
                    metadata: Metadata::default(),
                }],
            };
            let record = engine
                .prepare(Command::UpsertDocument {
                    library: "big".into(),
                    document,
                })
                .unwrap();
            engine.apply(&record).unwrap();
        }
        let native = engine.snapshot("big").unwrap();
        assert!(native.len() > 128 << 20, "{} bytes", native.len());

        let mut instance = component(1 << 30).instantiate().unwrap();
        let empty = instance.memory_bytes();
        assert!(
            empty > 0 && empty < 64 << 20,
            "a fresh instance holds {empty} bytes"
        );
        assert_eq!(instance.restore(&native).unwrap(), "big");
        // The snapshot crossed into the guest and was decoded there: both copies at once.
        let holding = instance.memory_bytes();
        assert!(
            holding >= empty + native.len() && holding <= 1 << 30,
            "{holding} bytes after restoring {}",
            native.len()
        );
        let from_guest = match instance.snapshot("big") {
            Ok(bytes) => bytes,
            Err(e) => panic!("snapshot of {} bytes failed: {e:?}", native.len()),
        };
        assert!(
            from_guest == native,
            "the guest's snapshot differs from the native one"
        );
    }
}
