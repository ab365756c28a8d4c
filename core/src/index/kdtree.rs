//! PLACEHOLDER: `kdtree` answers exactly until its real structure lands.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::{Allowed, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, VectorStore};
use crate::error::Result;
use crate::model::KdTreeParams;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KdTreeIndex {
    params: KdTreeParams,
}

impl KdTreeIndex {
    pub fn new(params: &KdTreeParams, _store: &VectorStore) -> Self {
        KdTreeIndex { params: *params }
    }
}

impl IndexRead for KdTreeIndex {
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

impl IndexWrite for KdTreeIndex {
    fn insert(&mut self, _store: &VectorStore, _slot: u32) {}
    fn remove(&mut self, _store: &VectorStore, _slot: u32) {}
}
