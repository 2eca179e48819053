//! A tiny real HTTP server for the provider tests: each test passes a handler that checks the
//! request the way the real service would (signatures included) and scripts the answer.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// What the handler answers, optionally after a delay (to provoke client timeouts).
pub struct Reply {
    pub delay: Option<Duration>,
    pub response: HttpResponse,
}

impl From<HttpResponse> for Reply {
    fn from(response: HttpResponse) -> Self {
        Reply {
            delay: None,
            response,
        }
    }
}

/// A running server; stopped when dropped.
pub struct TestServer {
    pub url: String,
    handle: ServerHandle,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Not awaited: the worker thread goes away with the test's runtime.
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

/// Starts a server on 127.0.0.1 (port 0) answering every request with `handler(request, body)`.
pub fn serve<F>(handler: F) -> TestServer
where
    F: Fn(&HttpRequest, &[u8]) -> Reply + Send + Sync + 'static,
{
    let handler = Arc::new(handler);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let handler = handler.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let handler = handler.clone();
            async move {
                let reply = handler(&req, &body);
                if let Some(delay) = reply.delay {
                    tokio::time::sleep(delay).await;
                }
                reply.response
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    TestServer {
        url: format!("http://127.0.0.1:{port}"),
        handle,
    }
}

/// A request header as a string ("" when absent).
pub fn header<'a>(req: &'a HttpRequest, name: &str) -> &'a str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}
