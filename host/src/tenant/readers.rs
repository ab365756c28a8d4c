//! Read instances: extra engine instances of one tenant that answer queries, so
//! searches do not serialize behind the single-threaded writer instance.
//!
//! Key choices:
//! - The writer instance (the *primary*) stays the only one that prepares commands and
//!   decides what is durable. Every change it makes to its state after that is
//!   described by an op in an in-memory *op log*, appended while the tenant lock is
//!   held (so in the primary's order): the records of a durable WAL segment, or "this
//!   library is now exactly this snapshot" (after a reload, a foreign segment pickup, a
//!   replica poll), or a reset (the primary was rebuilt from storage).
//! - Readers catch up lazily: a read takes a free reader, applies the ops it has not
//!   seen yet, then queries. An acknowledged write's op is appended before the write is
//!   answered, so a read that starts afterwards sees it (read-your-writes). The writer
//!   never waits for readers, and idle readers cost no CPU.
//! - A reader that is new, trapped, or behind the retained ops is rebuilt from an
//!   *image*: the primary's snapshot bytes of every library at a known op position
//!   (taken once under the tenant lock and shared by every reader that needs it). So a
//!   reader never reads storage and can never differ from the primary.
//! - Readers are instantiated on first use, lowest index first, so a tenant only pays
//!   the memory of as many readers as it has concurrent reads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use arrwdb_core::WalRecord;
use tokio::sync::{Mutex, MutexGuard, Semaphore};

use crate::component::{CallError, EngineComponent, EngineInstance};
use crate::error::ApiError;
use crate::log::blocking;

/// Ops kept for readers that lag (beyond this, a lagging reader is rebuilt).
const MAX_RETAINED_RECORDS: usize = 50_000;

/// A change of the primary's state, replayed on every reader.
#[derive(Debug)]
pub enum ReadOp {
    /// The records of one durable WAL segment (or a replica's applied tail).
    Records(Vec<WalRecord>),
    /// `library` is now exactly this snapshot (`None`: it does not exist).
    Library {
        library: String,
        snapshot: Option<Vec<u8>>,
    },
}

/// Every library of the primary as snapshot bytes, after op position `position`.
#[derive(Debug)]
pub struct Image {
    position: u64,
    snapshots: Vec<Vec<u8>>,
}

#[derive(Debug, Default)]
struct OpLog {
    /// Position of `ops[0]`; the position after the last op is `base + ops.len()`.
    base: u64,
    ops: VecDeque<Arc<ReadOp>>,
    records: usize,
    image: Option<Arc<Image>>,
    /// Readers are bypassed until then (they could not be built).
    disabled_until: Option<Instant>,
}

impl OpLog {
    fn end(&self) -> u64 {
        self.base + self.ops.len() as u64
    }

    fn pop_front(&mut self) {
        if let Some(op) = self.ops.pop_front() {
            self.base += 1;
            if let ReadOp::Records(records) = &*op {
                self.records = self.records.saturating_sub(records.len());
            }
        }
    }
}

/// One reader: an instance (or none yet) and the op position it has applied up to.
#[derive(Debug, Default)]
struct Slot {
    instance: Option<EngineInstance>,
    position: u64,
}

/// A reader reserved for one query (see [`Readers::acquire`]).
pub struct Reader<'a> {
    slot: MutexGuard<'a, Slot>,
    index: usize,
    readers: &'a Readers,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

/// What a reader must do before it can answer.
pub enum Plan {
    /// Apply these ops, then it is at `end`.
    CatchUp(Vec<Arc<ReadOp>>, u64),
    /// Rebuild from this image first.
    Rebuild(Arc<Image>),
    /// Rebuild, but no usable image exists: take one from the primary.
    NeedImage,
}

/// The read instances of one tenant.
#[derive(Debug)]
pub struct Readers {
    component: Arc<EngineComponent>,
    slots: Vec<Mutex<Slot>>,
    permits: Semaphore,
    /// Op position of each reader with an instance (`u64::MAX`: none).
    positions: Vec<AtomicU64>,
    log: StdMutex<OpLog>,
}

impl Readers {
    /// `count` readers (created on first use).
    pub fn new(component: Arc<EngineComponent>, count: usize) -> Self {
        let count = count.max(1);
        Readers {
            component,
            slots: (0..count).map(|_| Mutex::new(Slot::default())).collect(),
            permits: Semaphore::new(count),
            positions: (0..count).map(|_| AtomicU64::new(u64::MAX)).collect(),
            log: StdMutex::new(OpLog::default()),
        }
    }

    fn with_log<R>(&self, f: impl FnOnce(&mut OpLog) -> R) -> R {
        // A poisoned lock only means a panic elsewhere; the log itself stays valid.
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut log)
    }

    /// Appends an op. Call with the tenant lock held, after the primary changed.
    pub fn push(&self, op: ReadOp) {
        let min = self
            .positions
            .iter()
            .map(|p| p.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        self.with_log(|log| {
            if let ReadOp::Records(records) = &op {
                log.records += records.len();
            }
            log.ops.push_back(Arc::new(op));
            // Drop what every live reader and the image have applied, and bound what
            // laggards need.
            let floor = log.image.as_ref().map_or(min, |i| min.min(i.position));
            while log.base < floor && !log.ops.is_empty() {
                log.pop_front();
            }
            while log.records > MAX_RETAINED_RECORDS && log.ops.len() > 1 {
                log.pop_front();
            }
            if log.image.as_ref().is_some_and(|i| i.position < log.base) {
                log.image = None;
            }
        });
    }

    /// The primary was rebuilt from storage: every reader must be rebuilt too.
    pub fn reset(&self) {
        self.with_log(|log| {
            let next = log.end() + 1;
            log.ops.clear();
            log.records = 0;
            log.base = next;
            log.image = None;
        });
    }

    /// Whether reads should use the readers now.
    pub fn enabled(&self) -> bool {
        self.with_log(|log| log.disabled_until.is_none_or(|t| Instant::now() >= t))
    }

    /// Bypasses the readers for `duration` (the writer instance answers reads).
    pub fn disable_for(&self, duration: Duration) {
        self.with_log(|log| log.disabled_until = Some(Instant::now() + duration));
    }

    /// The current op position (for an image taken now, under the tenant lock).
    pub fn position(&self) -> u64 {
        self.with_log(|log| log.end())
    }

    /// Stores an image for every reader that needs one.
    pub fn set_image(&self, position: u64, snapshots: Vec<Vec<u8>>) {
        self.with_log(|log| {
            if position >= log.base {
                log.image = Some(Arc::new(Image {
                    position,
                    snapshots,
                }));
            }
        });
    }

    /// Waits for a free reader and reserves it.
    ///
    /// # Errors
    /// Never in practice (the semaphore is never closed).
    pub async fn acquire(&self) -> Result<Reader<'_>, ApiError> {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| ApiError::unavailable("the server is shutting down"))?;
        // As many permits as slots, and every holder of a slot holds a permit: one of
        // them is free. Lowest index first keeps the number of live instances low.
        for (index, slot) in self.slots.iter().enumerate() {
            if let Ok(slot) = slot.try_lock() {
                return Ok(Reader {
                    slot,
                    index,
                    readers: self,
                    _permit: permit,
                });
            }
        }
        Err(ApiError::internal("no free read instance"))
    }
}

impl Reader<'_> {
    /// What this reader must do to reach the newest op.
    pub fn plan(&self) -> Plan {
        self.readers.with_log(|log| {
            if self.slot.instance.is_some() && self.slot.position >= log.base {
                let from = (self.slot.position - log.base) as usize;
                Plan::CatchUp(log.ops.iter().skip(from).cloned().collect(), log.end())
            } else {
                match &log.image {
                    Some(image) if image.position >= log.base => Plan::Rebuild(image.clone()),
                    _ => Plan::NeedImage,
                }
            }
        })
    }

    fn discard(&mut self) {
        self.slot.instance = None;
        self.readers.positions[self.index].store(u64::MAX, Ordering::Release);
    }

    /// Replaces the instance by a new one holding `image`.
    pub fn rebuild(&mut self, image: &Image) -> Result<(), ApiError> {
        self.discard();
        let built = blocking(|| {
            let mut instance = self
                .readers
                .component
                .instantiate()
                .map_err(|e| CallError::Trapped(format!("{e:#}")))?;
            for snapshot in &image.snapshots {
                instance.restore(snapshot)?;
            }
            Ok::<_, CallError>(instance)
        });
        match built {
            Ok(instance) => {
                self.slot.instance = Some(instance);
                self.slot.position = image.position;
                self.readers.positions[self.index].store(image.position, Ordering::Release);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `ops`; afterwards the reader is at `end`. A failure discards the
    /// instance (the next read rebuilds it).
    pub fn catch_up(&mut self, ops: &[Arc<ReadOp>], end: u64) -> Result<(), ApiError> {
        let Some(instance) = self.slot.instance.as_mut() else {
            return Err(ApiError::internal("the read instance is missing"));
        };
        let applied = blocking(|| {
            for op in ops {
                match &**op {
                    ReadOp::Records(records) => {
                        for record in records {
                            instance.apply(record)?;
                        }
                    }
                    ReadOp::Library { library, snapshot } => {
                        instance.evict(library)?;
                        if let Some(snapshot) = snapshot {
                            instance.restore(snapshot)?;
                        }
                    }
                }
            }
            Ok::<_, CallError>(())
        });
        match applied {
            Ok(()) => {
                self.slot.position = end;
                self.readers.positions[self.index].store(end, Ordering::Release);
                Ok(())
            }
            Err(e) => {
                tracing::error!(reader = self.index, error = ?e, "a read instance failed to catch up; discarding it");
                self.discard();
                Err(ApiError::internal(
                    "a read instance failed to apply the log; retry",
                ))
            }
        }
    }

    /// Runs `f` on the instance (call after [`Reader::catch_up`]). A trap discards it.
    pub fn call<T>(
        &mut self,
        f: impl FnOnce(&mut EngineInstance) -> Result<T, CallError>,
    ) -> Result<T, ApiError> {
        let Some(instance) = self.slot.instance.as_mut() else {
            return Err(ApiError::internal("the read instance is missing"));
        };
        match blocking(|| f(instance)) {
            Ok(value) => Ok(value),
            Err(e) => {
                if let CallError::Trapped(message) = &e {
                    tracing::error!(reader = self.index, %message, "read instance trapped; discarding it");
                    self.discard();
                }
                Err(e.into())
            }
        }
    }
}
