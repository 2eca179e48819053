//! What every `/emulator/*` control route shares: JSON errors and body parsing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::de::DeserializeOwned;

use crate::control_error;

/// A control API failure, answered as `{"error": message}` with `status`.
#[derive(Debug)]
pub struct ControlError {
    pub status: StatusCode,
    pub message: String,
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ControlError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        control_error(self.status, self.message.clone())
    }
}

pub fn bad_request(message: impl Into<String>) -> ControlError {
    ControlError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

pub type Reply = Result<HttpResponse, ControlError>;

/// Parses a JSON body; an empty body counts as `{}` so all-optional requests need none.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ControlError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| bad_request(format!("invalid JSON body: {e}")))
}
