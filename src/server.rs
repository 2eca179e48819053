//! Builds and runs the HTTP server; `weauth serve` and the tests share this code.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::Server;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Compress, Condition, DefaultHeaders, Next};
use actix_web::HttpMessage;
use actix_web::{web, App, HttpResponse, HttpServer};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder, TracingLogger};

use std::time::Instant;

use crate::api;
use crate::config::MetricsAddress;
use crate::error::api_version_middleware;
use crate::metrics::METRICS;
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
    let extra_headers = state.config.server.cors_allowed_headers.clone();
    let metrics = state.config.server.metrics.clone();
    let state = web::Data::new(state);
    if let Some(address) = &metrics {
        start_metrics(address, state.clone())?;
    }
    let measured = metrics.is_some();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(DefaultHeaders::new().add(("keep-alive", advertised.as_str())))
            .wrap(from_fn(api_version_middleware))
            .wrap(Compress::default())
            .wrap(Condition::new(measured, from_fn(measure)))
            .wrap(cors(&extra_headers))
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

/// Serves `GET /metrics` (Prometheus text format) on its own address, apart from the API, as
/// GoTrue's exporter does. It stops with the process.
fn start_metrics(address: &MetricsAddress, state: web::Data<AppState>) -> std::io::Result<()> {
    let listener = TcpListener::bind((address.host.as_str(), address.port))?;
    tracing::info!(address = %listener.local_addr()?, "metrics listening");
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route(
            "/metrics",
            web::get().to(|state: web::Data<AppState>| async move {
                HttpResponse::Ok()
                    .content_type("text/plain; version=0.0.4")
                    .body(METRICS.render(state.pool.stats()))
            }),
        )
    })
    .workers(1)
    .listen(listener)?
    .run();
    actix_web::rt::spawn(server);
    Ok(())
}

/// Counts and times every request by its route pattern (never the raw path, which carries
/// user ids), method and status.
async fn measure(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_string());
    METRICS.http_request(
        &route,
        method.as_str(),
        res.status().as_u16(),
        started.elapsed(),
    );
    Ok(res)
}

/// The request headers GoTrue allows cross-origin (`internal/api/api.go`), plus the ones
/// supabase-js sends when it talks to weauth without Supabase's gateway (`apikey`).
pub const CORS_ALLOWED_HEADERS: [&str; 9] = [
    "accept",
    "authorization",
    "content-type",
    "x-client-ip",
    "x-client-info",
    "x-jwt-aud",
    "x-use-cookie",
    "x-supabase-api-version",
    "apikey",
];

/// The response headers scripts on other origins may read: GoTrue's (`X-Total-Count`, `Link`,
/// `X-Supabase-Api-Version`) and the error code supabase-js reads (`x-sb-error-code`).
pub const CORS_EXPOSED_HEADERS: [&str; 4] = [
    "x-total-count",
    "link",
    "x-supabase-api-version",
    "x-sb-error-code",
];

/// GoTrue's CORS policy (rs/cors): every origin, GET/POST/PUT/PATCH/DELETE, credentials
/// allowed, the headers above plus `GOTRUE_CORS_ALLOWED_HEADERS`. The request's origin is
/// echoed (rather than `*`), which browsers require once credentials are allowed. Preflights
/// are answered by the middleware itself; a preflight asking for another header or method
/// gets a 400 without CORS headers, so the browser blocks the request.
fn cors(extra_headers: &[String]) -> actix_cors::Cors {
    use actix_web::http::{header::HeaderName, Method};
    let headers: Vec<HeaderName> = CORS_ALLOWED_HEADERS
        .iter()
        .map(|h| h.to_string())
        .chain(extra_headers.iter().map(|h| h.to_ascii_lowercase()))
        // Checked by the configuration already.
        .filter_map(|h| HeaderName::try_from(h).ok())
        .collect();
    actix_cors::Cors::default()
        .allow_any_origin()
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers(headers)
        .expose_headers(CORS_EXPOSED_HEADERS)
        .supports_credentials()
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
