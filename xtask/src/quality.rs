//! Quality gates (docs/quality.md): coverage, the fuzzing campaign and the mutation check.

use std::path::Path;

use crate::Result;

/// `cargo xtask coverage`: line and branch coverage of core, host and edge-worker.
pub fn coverage(_root: &Path, _extra: &[String]) -> Result {
    Err("coverage: not written yet".into())
}

/// `cargo xtask fuzz [SECS]`: every fuzz target for SECS seconds each.
pub fn fuzz_campaign(_root: &Path, _extra: &[String]) -> Result {
    Err("fuzz: not written yet".into())
}

/// `cargo xtask mutants`: cargo-mutants over core's filter, fusion and WAL code.
pub fn mutants(_root: &Path, _extra: &[String]) -> Result {
    Err("mutants: not written yet".into())
}
