//! A library baked into the component at build time (pre-initialization with `wasmtime
//! wizer`), so a per-request instance starts from decoded state instead of fetching and
//! decoding the snapshot: the request only lists and applies the WAL written since.
//!
//! `preload` runs once, inside `wasmtime wizer`, reading a directory copy of the bucket;
//! the instance's memory (this module's state included) becomes the new component's
//! initial memory. A request for the pinned library takes it ([`take`]: an instance
//! serves one request) and tails the log from its last record; when that is no longer
//! possible (the segments after it were garbage-collected after a compaction) the
//! request loads normally.

use std::cell::RefCell;

use crate::log::LoadedLibrary;
use crate::store::DirStore;

thread_local! {
    static PINNED: RefCell<Option<LoadedLibrary>> = const { RefCell::new(None) };
}

/// Loads `library` from the data directory `dir` and pins it. Returns its last record.
///
/// # Errors
/// A message if the directory or the library cannot be read.
pub fn preload(dir: &str, library: &str) -> Result<u64, String> {
    let store = DirStore::open(dir).map_err(|e| e.to_string())?;
    let loaded = LoadedLibrary::load(&store, arrwdb_core::storage::DEFAULT_TENANT, library)
        .map_err(|e| e.to_string())?;
    if !loaded.exists() {
        return Err(format!("library `{library}` is not in {dir}"));
    }
    let seq = loaded.seq;
    PINNED.with(|p| *p.borrow_mut() = Some(loaded));
    Ok(seq)
}

/// The pinned library if it is `library` (once per instance).
pub fn take(library: &str) -> Option<LoadedLibrary> {
    PINNED.with(|p| {
        let mut pinned = p.borrow_mut();
        if pinned.as_ref().is_some_and(|l| l.name() == library) {
            pinned.take()
        } else {
            None
        }
    })
}
