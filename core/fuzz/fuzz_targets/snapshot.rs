//! `Engine::restore` on arbitrary bytes; a library that restores must then survive
//! searches, upserts, deletes and a snapshot round trip.
#![no_main]

use arrwdb_core::Engine;
use arrwdb_core_fuzz::{exercise, with_valid_crc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new();
    let restored = match engine.restore(data) {
        Ok(name) => Some(name),
        // Mutations almost always break the checksum: fix it to reach the payload.
        Err(_) => with_valid_crc(data).and_then(|fixed| engine.restore(&fixed).ok()),
    };
    if let Some(name) = restored {
        exercise(&mut engine, &name);
    }
});
