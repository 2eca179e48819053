//! weauth: a GoTrue (Supabase Auth) compatible auth server with WeChat mini-program login.
//!
//! Layers, top down (see `docs/ARCHITECTURE.md`): [`api`] the HTTP routes, which call
//! [`flows`], the use cases, which use [`models`] (one module per table) and [`providers`] (the
//! outside services), over [`db`] (pool, migrations, `schema.rs`). Beside them: [`config`], the
//! one error type in [`error`], [`auth`] (key set, password hashing), [`rate_limit`], [`state`]
//! and [`server`]. The emulator of the outside services is a crate of its own
//! (`crates/emulator`, `weauth-emulator`), which the server does not link.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod flows;
pub mod metrics;
pub mod models;
pub mod providers;
pub mod rate_limit;
pub mod server;
pub mod state;
