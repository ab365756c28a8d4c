//! The object-storage layout every runtime shares, and the recovery rule. Pure naming
//! and arithmetic: the I/O is the caller's (object_store in the host, wasi in the edge
//! worker, HTTP in the browser).
//!
//! ```text
//! {tenant}/{library}/manifest/{n:020}.json   created with put-if-absent: the current
//!                                             snapshot, the WAL range, the writer epoch
//! {tenant}/{library}/manifest/LATEST         hint for HTTP-only readers: newest `n`
//! {tenant}/{library}/wal/{first_seq:020}.wal  one object per group commit
//! {tenant}/{library}/snapshots/{seq:020}.snap the library as of record `seq`
//! ```
//!
//! The manifest is JSON (serde) so that a person, a browser and a shell script can read
//! it; it is tiny and written rarely (a writer's start, each published snapshot).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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

/// Key of manifest number `n`.
pub fn manifest_key(tenant: &str, library: &str, n: u64) -> String {
    format!("{tenant}/{library}/manifest/{n:020}.json")
}

/// Key of the non-authoritative hint holding the newest manifest number (decimal
/// text). Readers that cannot list start there and probe `n + 1, n + 2, …` until a
/// 404; readers that can list use the listing.
pub fn manifest_latest_key(tenant: &str, library: &str) -> String {
    format!("{tenant}/{library}/manifest/LATEST")
}

/// Number in a manifest file name (`00000000000000000003.json` → 3).
pub fn parse_manifest_name(file_name: &str) -> Option<u64> {
    parse_seq(file_name, ".json")
}

/// Current manifest format version.
pub const MANIFEST_VERSION: u16 = 1;

/// The authoritative description of a library in storage, one immutable object per
/// change (`manifest/{n}.json`, created with put-if-absent, so two writers can never
/// both create number `n`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u16,
    /// The library this manifest describes.
    pub library: String,
    /// Writer epoch: a writer claims the library by creating the next manifest with
    /// `epoch + 1`; every writer with a lower epoch is fenced.
    pub epoch: u64,
    /// Who holds the epoch (`hostname:pid:uuid`), for error messages and operators.
    pub writer: String,
    /// Sequence number of the snapshot to start from, if any.
    pub snapshot: Option<u64>,
    /// First record that is not in the snapshot (`snapshot + 1`, or 1).
    pub wal_start: u64,
    /// Advisory: the next record the writer expected to write when it created this
    /// manifest. The WAL listing is authoritative.
    pub next_seq: u64,
    /// Wall-clock creation time (milliseconds since the Unix epoch), for people and GC.
    pub created_at_ms: u64,
}

impl Manifest {
    /// Encodes the manifest as JSON.
    ///
    /// # Errors
    /// `Internal` if serialization fails (it cannot for this type).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Internal(format!("encode manifest: {e}")))
    }

    /// Decodes and checks a manifest. Unknown fields are ignored (a newer writer may
    /// add advisory fields without a version bump); an unknown version is refused.
    ///
    /// # Errors
    /// `Corrupt` for malformed JSON or inconsistent fields, `UnknownVersion` for a
    /// version this build does not read.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest> {
        let corrupt = |reason: String| Error::Corrupt {
            what: "manifest",
            reason,
        };
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if manifest.version == 0 || manifest.version > MANIFEST_VERSION {
            return Err(Error::UnknownVersion {
                what: "manifest",
                version: manifest.version,
                supported: MANIFEST_VERSION,
            });
        }
        if manifest.wal_start != manifest.snapshot.map_or(1, |s| s.saturating_add(1)) {
            return Err(corrupt(format!(
                "wal_start {} does not follow snapshot {:?}",
                manifest.wal_start, manifest.snapshot
            )));
        }
        Ok(manifest)
    }
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

/// The snapshots to try, in order, when loading a library: the manifest's snapshot,
/// then every older one (newest first) as fallbacks for a corrupt object, then `None`
/// (replay from record 1). Without a manifest (a library written before manifests, or
/// a crash before its first manifest), every listed snapshot is a candidate.
pub fn snapshot_candidates(manifest: Option<&Manifest>, snapshots: &[u64]) -> Vec<Option<u64>> {
    let bound = manifest.map_or(Some(u64::MAX), |m| m.snapshot);
    let mut sorted: Vec<u64> = snapshots
        .iter()
        .copied()
        .filter(|&s| bound.is_some_and(|b| s <= b))
        .collect();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    let mut out: Vec<Option<u64>> = Vec::with_capacity(sorted.len() + 2);
    if let Some(m) = manifest.and_then(|m| m.snapshot)
        && sorted.first() != Some(&m)
    {
        // Referenced but not listed: still try it first (the GET names the problem).
        out.push(Some(m));
    }
    out.extend(sorted.into_iter().map(Some));
    out.push(None);
    out
}

/// The segments holding records after `snapshot` (all of them without one), in order.
pub fn segments_after(snapshot: Option<u64>, segments: &[u64]) -> Vec<u64> {
    recovery_plan(snapshot.as_slice(), segments).segments
}

/// What garbage collection may delete, given the newest manifest's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GcPlan {
    /// Snapshots older than the newest-but-one published snapshot.
    pub snapshots: Vec<u64>,
    /// Segments whose every record is covered by the newest-but-one snapshot (so a
    /// corrupt newest snapshot can still fall back to the previous one plus WAL).
    pub segments: Vec<u64>,
}

/// Plans garbage collection: keeps the manifest's snapshot, the newest snapshot below
/// it (the fallback), every newer object (possibly being published) and every segment
/// after the fallback snapshot. The caller also applies the grace period (objects
/// younger than it are kept whatever this says).
pub fn gc_plan(manifest_snapshot: Option<u64>, snapshots: &[u64], segments: &[u64]) -> GcPlan {
    let Some(current) = manifest_snapshot else {
        return GcPlan::default();
    };
    let mut older: Vec<u64> = snapshots.iter().copied().filter(|&s| s < current).collect();
    older.sort_unstable();
    older.dedup();
    let Some(fallback) = older.pop() else {
        return GcPlan::default();
    };
    let mut sorted: Vec<u64> = segments.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    // A segment ends where the next one starts; the last one is never covered.
    let covered = sorted
        .windows(2)
        .filter(|w| w[1].saturating_sub(1) <= fallback)
        .map(|w| w[0])
        .collect();
    GcPlan {
        snapshots: older,
        segments: covered,
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

    fn manifest() -> Manifest {
        Manifest {
            version: 1,
            library: "docs".into(),
            epoch: 3,
            writer: "h:1:u".into(),
            snapshot: Some(120),
            wal_start: 121,
            next_seq: 187,
            created_at_ms: 5,
        }
    }

    #[test]
    fn manifest_round_trips_and_checks_its_fields() {
        let m = manifest();
        let json = m.to_json().expect("encode");
        assert_eq!(Manifest::from_json(&json).expect("decode"), m);
        let text = core::str::from_utf8(&json).expect("utf8");
        assert!(
            text.contains("\"version\":1") && text.contains("\"epoch\":3"),
            "{text}"
        );
        // unknown fields are fine, unknown versions and inconsistent ranges are not
        let extra = br#"{"version":1,"library":"a","epoch":1,"writer":"w","snapshot":null,"wal_start":1,"next_seq":1,"created_at_ms":0,"hint":true}"#;
        assert_eq!(
            Manifest::from_json(extra).expect("extra field").snapshot,
            None
        );
        let future = text.replace("\"version\":1", "\"version\":9");
        assert!(matches!(
            Manifest::from_json(future.as_bytes()),
            Err(Error::UnknownVersion { version: 9, .. })
        ));
        let bad = text.replace("121", "7");
        assert!(matches!(
            Manifest::from_json(bad.as_bytes()),
            Err(Error::Corrupt { .. })
        ));
        assert!(Manifest::from_json(b"{").is_err());
        assert!(Manifest::from_json(&[0xff, 0]).is_err());
    }

    proptest::proptest! {
        /// The manifest decoder reads outside bytes: it never panics, and whatever it
        /// accepts is consistent and encodes back to an equal manifest.
        #[test]
        fn manifest_decoder_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            if let Ok(m) = Manifest::from_json(&bytes) {
                proptest::prop_assert_eq!(m.wal_start, m.snapshot.map_or(1, |s| s.saturating_add(1)));
                let again = Manifest::from_json(&m.to_json().expect("encode")).expect("decode");
                proptest::prop_assert_eq!(again, m);
            }
        }

        #[test]
        fn manifests_round_trip(epoch in 0u64..u64::MAX, snapshot in proptest::option::of(0u64..u64::MAX - 1), writer in ".{0,40}", created in proptest::prelude::any::<u64>()) {
            let m = Manifest {
                version: MANIFEST_VERSION,
                library: "l".into(),
                epoch,
                writer,
                snapshot,
                wal_start: snapshot.map_or(1, |s| s + 1),
                next_seq: 7,
                created_at_ms: created,
            };
            proptest::prop_assert_eq!(Manifest::from_json(&m.to_json().expect("encode")).expect("decode"), m);
        }
    }

    #[test]
    fn manifest_names() {
        assert_eq!(
            manifest_key("t", "l", 3),
            "t/l/manifest/00000000000000000003.json"
        );
        assert_eq!(parse_manifest_name("00000000000000000003.json"), Some(3));
        assert_eq!(parse_manifest_name("LATEST"), None);
        assert_eq!(manifest_latest_key("t", "l"), "t/l/manifest/LATEST");
    }

    #[test]
    fn candidates_follow_the_manifest_then_fall_back() {
        let m = manifest();
        assert_eq!(
            snapshot_candidates(Some(&m), &[50, 120, 130, 7]),
            vec![Some(120), Some(50), Some(7), None]
        );
        // referenced but missing from the listing: still tried first
        assert_eq!(
            snapshot_candidates(Some(&m), &[50]),
            vec![Some(120), Some(50), None]
        );
        let mut none = m.clone();
        none.snapshot = None;
        assert_eq!(snapshot_candidates(Some(&none), &[50]), vec![None]);
        assert_eq!(
            snapshot_candidates(None, &[5, 9]),
            vec![Some(9), Some(5), None]
        );
        assert_eq!(segments_after(Some(9), &[1, 3, 7, 10]), vec![10]);
        assert_eq!(segments_after(None, &[3, 1]), vec![1, 3]);
    }

    #[test]
    fn gc_keeps_the_fallback_snapshot_and_what_follows_it() {
        // segments 1-2, 3-6, 7-9, 10-..; snapshots 2, 6, 9 (current)
        let plan = gc_plan(Some(9), &[2, 6, 9], &[1, 3, 7, 10]);
        assert_eq!(plan.snapshots, vec![2]);
        assert_eq!(plan.segments, vec![1, 3]);
        // no fallback yet: nothing goes
        assert_eq!(gc_plan(Some(9), &[9], &[1, 3, 7, 10]), GcPlan::default());
        assert_eq!(gc_plan(None, &[9], &[1]), GcPlan::default());
        // a newer, unpublished snapshot is kept
        let plan = gc_plan(Some(6), &[2, 6, 9], &[1, 3, 7, 10]);
        assert_eq!((plan.snapshots, plan.segments), (vec![], vec![1]));
    }
}
