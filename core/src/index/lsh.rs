//! PLACEHOLDER: `lsh` answers exactly until its real structure lands.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use super::{Allowed, IndexRead, IndexWrite, QueryVector, Scored, SearchOptions, VectorStore};
use crate::error::Result;
use crate::model::LshParams;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LshIndex {
    params: LshParams,
}

impl LshIndex {
    pub fn new(params: &LshParams, _store: &VectorStore) -> Self {
        LshIndex { params: *params }
    }
}

impl IndexRead for LshIndex {
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

impl IndexWrite for LshIndex {
    fn insert(&mut self, _store: &VectorStore, _slot: u32) {}
    fn remove(&mut self, _store: &VectorStore, _slot: u32) {}
}
