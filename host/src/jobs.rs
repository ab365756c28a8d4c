//! Background jobs (skeleton; filled in by issue 7's jobs work).

use std::sync::Arc;

use axum::Router;

use crate::auth::Auth;
use crate::http::AppState;
use crate::storage::ObjectStorage;

/// Flags of the job runner (flattened into `arrwdb serve`).
#[derive(Debug, Clone, clap::Args)]
pub struct JobsArgs {}

/// The job queue and its workers.
#[derive(Debug)]
pub struct Jobs {}

impl Jobs {
    /// Loads persisted job records and starts the workers. Call inside the runtime.
    pub fn start(args: &JobsArgs, auth: Arc<Auth>, storage: ObjectStorage) -> Arc<Self> {
        let _ = (args, auth, storage);
        Arc::new(Jobs {})
    }
}

/// `/v1/jobs` routes.
pub fn routes() -> Router<AppState> {
    Router::new()
}
