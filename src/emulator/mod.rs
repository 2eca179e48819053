//! The WeChat API emulator (`weauth wechat-emulator`).

use crate::config::Config;

/// Serves the emulator until interrupted.
pub fn run(_config: &Config, _host: &str, _port: u16) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    Err("the WeChat emulator is not built yet".into())
}
