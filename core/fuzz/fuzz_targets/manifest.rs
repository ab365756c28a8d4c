//! `Manifest::from_json` on arbitrary bytes (manifests are read from shared storage,
//! which other writers and operators can touch). An accepted manifest must satisfy
//! the checks `from_json` promises and survive an encode/decode round trip unchanged.
#![no_main]

use arrwdb_core::storage::{MANIFEST_VERSION, Manifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::from_json(data) else {
        return;
    };
    assert!(manifest.version >= 1 && manifest.version <= MANIFEST_VERSION);
    assert_eq!(
        manifest.wal_start,
        manifest.snapshot.map_or(1, |s| s.saturating_add(1))
    );
    let encoded = manifest.to_json().expect("an accepted manifest encodes");
    let again = Manifest::from_json(&encoded).expect("an encoded manifest decodes");
    assert_eq!(again, manifest);
});
