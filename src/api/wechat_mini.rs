//! `/wechat_mini/*`: the routes MemFire's `supabase-wechat-stable-v2` SDK calls.

use actix_web::HttpResponse;

use crate::error::{ApiError, ApiResult, ErrorCode};

fn disabled() -> ApiError {
    ApiError::bad_request(ErrorCode::ProviderDisabled, "WeChat login is not enabled")
}

pub async fn login() -> ApiResult<HttpResponse> { Err(disabled()) }
pub async fn login_post() -> ApiResult<HttpResponse> { Err(disabled()) }
pub async fn bind_phone() -> ApiResult<HttpResponse> { Err(disabled()) }
pub async fn bind_phone_post() -> ApiResult<HttpResponse> { Err(disabled()) }
pub async fn bind_account() -> ApiResult<HttpResponse> { Err(disabled()) }
pub async fn bind_account_post() -> ApiResult<HttpResponse> { Err(disabled()) }
pub async fn unlimited_qrcode() -> ApiResult<HttpResponse> { Err(disabled()) }
