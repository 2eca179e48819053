//! The HTTP API: one module per GoTrue route group and the single route table, [`endpoints`].
//! Handlers parse, call one flow (`crate::flows`) and render; [`extract`] authenticates callers
//! and [`render`] writes GoTrue's response bodies.
//! Every route is served at the root (like GoTrue) and under `/auth/v1` (what supabase-js and
//! the WeChat SDK call when they talk to weauth directly, without Supabase's gateway).

pub mod admin;
pub mod email;
pub mod extract;
pub mod factors;
pub mod health;
pub mod identities;
pub mod logout;
pub mod oauth;
pub mod otp;
pub mod render;
pub mod settings;
pub mod signup;
pub mod token;
pub mod user;
pub mod wechat_mini;
pub mod well_known;

use std::collections::BTreeMap;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, Handler, HttpRequest, HttpResponse, Responder, Route};

use crate::error::{redact_deserialize_message as redact, ApiError, ErrorCode};

/// GoTrue's request body limit.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The prefix supabase-js puts before every auth route.
pub const PREFIX: &str = "/auth/v1";

/// One route: method, path (actix syntax) and handler.
pub struct Endpoint {
    pub method: Method,
    pub path: &'static str,
    route: Route,
}

fn endpoint<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        route: web::method(method.clone()).to(handler),
        method,
        path,
    }
}

/// Every route weauth serves. `tests/spec.rs` checks this list against `api-spec/openapi.yaml`.
pub fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/health", health::health),
        endpoint(M::GET, "/health/ready", health::ready),
        endpoint(M::GET, "/settings", settings::settings),
        endpoint(M::GET, "/.well-known/jwks.json", well_known::jwks),
        endpoint(
            M::GET,
            "/.well-known/openid-configuration",
            well_known::openid_configuration,
        ),
        endpoint(M::POST, "/signup", signup::signup),
        endpoint(M::POST, "/token", token::token),
        endpoint(M::POST, "/otp", otp::otp),
        endpoint(M::POST, "/verify", otp::verify_post),
        endpoint(M::GET, "/verify", email::verify_get),
        endpoint(M::POST, "/recover", email::recover),
        endpoint(M::POST, "/magiclink", email::magiclink),
        endpoint(M::POST, "/invite", email::invite),
        endpoint(M::POST, "/admin/generate_link", email::generate_link),
        endpoint(M::POST, "/resend", otp::resend),
        endpoint(M::GET, "/reauthenticate", otp::reauthenticate),
        endpoint(M::GET, "/user", user::user_get),
        endpoint(M::PUT, "/user", user::user_update),
        endpoint(M::POST, "/logout", logout::logout),
        endpoint(M::GET, "/authorize", oauth::authorize),
        endpoint(M::GET, "/callback", oauth::callback),
        endpoint(M::POST, "/callback", oauth::callback),
        endpoint(M::GET, "/user/identities/authorize", identities::link),
        endpoint(
            M::DELETE,
            "/user/identities/{identity_id}",
            identities::unlink,
        ),
        endpoint(M::GET, "/wechat_app/login", oauth::app_login),
        endpoint(M::POST, "/wechat_app/login", oauth::app_login),
        endpoint(M::GET, "/admin/users", admin::admin_users),
        endpoint(M::POST, "/admin/users", admin::admin_user_create),
        endpoint(M::GET, "/admin/users/{user_id}", admin::admin_user_get),
        endpoint(M::PUT, "/admin/users/{user_id}", admin::admin_user_update),
        endpoint(
            M::DELETE,
            "/admin/users/{user_id}",
            admin::admin_user_delete,
        ),
        endpoint(M::POST, "/factors", factors::enroll),
        endpoint(
            M::POST,
            "/factors/{factor_id}/challenge",
            factors::challenge,
        ),
        endpoint(M::POST, "/factors/{factor_id}/verify", factors::verify),
        endpoint(M::DELETE, "/factors/{factor_id}", factors::unenroll),
        endpoint(
            M::GET,
            "/admin/users/{user_id}/factors",
            factors::admin_list,
        ),
        endpoint(
            M::PUT,
            "/admin/users/{user_id}/factors/{factor_id}",
            factors::admin_update,
        ),
        endpoint(
            M::DELETE,
            "/admin/users/{user_id}/factors/{factor_id}",
            factors::admin_delete,
        ),
        endpoint(M::GET, "/wechat_mini/login", wechat_mini::login),
        endpoint(M::POST, "/wechat_mini/login", wechat_mini::login),
        endpoint(M::GET, "/wechat_mini/bind_phone", wechat_mini::bind_phone),
        endpoint(M::POST, "/wechat_mini/bind_phone", wechat_mini::bind_phone),
        endpoint(
            M::GET,
            "/wechat_mini/bind_account",
            wechat_mini::bind_account,
        ),
        endpoint(
            M::POST,
            "/wechat_mini/bind_account",
            wechat_mini::bind_account,
        ),
        endpoint(
            M::POST,
            "/wechat_mini/unlimited_qrcode",
            wechat_mini::unlimited_qrcode,
        ),
    ]
}

/// Mounts the API on an actix app: extractor error handlers, the routes at the root and under
/// [`PREFIX`], and JSON 404/405 answers.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(json_config())
        .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PathConfig::default().error_handler(path_error))
        .service(web::scope(PREFIX).configure(routes))
        .configure(routes);
}

fn routes(cfg: &mut web::ServiceConfig) {
    let mut resources: BTreeMap<&'static str, actix_web::Resource> = BTreeMap::new();
    for e in endpoints() {
        let resource = resources
            .remove(e.path)
            .unwrap_or_else(|| web::resource(e.path));
        resources.insert(e.path, resource.route(e.route));
    }
    // actix tries resources in registration order, and a pattern with a `{segment}` costs a
    // regex match: static paths first, so the common routes never run one.
    let (fixed, patterns): (Vec<_>, Vec<_>) =
        resources.into_iter().partition(|(p, _)| !p.contains('{'));
    for (_, resource) in fixed.into_iter().chain(patterns) {
        cfg.service(resource.default_service(web::to(method_not_allowed)));
    }
}

/// Answer for unknown paths (mounted by the app as its default service).
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(ErrorCode::NotFound, "Not found"))
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "Method not allowed",
    ))
}

/// JSON bodies: at most 1 MiB, declared `application/json` (or a `+json` type, any charset),
/// every failure as a GoTrue error.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .content_type_required(true)
        .error_handler(json_error)
}

fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorCode::RequestEntityTooLarge,
                "Request body too large",
            )
        }
        JsonPayloadError::ContentType => {
            ApiError::bad_request(ErrorCode::BadJson, "Content-Type must be application/json")
        }
        // serde's message quotes the offending value; only its schema part is kept.
        JsonPayloadError::Deserialize(e) => ApiError::bad_request(
            ErrorCode::BadJson,
            format!(
                "Could not parse request body as JSON: {}",
                redact(&e.to_string())
            ),
        ),
        _ => ApiError::bad_request(ErrorCode::BadJson, "Could not read request body"),
    };
    api.into()
}

fn query_error(err: QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        QueryPayloadError::Deserialize(e) => redact(&e.to_string()),
        _ => "invalid value".to_string(),
    };
    ApiError::validation(format!("Invalid query parameters: {detail}")).into()
}

fn path_error(err: PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::not_found(
        ErrorCode::ValidationFailed,
        match &err {
            PathError::Deserialize(e) => {
                format!("Invalid path parameter: {}", redact(&e.to_string()))
            }
            _ => "Invalid path parameter".to_string(),
        },
    )
    .into()
}
