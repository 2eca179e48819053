//! A TCP proxy between weauth and PostgreSQL that parses the PostgreSQL wire protocol on the
//! client side and counts messages. Every simple-protocol Query ('Q') and every extended-protocol
//! Sync ('S') ends one round trip (the client waits for ReadyForQuery after each), so
//! `Q + S` is the number of round trips. Optionally it logs the SQL of every executed statement
//! (Q text, and for Bind the SQL of the statement it binds, remembered from Parse), which is how
//! bench/run.sh captures the exact SQL each endpoint issues.
//!
//! Control: a line protocol on `--control`: `get` → JSON counters, `reset` → zero them,
//! `log-start` → start recording SQL, `log-get` → JSON array of recorded lines and stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

const SSL_REQUEST: u32 = 80877103;
const GSSENC_REQUEST: u32 = 80877104;
const CANCEL_REQUEST: u32 = 80877102;

#[derive(Default)]
pub struct Counters {
    pub query: AtomicU64,
    pub sync: AtomicU64,
    pub parse: AtomicU64,
    pub bind: AtomicU64,
    pub execute: AtomicU64,
    pub flush: AtomicU64,
    pub other: AtomicU64,
    pub connections: AtomicU64,
    pub bytes_to_server: AtomicU64,
    pub bytes_to_client: AtomicU64,
}

impl Counters {
    fn json(&self) -> serde_json::Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        serde_json::json!({
            "query": g(&self.query), "sync": g(&self.sync), "parse": g(&self.parse),
            "bind": g(&self.bind), "execute": g(&self.execute), "flush": g(&self.flush),
            "other": g(&self.other), "connections": g(&self.connections),
            "bytes_to_server": g(&self.bytes_to_server), "bytes_to_client": g(&self.bytes_to_client),
        })
    }

    fn reset(&self) {
        for a in [
            &self.query,
            &self.sync,
            &self.parse,
            &self.bind,
            &self.execute,
            &self.flush,
            &self.other,
            &self.connections,
            &self.bytes_to_server,
            &self.bytes_to_client,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

struct Shared {
    counters: Counters,
    logging: AtomicBool,
    log: Mutex<Vec<String>>,
    next_conn: AtomicU64,
}

pub async fn run(listen: String, upstream: String, control: String) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        counters: Counters::default(),
        logging: AtomicBool::new(false),
        log: Mutex::new(Vec::new()),
        next_conn: AtomicU64::new(1),
    });
    let listener = TcpListener::bind(&listen).await?;
    let control_listener = TcpListener::bind(&control).await?;
    eprintln!("pgproxy: {listen} -> {upstream}, control on {control}");
    let s2 = shared.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = control_listener.accept().await else {
                continue;
            };
            let s = s2.clone();
            tokio::spawn(async move {
                let _ = control_conn(sock, s).await;
            });
        }
    });
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = proxy_conn(client, &upstream, shared).await {
                if e.kind() != std::io::ErrorKind::UnexpectedEof {
                    eprintln!("pgproxy: connection ended: {e}");
                }
            }
        });
    }
}

async fn control_conn(sock: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Some(line) = lines.next_line().await? {
        let reply = match line.trim() {
            "get" => shared.counters.json().to_string(),
            "reset" => {
                shared.counters.reset();
                "{}".to_string()
            }
            "log-start" => {
                shared.log.lock().unwrap().clear();
                shared.logging.store(true, Ordering::SeqCst);
                "{}".to_string()
            }
            "log-get" => {
                shared.logging.store(false, Ordering::SeqCst);
                let lines = std::mem::take(&mut *shared.log.lock().unwrap());
                serde_json::to_string(&lines).unwrap()
            }
            other => {
                serde_json::json!({ "error": format!("unknown command {other:?}") }).to_string()
            }
        };
        w.write_all(reply.as_bytes()).await?;
        w.write_all(b"\n").await?;
    }
    Ok(())
}

fn cstr(buf: &[u8], at: usize) -> (String, usize) {
    let end = buf[at..]
        .iter()
        .position(|&b| b == 0)
        .map_or(buf.len(), |p| at + p);
    (String::from_utf8_lossy(&buf[at..end]).into_owned(), end + 1)
}

/// The statement on one line: `--` comments dropped (outside string literals and quoted
/// names), so that the line still parses as the same statement, and whitespace collapsed.
fn one_line(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let (mut quote, mut comment) = (None::<char>, false);
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        if comment {
            if ch == '\n' {
                comment = false;
                out.push(' ');
            }
            continue;
        }
        match quote {
            Some(q) if ch == q => quote = None,
            Some(_) => {}
            None if ch == '\'' || ch == '"' => quote = Some(ch),
            None if ch == '-' && chars.peek() == Some(&'-') => {
                comment = true;
                continue;
            }
            None => {}
        }
        out.push(ch);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A parameter type OID as a type name (`oid:N` for the ones not listed, e.g. enums).
fn type_name(oid: u32) -> String {
    match oid {
        0 => "unknown",
        16 => "bool",
        17 => "bytea",
        20 => "int8",
        21 => "int2",
        23 => "int4",
        25 => "text",
        114 => "json",
        700 => "float4",
        701 => "float8",
        869 => "inet",
        1009 => "text[]",
        1015 => "varchar[]",
        1043 => "varchar",
        1082 => "date",
        1114 => "timestamp",
        1184 => "timestamptz",
        2950 => "uuid",
        2951 => "uuid[]",
        3802 => "jsonb",
        _ => return format!("oid:{oid}"),
    }
    .to_string()
}

/// The parameter types of a Parse message body after its name and query.
fn param_types(body: &[u8], at: usize) -> Vec<String> {
    let Some(n) = body.get(at..at + 2) else {
        return Vec::new();
    };
    let n = u16::from_be_bytes([n[0], n[1]]) as usize;
    (0..n)
        .filter_map(|i| body.get(at + 2 + 4 * i..at + 6 + 4 * i))
        .map(|b| type_name(u32::from_be_bytes([b[0], b[1], b[2], b[3]])))
        .collect()
}

async fn proxy_conn(client: TcpStream, upstream: &str, shared: Arc<Shared>) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let conn_id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    shared.counters.connections.fetch_add(1, Ordering::Relaxed);
    let (cr, mut cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, cr);
    let mut writer = BufWriter::with_capacity(64 * 1024, sw);

    // Startup phase: untyped messages (length, code). SSL and GSS encryption requests are
    // refused here ('N'), so the client continues in plaintext and stays parseable.
    loop {
        let len = reader.read_u32().await? as usize;
        let mut body = vec![0u8; len.saturating_sub(4)];
        reader.read_exact(&mut body).await?;
        let code = u32::from_be_bytes(body[..4].try_into().unwrap_or_default());
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            cw.write_all(b"N").await?;
            continue;
        }
        writer.write_u32(len as u32).await?;
        writer.write_all(&body).await?;
        writer.flush().await?;
        if code == CANCEL_REQUEST {
            return Ok(());
        }
        break;
    }

    let to_client = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut sr = sr;
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = sr.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                shared
                    .counters
                    .bytes_to_client
                    .fetch_add(n as u64, Ordering::Relaxed);
                cw.write_all(&buf[..n]).await?;
            }
            cw.shutdown().await?;
            Ok::<_, std::io::Error>(())
        })
    };

    // name -> (SQL, parameter types), from Parse.
    let mut statements: HashMap<String, (String, Vec<String>)> = HashMap::new();
    let c = &shared.counters;
    let result: std::io::Result<()> = async {
        loop {
            let ty = match reader.read_u8().await {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e),
            };
            let len = reader.read_u32().await? as usize;
            let mut body = vec![0u8; len.saturating_sub(4)];
            reader.read_exact(&mut body).await?;
            c.bytes_to_server
                .fetch_add(1 + len as u64, Ordering::Relaxed);
            let logging = shared.logging.load(Ordering::Relaxed);
            let mut log_line = None;
            match ty {
                b'Q' => {
                    c.query.fetch_add(1, Ordering::Relaxed);
                    if logging {
                        log_line = Some(format!("c{conn_id} Q  {}", one_line(&cstr(&body, 0).0)));
                    }
                }
                b'P' => {
                    c.parse.fetch_add(1, Ordering::Relaxed);
                    let (name, next) = cstr(&body, 0);
                    let (sql, next) = cstr(&body, next);
                    let types = param_types(&body, next);
                    if logging {
                        log_line = Some(format!(
                            "c{conn_id} P  [{}] {}",
                            if name.is_empty() { "unnamed" } else { &name },
                            one_line(&sql)
                        ));
                    }
                    statements.insert(name, (sql, types));
                }
                b'B' => {
                    c.bind.fetch_add(1, Ordering::Relaxed);
                    if logging {
                        let (_portal, next) = cstr(&body, 0);
                        let (stmt, _) = cstr(&body, next);
                        let (sql, types) = statements
                            .get(&stmt)
                            .map(|(s, t)| (one_line(s), t.join(", ")))
                            .unwrap_or_default();
                        let name = if stmt.is_empty() { "unnamed" } else { &stmt };
                        let mut log = shared.log.lock().unwrap();
                        log.push(format!("c{conn_id} B  [{name}] {sql}"));
                        if !types.is_empty() {
                            // The parameter types, for bench/pgbench/gen.py (pgbench binds
                            // untyped parameters, so the floors cast to these).
                            log.push(format!("c{conn_id} T  [{name}] {types}"));
                        }
                    }
                }
                b'E' => {
                    c.execute.fetch_add(1, Ordering::Relaxed);
                }
                b'S' => {
                    c.sync.fetch_add(1, Ordering::Relaxed);
                    if logging {
                        log_line = Some(format!("c{conn_id} S  ---- (round trip ends)"));
                    }
                }
                b'H' => {
                    c.flush.fetch_add(1, Ordering::Relaxed);
                }
                b'C' => {
                    // Close: forget a named statement.
                    c.other.fetch_add(1, Ordering::Relaxed);
                    if body.first() == Some(&b'S') {
                        let (name, _) = cstr(&body, 1);
                        statements.remove(&name);
                    }
                }
                _ => {
                    c.other.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(line) = log_line {
                shared.log.lock().unwrap().push(line);
            }
            writer.write_u8(ty).await?;
            writer.write_u32(len as u32).await?;
            writer.write_all(&body).await?;
            if reader.buffer().is_empty() {
                writer.flush().await?;
            }
            if ty == b'X' {
                break;
            }
        }
        writer.flush().await?;
        Ok(())
    }
    .await;
    let _ = writer.shutdown().await;
    let _ = to_client.await;
    result
}

/// Sends one command to a proxy's control port and returns the reply line.
pub async fn control(addr: &str, command: &str) -> std::io::Result<String> {
    let sock = TcpStream::connect(addr).await?;
    let (r, mut w) = sock.into_split();
    w.write_all(command.as_bytes()).await?;
    w.write_all(b"\n").await?;
    let mut lines = BufReader::new(r).lines();
    Ok(lines.next_line().await?.unwrap_or_default())
}
