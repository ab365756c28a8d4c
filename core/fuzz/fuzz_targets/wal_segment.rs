//! `codec::decode_wal_segment` and `decode_wal_segment_prefix` on arbitrary bytes
//! (the two must agree); decoded records must re-encode,
//! and applying them to an engine (then using the libraries) must not panic.
#![no_main]

use arrwdb_core::Engine;
use arrwdb_core::codec::{decode_wal_segment, decode_wal_segment_prefix, encode_wal_segment};
use arrwdb_core_fuzz::{exercise, with_valid_wal_crcs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The lenient decoder never panics, and agrees with the strict one: all records
    // and no error exactly when the strict decoder succeeds.
    let (prefix, error) = decode_wal_segment_prefix(data);
    match decode_wal_segment(data) {
        Ok(all) => assert!(error.is_none() && prefix == all, "decoders disagree"),
        Err(_) => assert!(error.is_some(), "the lenient decoder missed an error"),
    }
    let records = match decode_wal_segment(data) {
        Ok(records) => records,
        Err(_) => match with_valid_wal_crcs(data).map(|fixed| decode_wal_segment(&fixed)) {
            Some(Ok(records)) => records,
            _ => return,
        },
    };
    let encoded = encode_wal_segment(&records);
    assert!(encoded.is_ok(), "a decoded segment does not re-encode");
    if let Ok(bytes) = encoded {
        assert!(
            decode_wal_segment(&bytes).is_ok(),
            "a re-encoded segment does not decode"
        );
    }
    let mut engine = Engine::new();
    for record in &records {
        let _ = engine.apply(record);
    }
    let names: Vec<String> = engine.library_names().map(String::from).collect();
    for name in names {
        exercise(&mut engine, &name);
    }
});
