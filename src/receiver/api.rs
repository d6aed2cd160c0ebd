//! The control API on port 8080: HTTPS with the receiver's certificate (the
//! source's fingerprint pins it too), every request authorised by
//! `Authorization: Bearer <token>` where the token is the pairing code or the
//! API token derived from it (`proto::pairing::api_token`).
//!
//! Read: `GET /v1/status`, `/v1/tasks`, `/v1/tasks/{id}`,
//! `/v1/tasks/{id}/report`, `/v1/tasks/{id}/{total,completed,error}_list.csv`,
//! `/v1/events[?task=ID]`, `/metrics` (Prometheus text).
//! Change: `POST /v1/tasks/{id}/stop`, `POST /v1/tasks/{id}/start`,
//! `PUT /v1/tasks/{id}/rate-limit` with `{"mbit": 0..1000 | null}`.
//! Failed authorisations count towards the same per-address lockout as
//! failed pairings on the data port.

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use super::server::Receiver;
use crate::proto::pairing;
use crate::proto::tls::fingerprint_hex;
use crate::report::events;
use crate::report::task::{TaskState, TaskStatus};

/// Default port of the control API.
pub const API_PORT: u16 = 8080;
/// Concurrent API connections; more wait for the accept loop.
const MAX_CONNECTIONS: usize = 32;
/// Lines of the events log `/v1/events` returns at most (the newest).
const MAX_EVENTS: usize = 10_000;

#[derive(Clone)]
struct Api {
    rx: Arc<Receiver>,
    data: SocketAddr,
    api: SocketAddr,
}

/// The address a request came from.
#[derive(Clone, Copy)]
struct Peer(SocketAddr);

fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct E {
        error: String,
    }
    (
        status,
        Json(E {
            error: message.into(),
        }),
    )
        .into_response()
}

fn no_task(id: &str) -> Response {
    json_error(
        StatusCode::NOT_FOUND,
        format!("no task {id:?} on this receiver"),
    )
}

/// Equal in constant time (for equal lengths).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

async fn authorise(
    State(api): State<Api>,
    Extension(Peer(peer)): Extension<Peer>,
    req: Request,
    next: Next,
) -> Response {
    let rx = &api.rx;
    if rx.rate_limited(peer.ip()) {
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts from this address; wait a minute",
        );
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let token = pairing::api_token(&rx.code, &rx.fingerprint);
    let ok = given.is_some_and(|g| {
        same(g.as_bytes(), token.as_bytes())
            || same(
                pairing::normalize(g).as_bytes(),
                pairing::normalize(&rx.code).as_bytes(),
            )
    });
    if !ok {
        if given.is_some() {
            rx.record_failure(peer.ip());
        }
        events::log(
            &rx.state_dir,
            "-",
            "api-refused",
            &format!(
                "{peer}: {} {}: not authorised",
                req.method(),
                req.uri().path()
            ),
        );
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            "give the pairing code or the API token as 'Authorization: Bearer ...'",
        );
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return r;
    }
    next.run(req).await
}

#[derive(Serialize)]
struct TargetInfo {
    index: usize,
    path: String,
    size: Option<u64>,
    block_device: bool,
    in_use: Vec<String>,
}

#[derive(Serialize)]
struct Status {
    receiver: String,
    version: &'static str,
    protocol: u16,
    fingerprint: String,
    data: String,
    api: String,
    targets: Vec<TargetInfo>,
    tasks: Vec<TaskStatus>,
}

async fn status(State(api): State<Api>) -> Response {
    let rx = api.rx.clone();
    // Target checks read sysfs and mountinfo: off the async threads.
    let targets = tokio::task::spawn_blocking(move || {
        rx.targets
            .iter()
            .enumerate()
            .map(|(index, t)| TargetInfo {
                index,
                path: t.path.display().to_string(),
                size: t.size().ok(),
                block_device: t.is_block_device(),
                in_use: t.in_use(&rx.roots),
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    Json(Status {
        receiver: api.rx.name.clone(),
        version: env!("CARGO_PKG_VERSION"),
        protocol: crate::proto::version::MAX,
        fingerprint: fingerprint_hex(&api.rx.fingerprint),
        data: api.data.to_string(),
        api: api.api.to_string(),
        targets,
        tasks: api.rx.tasks.list(),
    })
    .into_response()
}

async fn tasks(State(api): State<Api>) -> Response {
    Json(api.rx.tasks.list()).into_response()
}

async fn task(State(api): State<Api>, Path(id): Path<String>) -> Response {
    match api.rx.tasks.get(&id) {
        Some(s) => Json(s).into_response(),
        None => no_task(&id),
    }
}

/// A report file of a task, if the task has written it.
async fn report_file(api: &Api, id: &str, file: &str, content_type: &'static str) -> Response {
    if !super::journal::valid_task(id) {
        return no_task(id);
    }
    let p = crate::report::files::dir(&api.rx.state_dir).join(format!("{id}_{file}"));
    match tokio::fs::read(&p).await {
        Ok(body) => ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => json_error(
            StatusCode::NOT_FOUND,
            format!("task {id:?} has no {file} yet (reports are written when a pass ends)"),
        ),
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{}: {e}", p.display()),
        ),
    }
}

async fn report(State(api): State<Api>, Path(id): Path<String>) -> Response {
    report_file(&api, &id, "report.json", "application/json").await
}

async fn list(State(api): State<Api>, Path((id, file)): Path<(String, String)>) -> Response {
    match file.as_str() {
        "total_list.csv" | "completed_list.csv" | "error_list.csv" => {
            report_file(&api, &id, &file, "text/csv").await
        }
        _ => json_error(
            StatusCode::NOT_FOUND,
            format!(
                "no {file:?}: a task has report, total_list.csv, completed_list.csv, error_list.csv, stop, start, rate-limit"
            ),
        ),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    task: Option<String>,
}

async fn events_log(State(api): State<Api>, Query(q): Query<EventsQuery>) -> Response {
    let p = api.rx.state_dir.join("events.jsonl");
    let text = tokio::fs::read_to_string(&p).await.unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            q.task.as_deref().is_none_or(|t| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["task"].as_str() == Some(t))
            })
        })
        .collect();
    let mut body = lines[lines.len().saturating_sub(MAX_EVENTS)..].join("\n");
    if !body.is_empty() {
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

fn control(api: &Api, id: &str, f: impl FnOnce(&mut crate::proto::message::Control)) -> Response {
    match api.rx.tasks.control(id, f) {
        Some(s) => {
            let detail = format!(
                "{}; rate limit {}",
                if s.paused { "stopped" } else { "started" },
                s.rate_limit_mbit
                    .map_or("the source's own".into(), |m| format!("{m} Mbit/s"))
            );
            events::log(&api.rx.state_dir, id, "api-control", &detail);
            Json(s).into_response()
        }
        None => no_task(id),
    }
}

async fn stop(State(api): State<Api>, Path(id): Path<String>) -> Response {
    control(&api, &id, |c| c.paused = true)
}

async fn start(State(api): State<Api>, Path(id): Path<String>) -> Response {
    control(&api, &id, |c| c.paused = false)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateBody {
    /// Mbit/s 0..=1000 (0 = no limit), or null for the source's own.
    mbit: Option<u32>,
}

async fn rate_limit(
    State(api): State<Api>,
    Path(id): Path<String>,
    body: Result<Json<RateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(b)) => b,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"mbit\": 0..1000 or null}}: {e}"),
            );
        }
    };
    if body.mbit.is_some_and(|m| m > 1000) {
        return json_error(
            StatusCode::BAD_REQUEST,
            format!(
                "mbit {} is out of range: 0..1000 (0 = no limit)",
                body.mbit.unwrap_or_default()
            ),
        );
    }
    control(&api, &id, |c| c.rate_mbit = body.mbit)
}

/// Prometheus text exposition of every task's figures.
async fn metrics(State(api): State<Api>) -> Response {
    let tasks = api.rx.tasks.list();
    let mut out = String::new();
    type Field = fn(&TaskStatus) -> f64;
    let gauges: [(&str, &str, &str, Field); 12] = [
        (
            "ferry_task_bytes_total",
            "gauge",
            "Used bytes the pass covers.",
            |s| s.bytes_total as f64,
        ),
        (
            "ferry_task_bytes_done",
            "gauge",
            "Bytes durable, written or found held.",
            |s| s.bytes_done as f64,
        ),
        (
            "ferry_task_bytes_written",
            "counter",
            "Bytes written in this pass.",
            |s| s.bytes_written as f64,
        ),
        (
            "ferry_task_wire_bytes",
            "counter",
            "Chunk bytes received on the wire (compressed).",
            |s| s.wire_bytes as f64,
        ),
        (
            "ferry_task_chunks_total",
            "gauge",
            "Chunks the pass covers.",
            |s| s.chunks_total as f64,
        ),
        (
            "ferry_task_chunks_done",
            "gauge",
            "Chunks durable, written or found held.",
            |s| s.chunks_done as f64,
        ),
        (
            "ferry_task_zero_chunks",
            "counter",
            "All-zero chunks received.",
            |s| s.zero_chunks as f64,
        ),
        (
            "ferry_task_patched_chunks",
            "counter",
            "Chunks received as patches of what the target held.",
            |s| s.chunks_patched as f64,
        ),
        (
            "ferry_task_throughput_bytes_per_second",
            "gauge",
            "Bytes written per second lately.",
            |s| s.throughput,
        ),
        (
            "ferry_task_rate_limit_mbit",
            "gauge",
            "The operator's rate limit (0 = none, -1 = the source's own).",
            |s| s.rate_limit_mbit.map_or(-1.0, f64::from),
        ),
        (
            "ferry_task_paused",
            "gauge",
            "1 when stopped through the API.",
            |s| s.paused as u8 as f64,
        ),
        (
            "ferry_task_errors",
            "gauge",
            "Errors recorded for the task.",
            |s| s.errors.len() as f64,
        ),
    ];
    for (name, kind, help, field) in gauges {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for s in &tasks {
            let _ = writeln!(out, "{name}{{task=\"{}\"}} {}", s.task, field(s));
        }
    }
    let _ = writeln!(
        out,
        "# HELP ferry_task_state 1 for the state the task is in.\n# TYPE ferry_task_state gauge"
    );
    for s in &tasks {
        for st in TaskState::ALL {
            let _ = writeln!(
                out,
                "ferry_task_state{{task=\"{}\",state=\"{}\"}} {}",
                s.task,
                st.name(),
                (s.state == st) as u8
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP ferry_sessions_total Data sessions accepted since start.\n# TYPE ferry_sessions_total counter\nferry_sessions_total {}",
        api.rx.sessions_started()
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/tasks", get(tasks))
        .route("/v1/tasks/{id}", get(task))
        .route("/v1/tasks/{id}/report", get(report))
        .route("/v1/tasks/{id}/stop", post(stop))
        .route("/v1/tasks/{id}/start", post(start))
        .route("/v1/tasks/{id}/rate-limit", put(rate_limit))
        .route("/v1/tasks/{id}/{file}", get(list))
        .route("/v1/events", get(events_log))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            json_error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see GET /v1/status",
            )
        })
        .layer(middleware::from_fn_with_state(api.clone(), authorise))
        .with_state(api)
}

/// Serve the API on `listener` until `shutdown` completes. `data` is the
/// data port's address, shown in the status.
pub async fn serve(
    rx: Arc<Receiver>,
    listener: TcpListener,
    data: SocketAddr,
    shutdown: impl Future<Output = ()>,
) {
    let api = Api {
        rx: rx.clone(),
        data,
        api: listener.local_addr().unwrap_or(data),
    };
    let app = router(api);
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => return,
            a = super::server::accept(&listener) => a,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("api: {peer}: too many connections");
            continue;
        };
        let acceptor = rx.acceptor();
        let svc = app.clone().layer(Extension(Peer(peer)));
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(t)) => t,
                    _ => return,
                };
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(
                    hyper_util::rt::TokioIo::new(tls),
                    hyper_util::service::TowerToHyperService::new(svc),
                );
            let _ = tokio::time::timeout(Duration::from_secs(600), conn).await;
            drop(permit);
        });
    }
}

/// A small HTTPS client for the API (the CLI's `ferry api`, tests, the
/// harness): one request, `Connection: close`, the receiver's certificate
/// pinned by fingerprint. Returns the status code and the body.
pub async fn request(
    addr: SocketAddr,
    fingerprint: [u8; 32],
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    use anyhow::Context;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the control API at {addr}"))?;
    let connector =
        tokio_rustls::TlsConnector::from(crate::proto::tls::client_config(fingerprint)?);
    let mut tls = connector
        .connect(crate::proto::tls::server_name(), tcp)
        .await
        .with_context(|| format!("TLS with the control API at {addr}"))?;
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(req.as_bytes()).await?;
    tls.flush().await?;
    let mut raw = Vec::new();
    // The server closes after the response (Connection: close); a missing
    // close_notify is not an error for a response we have whole.
    let _ = tls.read_to_end(&mut raw).await;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("the control API sent no complete response"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line from the control API: {head:?}"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, rest.to_string()));
    }
    let mut body = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16)
            .map_err(|_| anyhow::anyhow!("bad chunk size {size:?} from the control API"))?;
        if n == 0 || after.len() < n {
            break;
        }
        body.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_plain_and_chunked() {
        let (s, b) = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((s, b.as_str()), (200, "ok"));
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let (s, b) = parse_response(raw).unwrap();
        assert_eq!((s, b.as_str()), (404, "abcde"));
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
