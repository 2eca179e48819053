//! Integration tests: weauth over real HTTP, a real PostgreSQL database per test, and the real
//! WeChat emulator. One test binary, so the crate links once.

mod hook_receiver;
mod support;

mod access_token_hook;
mod admin;
mod anonymous;
mod cli;
mod cors;
mod email;
mod email_hook;
mod errors;
mod faults;
mod gotrue_database;
mod health_settings;
mod inputs;
mod jwt_claims;
mod logout;
mod mfa;
mod mfa_webauthn;
mod oauth;
mod operations;
mod phone_otp;
mod races;
mod rate_limits;
mod schema;
mod signing_keys;
mod signup;
mod sms_providers;
mod spec;
mod supabase_js;
mod token;
mod two_instances;
mod user;
mod wechat;
mod wechat_merge;
