//! Admin user management with a service-role token (GoTrue `internal/api/admin.go`).

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::extract::AdminAuth;
use super::render::user_response;
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::flows::admin::{self, AdminUserParams};
use crate::state::AppState;

/// supabase-js sends `?page=&per_page=` when no page is given: empty means the default.
#[derive(Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub filter: Option<String>,
}

/// GoTrue's `paginate`: an unsigned decimal (`strconv.ParseUint`), else 400 "Bad Pagination
/// Parameters" with Go's message.
fn number(raw: Option<&str>, default: i64) -> ApiResult<i64> {
    let Some(s) = raw.filter(|s| !s.is_empty()) else {
        return Ok(default);
    };
    let bad = |why: &str| {
        let shown: String = s.chars().take(64).collect();
        ApiError::validation(format!(
            "Bad Pagination Parameters: strconv.ParseUint: parsing {shown:?}: {why}"
        ))
    };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("invalid syntax"));
    }
    // Past i64 (and so past any OFFSET) is Go's "value out of range" too.
    s.parse::<i64>().map_err(|_| bad("value out of range"))
}

pub async fn admin_users(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    // Pages past what an OFFSET can address are a client error, not an overflow.
    // Page 0 is page 1, as in GoTrue (its query builder clamps it).
    let page = number(query.page.as_deref(), 1)?.clamp(1, 1_000_000_000);
    let per_page = number(query.per_page.as_deref(), 50)?;
    let (rows, total) = admin::list(&state, page, per_page, query.filter.clone()).await?;

    // GoTrue's pagination headers; supabase-js reads the page number right after the first `=`.
    let last = (total + per_page - 1) / per_page;
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", page_url(&req, page + 1)));
    }
    links.push(format!("<{}>; rel=\"last\"", page_url(&req, last)));
    let users: Vec<_> = rows.iter().map(|u| u.to_json(None)).collect();
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .insert_header((
            HeaderName::from_static("x-total-count"),
            HeaderValue::from(total),
        ))
        .insert_header((actix_web::http::header::LINK, links.join(", ")))
        .json(json!({"users": users, "aud": state.config.jwt.aud})))
}

/// The request URL with `page` replaced, query keys sorted (Go's `url.Values.Encode`).
fn page_url(req: &HttpRequest, page: i64) -> String {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "page")
            .collect();
    pairs.push(("page".into(), page.to_string()));
    pairs.sort();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}?{}", req.path(), query)
}

pub async fn admin_user_create(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    params: web::Json<AdminUserParams>,
) -> ApiResult<HttpResponse> {
    let (user, identities) = admin::create(&state, params.into_inner()).await?;
    Ok(user_response(&user, &identities))
}

pub(super) fn parse_user_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::not_found(ErrorCode::ValidationFailed, "user_id must be an UUID"))
}

pub async fn admin_user_get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let (user, identities, factors) = admin::get(&state, parse_user_id(&path)?).await?;
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(user.to_json(Some(&identities)).with_factors(&factors)))
}

pub async fn admin_user_update(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    params: web::Json<AdminUserParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_user_id(&path)?;
    let (user, identities) = admin::update(&state, id, params.into_inner()).await?;
    Ok(user_response(&user, &identities))
}

#[derive(Deserialize, Default)]
pub struct DeleteParams {
    pub should_soft_delete: Option<bool>,
}

pub async fn admin_user_delete(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let id = parse_user_id(&path)?;
    // The body is optional; when present it must be valid JSON.
    let params: DeleteParams = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::BadJson,
                format!(
                    "Could not parse request body as JSON: {}",
                    crate::error::redact_deserialize_message(&e.to_string())
                ),
            )
        })?
    };
    admin::delete(&state, id, params.should_soft_delete.unwrap_or(false)).await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({})))
}
