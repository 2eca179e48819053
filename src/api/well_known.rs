//! `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration` (GoTrue
//! `internal/api/jwks.go`): the public signing keys, so PostgREST and supabase-js `getClaims()`
//! verify tokens locally. Both cached for 10 minutes, as in GoTrue.

use actix_web::{http::header, web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

const CACHE: &str = "public, max-age=600";

/// The public JWKs of the asymmetric keys of `GOTRUE_JWT_KEYS`; `{"keys":[]}` with only HS256
/// keys (secrets are never published).
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE))
        .json(state.tokens.keys.jwks())
}

/// GoTrue's discovery document before its OAuth-server endpoints (weauth serves none of them):
/// `issuer` is `GOTRUE_JWT_ISSUER` verbatim, `jwks_uri` is derived from it.
pub async fn openid_configuration(state: web::Data<AppState>) -> HttpResponse {
    let issuer = state.config.jwt.issuer.clone().unwrap_or_default();
    let base = issuer.trim_end_matches('/');
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, CACHE))
        .json(json!({
            "issuer": issuer,
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
        }))
}
