//! `GET /health` (GoTrue `internal/api/api.go` `HealthCheck`): always 200, no database probe.

use actix_web::HttpResponse;
use serde_json::json;

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "name": "GoTrue",
        "description": "weauth is a GoTrue-compatible user registration and authentication API with WeChat mini-program login",
    }))
}
