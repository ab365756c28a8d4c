//! `flat`: exact search over every allowed slot; the reference for every other index.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::{Allowed, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, VectorStore};
use crate::error::Result;

/// Keeps no structure: the [`VectorStore`] is the index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlatIndex {}

impl IndexRead for FlatIndex {
    fn search(
        &self,
        store: &VectorStore,
        query: &QueryVector<'_>,
        allowed: &Allowed<'_>,
        options: &SearchOptions,
    ) -> Vec<Scored> {
        super::exact_search(store, query, allowed, options.k)
    }

    fn check(&self, _slots: usize) -> Result<()> {
        Ok(())
    }
}

impl IndexWrite for FlatIndex {
    fn insert(&mut self, _store: &VectorStore, _slot: u32) {}
    fn remove(&mut self, _store: &VectorStore, _slot: u32) {}
}
