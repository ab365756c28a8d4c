//! The byte payloads that cross the component boundary (`edge-worker/wit/engine.wit`):
//! `prepare(command)`, `apply(record)` and `query(request)` take postcard bytes that
//! the component decodes with `codec::from_bytes`. Arbitrary bytes must decode to an
//! error or to a value the engine then handles without panicking, against a small
//! library of every index kind.
#![no_main]

use arrwdb_core::{Command, Engine, Query, WalRecord, codec};
use arrwdb_core_fuzz::small_engine;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn base() -> &'static Engine {
    static BASE: OnceLock<Engine> = OnceLock::new();
    BASE.get_or_init(small_engine)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(command) = codec::from_bytes::<Command>("command", data) {
        let mut engine = base().clone();
        if let Ok(record) = engine.prepare(command) {
            // What prepare produced, apply must take.
            engine.apply(&record).expect("apply a prepared record");
        }
    }
    if let Ok(record) = codec::from_bytes::<WalRecord>("record", data) {
        let mut engine = base().clone();
        let _ = engine.apply(&record);
    }
    if let Ok(query) = codec::from_bytes::<Query>("query", data) {
        let _ = base().query(&query);
    }
});
