//! Builds and runs the HTTP server; `weauth serve` and the tests share this code.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::api;
use crate::error::api_version_middleware;
use crate::state::AppState;

/// Starts serving `state` on an already-bound listener (port 0 in tests). The returned server
/// drains in-flight requests on SIGTERM/SIGINT before it resolves.
pub fn start(
    listener: TcpListener,
    state: AppState,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(from_fn(api_version_middleware))
            .wrap(Compress::default())
            .wrap(TracingLogger::default())
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    })
    .shutdown_timeout(30)
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}
