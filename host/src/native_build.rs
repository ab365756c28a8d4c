//! Full index rebuilds (`RebuildIndex`, `Optimize`) on native threads.
//!
//! Everything else the host does with a library runs inside the engine component (see
//! [`crate::component`]). A full rebuild is the exception: the component is
//! single-threaded, and an HNSW build of 100k × 384 vectors takes about 78 s in it
//! against 29 s on two native cores. So [`apply`] takes the library out of the
//! instance (its snapshot), applies the record with the native engine
//! (`Engine::apply_within`, `HnswIndex::build` on several threads: the same bytes as the
//! component's one-thread build), and loads the result back. The instance ends in the
//! state its own `apply` would have produced; only the time differs.
//!
//! The native build stays inside the bounds of the instance it stands in for:
//! - **time**: it is given up at the instance's call deadline, measured from the start
//!   of the native path (the build asks between nodes; `HnswIndex::build_until`; an IVF
//!   index trains its k-means inside one insert, which runs to its end);
//! - **memory**: it runs only when the instance uses at most half its memory limit (so
//!   the snapshot taken out of it fits), and the instance's memory plus twice the
//!   library's estimated new size fits the limit (the native engine holds one copy, the
//!   instance needs room to load the result); otherwise, and when the result turns out
//!   larger than estimated, the record is applied inside the instance, which enforces
//!   its limit itself;
//! - **threads**: one rebuild uses at most `--build-threads` threads, and all rebuilds of
//!   the process together at most the machine's cores ([`BuildThreads`]); a rebuild that
//!   finds none free runs on the thread it was called on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arrwdb_core::{Budget, Engine, IndexConfig, Outcome, WalOp, WalRecord};

use crate::component::{CallError, EngineInstance};

/// Whether `record` rebuilds a whole index, which [`apply`] may do natively.
pub fn rebuilds_index(record: &WalRecord) -> bool {
    matches!(record.op, WalOp::RebuildIndex(_) | WalOp::Optimize)
}

/// Native threads for index builds, shared by every instance of the process.
#[derive(Debug)]
pub struct BuildThreads {
    total: usize,
    busy: AtomicUsize,
}

impl BuildThreads {
    /// A pool of `total` threads (at least 1).
    pub fn new(total: usize) -> Self {
        BuildThreads {
            total: total.max(1),
            busy: AtomicUsize::new(0),
        }
    }

    /// Up to `want` threads, as many as are free, and at least one: the caller's own
    /// thread, which is running anyway. Returned when the permit drops.
    pub fn take(&self, want: usize) -> BuildPermit<'_> {
        let want = want.max(1);
        let mut busy = self.busy.load(Ordering::Relaxed);
        loop {
            let threads = want.min(self.total.saturating_sub(busy)).max(1);
            match self.busy.compare_exchange_weak(
                busy,
                busy + threads,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return BuildPermit {
                        pool: self,
                        threads,
                    };
                }
                Err(now) => busy = now,
            }
        }
    }
}

/// Threads taken from [`BuildThreads`].
#[derive(Debug)]
pub struct BuildPermit<'a> {
    pool: &'a BuildThreads,
    threads: usize,
}

impl BuildPermit<'_> {
    pub fn threads(&self) -> usize {
        self.threads
    }
}

impl Drop for BuildPermit<'_> {
    fn drop(&mut self) {
        self.pool.busy.fetch_sub(self.threads, Ordering::AcqRel);
    }
}

/// Bytes an index of kind `config` over `n` vectors is likely to take, generously: the
/// HNSW layer-0 links (2·M per node) and as much again for the upper layers, levels and
/// slack; a few words per vector for the other kinds.
fn index_bytes(config: &IndexConfig, n: usize) -> usize {
    let per_node = match config {
        IndexConfig::Hnsw(params) => 4 * (2 * params.m as usize + 2 * params.m as usize) + 16,
        _ => 64,
    };
    n.saturating_mul(per_node)
}

/// Applies a rebuild record natively within the instance's bounds (see the module
/// docs). `Ok(None)` when it does not fit them: the caller applies the record inside
/// the instance. A build past the deadline is a [`CallError::Stopped`]: the instance
/// is intact and unchanged (a writer that applied earlier records of the same batch,
/// not logged yet, still discards it, as after a trap).
pub fn apply(
    instance: &mut EngineInstance,
    pool: &BuildThreads,
    record: &WalRecord,
) -> Result<Option<Outcome>, CallError> {
    let limits = instance.limits();
    let started = Instant::now();
    let deadline = started + limits.call_timeout;
    let refused = |e: arrwdb_core::Error| CallError::Refused(e.into());
    // Taking the library out costs the instance its snapshot's size, at most what the
    // instance holds: with less room than that left, the rebuild stays inside.
    if instance.memory_bytes().saturating_mul(2) > limits.memory_bytes {
        return Ok(None);
    }
    let before = instance.snapshot(&record.library)?;
    let mut engine = Engine::new();
    engine.restore(&before).map_err(refused)?;
    let Some(library) = engine.library(&record.library) else {
        return Ok(None);
    };
    let index = match &record.op {
        WalOp::RebuildIndex(index) => index,
        _ => &library.config().index,
    };
    // The state as it is, the new index, and for Optimize the compacted vectors.
    let estimate = before
        .len()
        .saturating_add(index_bytes(index, library.info().chunks as usize));
    let estimate = match record.op {
        WalOp::Optimize => estimate.saturating_add(before.len()),
        _ => estimate,
    };
    drop(before);
    let room = limits.memory_bytes.saturating_sub(instance.memory_bytes());
    if estimate.saturating_mul(2) > room {
        tracing::debug!(
            library = %record.library,
            estimate,
            room,
            "index rebuild left to the instance: too large to build natively within its memory limit"
        );
        return Ok(None);
    }

    let permit = pool.take(limits.build_threads);
    let budget = Budget {
        threads: permit.threads(),
        stop: &|| Instant::now() >= deadline,
    };
    let outcome = engine.apply_within(record, budget).map_err(refused)?;
    drop(permit);
    let Some(outcome) = outcome else {
        return Err(CallError::Stopped(format!(
            "index rebuild exceeded its {:?} deadline (--call-timeout-secs); the library is unchanged",
            limits.call_timeout
        )));
    };
    let built = started.elapsed();
    let after = engine.snapshot(&record.library).map_err(refused)?;
    drop(engine);
    if after.len().saturating_mul(2) > room {
        tracing::debug!(
            library = %record.library,
            bytes = after.len(),
            room,
            "index rebuilt natively but too large to load within the memory limit; rebuilding inside the instance"
        );
        return Ok(None);
    }
    instance.restore(&after)?;
    tracing::info!(
        library = %record.library,
        seq = record.seq,
        threads = budget.threads,
        build_ms = built.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "index rebuilt natively"
    );
    Ok(Some(outcome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_share_the_pool_and_always_grant_one() {
        let pool = BuildThreads::new(4);
        let a = pool.take(3);
        assert_eq!(a.threads(), 3);
        let b = pool.take(3);
        assert_eq!(b.threads(), 1, "only one was free");
        let c = pool.take(2);
        assert_eq!(c.threads(), 1, "none free: the caller's own thread");
        drop((a, b, c));
        assert_eq!(
            pool.take(8).threads(),
            4,
            "all returned; capped by the pool"
        );
        assert_eq!(pool.take(0).threads(), 1);
    }
}
