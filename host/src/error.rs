//! The one error every handler returns: an HTTP status plus the JSON body every runtime
//! shares (`{"error":{"kind","message"}}`, [`api::ErrorBody`]). Engine errors keep their
//! message unchanged, so a client sees the same text from the host, the edge worker and
//! the npm package.

use arrwdb_core::api::{self, ErrorBody};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error response.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(kind, message),
        }
    }

    /// 400 `invalid`: the request is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409 `conflict`: retrying after reading newer state may succeed.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503 `unavailable`: storage failed or is still loading; retry later.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`: a bug or corrupted state.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn message(&self) -> &str {
        &self.body.error.message
    }
}

impl From<arrwdb_core::Error> for ApiError {
    fn from(e: arrwdb_core::Error) -> Self {
        let status = StatusCode::from_u16(e.kind().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            body: ErrorBody::from(&e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            api::to_json(&self.body),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_errors_keep_kind_status_and_message() {
        let e = arrwdb_core::Error::WrongDimension {
            expected: 3,
            received: 2,
        };
        let api = ApiError::from(e.clone());
        assert_eq!(api.status, StatusCode::BAD_REQUEST);
        assert_eq!(api.body.error.kind, "invalid");
        assert_eq!(api.message(), e.to_string());
        let missing = ApiError::from(arrwdb_core::Error::LibraryNotFound("x".into()));
        assert_eq!(
            (missing.status, missing.body.error.kind.as_str()),
            (StatusCode::NOT_FOUND, "not_found")
        );
    }
}
