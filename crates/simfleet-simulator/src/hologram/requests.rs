//! What every Hologram route of the simulator checks first (its gate, a layer on every route): the API key (and the request's
//! share of the rate budget), and the query parameters, with Hologram's error shape.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::http::{ApiError, Dialect, SimulatorState, too_many_requests};

/// The error shape of Hologram's API.
pub(super) const DIALECT: Dialect = Dialect::Hologram;

pub(super) type Params = Query<HashMap<String, String>>;

/// Every Hologram route's gate: the API key is checked before the route runs.
pub(super) async fn gate(
    State(state): State<Arc<SimulatorState>>,
    request: Request,
    next: Next,
) -> Response {
    let params = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    match authorize(&state, request.headers(), &params) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// Checks the API key (HTTP Basic user `apikey`, or `?apikey=`) and takes a request from its
/// rate budget.
fn authorize(
    state: &SimulatorState,
    headers: &HeaderMap,
    params: &HashMap<String, String>,
) -> Result<(), ApiError> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| pair.strip_prefix("apikey:").map(str::to_owned));
    let key = from_header.or_else(|| params.get("apikey").cloned());
    let Some(key) = key.filter(|k| state.config.hologram_api_keys.contains(k)) else {
        return Err(DIALECT.error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key: use HTTP Basic auth with user \"apikey\" and your API key as password",
        ));
    };
    state
        .take_carrier_budget(&format!("hologram:{key}"))
        .map_err(|wait| too_many_requests(DIALECT, state.config.retry_after_header.then_some(wait)))
}

pub(super) fn bad_request(message: impl Into<String>) -> ApiError {
    DIALECT.error(StatusCode::BAD_REQUEST, message)
}

pub(super) fn param_u64(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<u64>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| bad_request(format!("{name} must be a positive integer, got {v:?}")))
        })
        .transpose()
}

/// A comma-separated list of numbers (`ids=1,2,3`).
pub(super) fn param_u64_list(
    params: &HashMap<String, String>,
    name: &str,
) -> Result<Option<Vec<u64>>, ApiError> {
    params
        .get(name)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<u64>().map_err(|_| {
                        bad_request(format!(
                            "{name} must be comma-separated positive integers, got {s:?}"
                        ))
                    })
                })
                .collect()
        })
        .transpose()
}
