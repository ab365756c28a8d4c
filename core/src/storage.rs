//! The object-storage layout every runtime shares, and the recovery rule. Pure naming
//! and arithmetic: the I/O is the caller's (object_store in the host, wasi in the edge
//! worker, HTTP in the browser).
//!
//! ```text
//! {tenant}/{library}/wal/{first_seq:020}.wal        one object per group commit
//! {tenant}/{library}/snapshots/{seq:020}.snap       the library as of record `seq`
//! ```

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Tenant used until multi-tenancy exists.
pub const DEFAULT_TENANT: &str = "default";

/// `{tenant}/{library}`.
pub fn library_prefix(tenant: &str, library: &str) -> String {
    format!("{tenant}/{library}")
}

/// Key of the WAL segment whose first record is `first_seq`.
pub fn wal_key(tenant: &str, library: &str, first_seq: u64) -> String {
    format!("{tenant}/{library}/wal/{first_seq:020}.wal")
}

/// Key of the snapshot taken after record `seq`.
pub fn snapshot_key(tenant: &str, library: &str, seq: u64) -> String {
    format!("{tenant}/{library}/snapshots/{seq:020}.snap")
}

/// Sequence number in a WAL segment file name (`00000000000000000042.wal` → 42).
pub fn parse_wal_name(file_name: &str) -> Option<u64> {
    parse_seq(file_name, ".wal")
}

/// Sequence number in a snapshot file name.
pub fn parse_snapshot_name(file_name: &str) -> Option<u64> {
    parse_seq(file_name, ".snap")
}

fn parse_seq(file_name: &str, ext: &str) -> Option<u64> {
    let digits = file_name.strip_suffix(ext)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What to read to rebuild a library: the newest snapshot, then the segments that
/// hold records after it, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveryPlan {
    pub snapshot: Option<u64>,
    pub segments: Vec<u64>,
}

/// Picks the newest snapshot and the WAL segments needed after it. Segments are named
/// by their first record, so the one holding `snapshot + 1` is the last whose name is
/// at most `snapshot + 1`; every later one is needed too.
pub fn recovery_plan(snapshots: &[u64], segments: &[u64]) -> RecoveryPlan {
    let snapshot = snapshots.iter().copied().max();
    let next = snapshot.map_or(1, |s| s + 1);
    let mut sorted: Vec<u64> = segments.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let start = sorted.iter().rposition(|&first| first <= next).unwrap_or(0);
    RecoveryPlan {
        snapshot,
        segments: sorted.split_off(start),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_without_snapshot_reads_every_segment() {
        let plan = recovery_plan(&[], &[5, 1, 3]);
        assert_eq!(
            plan,
            RecoveryPlan {
                snapshot: None,
                segments: vec![1, 3, 5]
            }
        );
    }

    #[test]
    fn plan_skips_segments_wholly_covered_by_the_snapshot() {
        // segments cover 1-2, 3-6, 7-9, 10..; snapshot at 7 needs 8.. => from segment 7
        let plan = recovery_plan(&[4, 7], &[1, 3, 7, 10]);
        assert_eq!(
            plan,
            RecoveryPlan {
                snapshot: Some(7),
                segments: vec![7, 10]
            }
        );
        // snapshot at 9 needs 10.. => segment 10 only
        let plan = recovery_plan(&[9], &[1, 3, 7, 10]);
        assert_eq!(plan.segments, vec![10]);
    }

    #[test]
    fn names_round_trip() {
        let key = wal_key("t", "lib", 42);
        assert_eq!(key, "t/lib/wal/00000000000000000042.wal");
        assert_eq!(parse_wal_name("00000000000000000042.wal"), Some(42));
        assert_eq!(parse_wal_name("42.wal"), None);
        assert_eq!(parse_snapshot_name("00000000000000000042.wal"), None);
        assert!(snapshot_key("t", "l", 3).ends_with("/snapshots/00000000000000000003.snap"));
    }
}
