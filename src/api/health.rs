//! `GET /health` (GoTrue `internal/api/api.go` `HealthCheck`): always 200, no database probe;
//! and weauth's `GET /health/ready`, which touches the database (for load balancers and
//! Kubernetes readiness probes).

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::error::ApiResult;
use crate::flows;
use crate::state::AppState;

/// 200 `{"status":"ok","database":"ok"}` when a pooled connection answers `SELECT 1`;
/// otherwise the database error (503 `unexpected_failure`, GoTrue's error shape).
pub async fn ready(state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    flows::health::ready(&state).await?;
    Ok(HttpResponse::Ok()
        .insert_header(crate::error::no_store())
        .json(json!({"status": "ok", "database": "ok"})))
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "weauth is a GoTrue-compatible user registration and authentication API with WeChat mini-program login",
    }))
}
