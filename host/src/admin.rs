//! The admin API under `/v1/admin`: tenants and API keys (see [`crate::auth`] for
//! who may call what). Every route needs an `admin` key; tenant routes need the
//! operator's (`default` tenant's) admin key, key routes an admin key of the same
//! tenant or the operator's.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::{Caller, CreateKeyRequest};
use crate::error::ApiError;
use crate::http::AppState;

type Reply = Result<Response, ApiError>;

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, axum::Json(value)).into_response()
}

fn path<T>(path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(p)| p)
        .map_err(|rejection| ApiError::invalid(rejection.body_text()))
}

fn parse<T: serde::de::DeserializeOwned>(
    raw: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let raw = raw.map_err(|r| ApiError::new(r.status(), "invalid", r.body_text()))?;
    Ok(arrwdb_core::api::from_json(&raw)?)
}

fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

fn operator(caller: &Caller) -> Result<(), ApiError> {
    if caller.is_operator() {
        Ok(())
    } else {
        Err(forbidden(
            "only an admin key of the `default` tenant manages tenants",
        ))
    }
}

fn manages(caller: &Caller, tenant: &str) -> Result<(), ApiError> {
    if caller.may_manage(tenant) {
        Ok(())
    } else {
        Err(forbidden(&format!(
            "this API key cannot manage tenant `{tenant}`"
        )))
    }
}

/// `POST /v1/admin/tenants` `{"name": …}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTenantRequest {
    name: String,
    #[serde(default)]
    rates: crate::ratelimit::Rates,
}

pub async fn create_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    operator(&caller)?;
    let request: CreateTenantRequest = parse(raw)?;
    let record = state
        .auth
        .create_tenant(&request.name, request.rates)
        .await?;
    Ok(json(StatusCode::CREATED, &record))
}

pub async fn list_tenants(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Reply {
    operator(&caller)?;
    let tenants = state.auth.list_tenants().await;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "tenants": tenants }),
    ))
}

pub async fn get_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
) -> Reply {
    let name = path(name)?;
    manages(&caller, &name)?;
    Ok(json(StatusCode::OK, &state.auth.tenant(&name).await?))
}

/// `PATCH /v1/admin/tenants/{t}` `{"rates": {"search_per_sec", "write_per_sec"}}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTenantRequest {
    rates: crate::ratelimit::Rates,
}

/// Changes a tenant's rates (operator only); every key of the tenant gets them on its
/// next request, without a restart.
pub async fn update_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    operator(&caller)?;
    let name = path(name)?;
    let request: UpdateTenantRequest = parse(raw)?;
    Ok(json(
        StatusCode::OK,
        &state.auth.set_tenant_rates(&name, request.rates).await?,
    ))
}

pub async fn deactivate_tenant(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
) -> Reply {
    operator(&caller)?;
    let name = path(name)?;
    Ok(json(
        StatusCode::OK,
        &state.auth.deactivate_tenant(&name).await?,
    ))
}

pub async fn create_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
    raw: Result<Bytes, BytesRejection>,
) -> Reply {
    let tenant = path(name)?;
    manages(&caller, &tenant)?;
    let request: CreateKeyRequest = parse(raw)?;
    let (_, view) = state.auth.create_key(&tenant, request).await?;
    Ok(json(StatusCode::CREATED, &view))
}

pub async fn list_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    name: Result<Path<String>, PathRejection>,
) -> Reply {
    let tenant = path(name)?;
    manages(&caller, &tenant)?;
    state.auth.tenant(&tenant).await?;
    let keys = state.auth.list_keys(&tenant).await;
    Ok(json(StatusCode::OK, &serde_json::json!({ "keys": keys })))
}

/// A key the caller may manage; 404 for other tenants' keys (no existence leak).
async fn managed_key(state: &AppState, caller: &Caller, id: &str) -> Result<(), ApiError> {
    let record = state.auth.key(id).await?;
    if caller.may_manage(&record.tenant) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("key `{id}` does not exist")))
    }
}

pub async fn rotate_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let id = path(id)?;
    managed_key(&state, &caller, &id).await?;
    Ok(json(
        StatusCode::CREATED,
        &state.auth.rotate_key(&id).await?,
    ))
}

pub async fn revoke_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<String>, PathRejection>,
) -> Reply {
    let id = path(id)?;
    managed_key(&state, &caller, &id).await?;
    Ok(json(StatusCode::OK, &state.auth.revoke_key(&id).await?))
}
