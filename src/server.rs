//! Builds and runs the HTTP server; `weauth serve` and the tests share this code.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::Server;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Compress, DefaultHeaders};
use actix_web::HttpMessage;
use actix_web::{web, App, HttpServer};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder, TracingLogger};

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
    // Clients are told the idle timeout (Node's agent, for one, otherwise reuses a socket the
    // server is closing); the server waits a second longer than it advertises.
    let keep_alive = state.config.server.keep_alive_secs;
    let advertised = format!("timeout={keep_alive}");
    let state = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(DefaultHeaders::new().add(("keep-alive", advertised.as_str())))
            .wrap(from_fn(api_version_middleware))
            .wrap(Compress::default())
            .wrap(TracingLogger::<PathOnlySpan>::new())
            .configure(api::configure)
            .default_service(web::to(api::not_found))
    })
    .keep_alive(Duration::from_secs(keep_alive + 1))
    .shutdown_timeout(30)
    .listen(listener)?;
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// One span and one log line per request, with the request id. Only the path is recorded:
/// query strings carry one-time WeChat codes, and headers carry tokens.
pub struct PathOnlySpan;

impl RootSpanBuilder for PathOnlySpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(|id| id.to_string())
            .unwrap_or_default();
        tracing::info_span!("request", method = %request.method(), path = %request.path(), request_id = %request_id)
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let _entered = span.enter();
        match outcome {
            Ok(res) => tracing::info!(status = res.status().as_u16(), "request finished"),
            Err(e) => tracing::info!(
                status = e.as_response_error().status_code().as_u16(),
                "request failed"
            ),
        }
    }
}
