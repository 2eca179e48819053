//! One module per table, mirroring GoTrue's `internal/models/`. Look-ups are plain functions
//! taking a connection; they never start transactions themselves, callers do.

pub mod audit_log;
pub mod identity;
pub mod refresh_token;
pub mod session;
pub mod user;
pub mod wechat;

use uuid::Uuid;

/// GoTrue writes the nil UUID into every legacy `instance_id` column and filters on it.
pub const INSTANCE_ID: Uuid = Uuid::nil();
