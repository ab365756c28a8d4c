//! The `arrw:db/engine` export: a thin shell around one [`arrwdb_core::Engine`] that
//! lives as long as the instance (the host keeps instances warm).

use std::cell::RefCell;

use arrwdb_core::{Command, Engine, Error, ErrorKind, Query, WalRecord, codec};

#[allow(unsafe_code)] // wit-bindgen's generated export glue
mod bindings {
    wit_bindgen::generate!({ world: "edge-pinned", path: "wit" });
    pub use self::exports::arrw::db::engine::{Error as WitError, Guest};
    use super::EngineComponent;
    export!(EngineComponent with_types_in crate::engine_export::bindings);

    impl self::exports::arrw::db::pin::Guest for EngineComponent {
        fn preload(dir: String, library: String) -> Result<u64, String> {
            crate::pinned::preload(&dir, &library)
        }
    }
}

use bindings::WitError;

thread_local! {
    static ENGINE: RefCell<Engine> = RefCell::new(Engine::new());
}

/// The component's implementation of `arrw:db/engine`.
#[derive(Debug)]
pub struct EngineComponent;

fn wit_error(e: Error) -> WitError {
    let message = e.to_string();
    match e.kind() {
        ErrorKind::Invalid => WitError::Invalid(message),
        ErrorKind::NotFound => WitError::NotFound(message),
        ErrorKind::Conflict => WitError::Conflict(message),
        ErrorKind::Internal => WitError::Internal(message),
    }
}

fn run<T>(f: impl FnOnce(&mut Engine) -> Result<T, Error>) -> Result<T, WitError> {
    ENGINE
        .with(|engine| f(&mut engine.borrow_mut()))
        .map_err(wit_error)
}

impl bindings::Guest for EngineComponent {
    fn prepare(command: Vec<u8>) -> Result<Vec<u8>, WitError> {
        run(|engine| {
            let command: Command = codec::from_bytes("command", &command)?;
            codec::to_bytes(&engine.prepare(command)?)
        })
    }

    fn apply(record: Vec<u8>) -> Result<Vec<u8>, WitError> {
        run(|engine| {
            let record: WalRecord = codec::from_bytes("WAL record", &record)?;
            codec::to_bytes(&engine.apply(&record)?)
        })
    }

    fn query(request: Vec<u8>) -> Result<Vec<u8>, WitError> {
        run(|engine| {
            let mut query: Query = codec::from_bytes("query", &request)?;
            if let Query::Search { request, .. } = &mut query {
                request.now.get_or_insert_with(crate::unix_ms);
            }
            codec::to_bytes(&engine.query(&query)?)
        })
    }

    fn snapshot(library: String) -> Result<Vec<u8>, WitError> {
        run(|engine| engine.snapshot(&library))
    }

    fn restore(snapshot: Vec<u8>) -> Result<String, WitError> {
        run(|engine| engine.restore(&snapshot))
    }

    fn evict(library: String) -> bool {
        ENGINE.with(|engine| engine.borrow_mut().evict(&library))
    }
}
