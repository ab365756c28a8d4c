//! PLACEHOLDER: `hnsw` answers exactly until its real structure lands.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::{Allowed, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, VectorStore};
use crate::error::Result;
use crate::model::HnswParams;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswIndex {
    params: HnswParams,
}

impl HnswIndex {
    pub fn new(params: &HnswParams, _store: &VectorStore) -> Self {
        HnswIndex { params: *params }
    }
}

impl IndexRead for HnswIndex {
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

impl IndexWrite for HnswIndex {
    fn insert(&mut self, _store: &VectorStore, _slot: u32) {}
    fn remove(&mut self, _store: &VectorStore, _slot: u32) {}
}
