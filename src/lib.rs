//! weauth: a GoTrue (Supabase Auth) compatible auth server with WeChat mini-program login.
//!
//! Layout: [`config`] reads the environment, [`error`] is the one error type, [`db`] holds the
//! pool, migrations and per-table models, [`auth`] the token/password primitives, [`tokens`]
//! sessions and token responses, [`api`] one module per route group, [`wechat`] the WeChat
//! client and [`emulator`] the WeChat API emulator used for development and tests.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod emulator;
pub mod error;
pub mod providers;
pub mod rate_limit;
pub mod server;
pub mod state;
pub mod tokens;
pub mod wechat;
