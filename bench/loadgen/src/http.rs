//! A minimal HTTP/1.1 client: one keep-alive connection per worker (hyper's connection API, no
//! pool), so the load generator spends as little CPU as possible on the shared machine.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Conn {
    addr: String,
    sender: Option<SendRequest<Full<Bytes>>>,
}

pub struct Response {
    pub status: u16,
    pub body: Bytes,
    /// The `Location` header (redirects of the OAuth scenario).
    pub location: Option<String>,
}

/// `http://host:port[/...]` → `host:port`.
pub fn host_port(base: &str) -> String {
    let rest = base.strip_prefix("http://").unwrap_or(base);
    rest.split('/').next().unwrap_or(rest).to_string()
}

impl Conn {
    pub fn new(base: &str) -> Conn {
        Conn {
            addr: host_port(base),
            sender: None,
        }
    }

    async fn connect(&mut self) -> Result<(), String> {
        let stream = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends one request and reads the whole body. Transport failures are `Err` (the
    /// connection is dropped and re-opened on the next call); any HTTP status is `Ok`.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Result<Response, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected");
        if let Err(e) = sender.ready().await {
            self.sender = None;
            return Err(format!("connection not ready: {e}"));
        }
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.addr)
            .header("user-agent", "weauth-bench");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let has_body = body.is_some();
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| e.to_string())?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(format!("request: {e}"));
            }
        };
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        match resp.into_body().collect().await {
            Ok(b) => Ok(Response {
                status,
                body: b.to_bytes(),
                location,
            }),
            Err(e) => {
                self.sender = None;
                Err(format!("body: {e}"))
            }
        }
    }
}
