//! The receiver's listener: TLS on the data port, a limit on concurrent
//! sessions, rate limiting of failed pairing attempts, one handler per
//! connection, and a shutdown signal (the mini-redis shape).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use super::session::{self, Refusal};
use super::sink::Target;
use crate::disk::sysfs::Roots;
use crate::proto::codec::{FrameReader, MAX_FRAME, write_message};
use crate::proto::message::{ErrorCode, ErrorMsg, Message};
use crate::proto::tls::Identity;
use crate::report::events;

/// Failed pairing attempts allowed per address within [`FAIL_WINDOW`].
pub const MAX_FAILURES: usize = 5;
pub const FAIL_WINDOW: Duration = Duration::from_secs(60);

/// What `ferry receive` is configured with.
#[derive(Debug, Clone)]
pub struct ReceiveConfig {
    pub targets: Vec<PathBuf>,
    pub state_dir: PathBuf,
    /// The pairing code; a new one is made when `None`.
    pub code: Option<String>,
    /// Name the receiver gives itself in Welcome.
    pub name: String,
    /// Write targets even when they look in use.
    pub force: bool,
    pub max_sessions: usize,
    pub roots: Roots,
}

/// State shared by every session.
pub struct Receiver {
    pub code: String,
    pub fingerprint: [u8; 32],
    pub name: String,
    pub state_dir: PathBuf,
    pub targets: Vec<Target>,
    pub force: bool,
    pub roots: Roots,
    /// Held by the session writing the targets.
    pub writing: tokio::sync::Mutex<()>,
    /// The task of the session holding `writing`, and how to end that
    /// session: a new session of the same task (its source came back after
    /// a crash or a dead link) takes the targets over instead of waiting
    /// for the silent one's idle timeout.
    pub writer: Mutex<Option<(String, Arc<tokio::sync::Notify>)>>,
    pub tasks: super::tasks::Tasks,
    /// Sessions taking extra streams.
    pub joins: super::join::Joins,
    max_sessions: usize,
    sessions: AtomicU64,
    failures: Mutex<HashMap<IpAddr, Vec<Instant>>>,
    acceptor: TlsAcceptor,
}

impl Receiver {
    /// Load or create the identity, open the targets (refusing ones in use
    /// unless forced), and make the pairing code.
    pub fn new(cfg: &ReceiveConfig) -> anyhow::Result<Arc<Receiver>> {
        anyhow::ensure!(
            !cfg.targets.is_empty(),
            "no targets: give --target DISK|FILE"
        );
        let identity = Identity::load_or_create(&cfg.state_dir)?;
        let mut targets = Vec::new();
        for p in &cfg.targets {
            let t = Target::open(p).with_context(|| format!("opening target {}", p.display()))?;
            let busy = t.in_use(&cfg.roots);
            anyhow::ensure!(
                busy.is_empty() || cfg.force,
                "target {} is in use ({}); refusing it (--force overrides)",
                p.display(),
                busy.join("; ")
            );
            targets.push(t);
        }
        Ok(Arc::new(Receiver {
            code: cfg
                .code
                .clone()
                .unwrap_or_else(crate::proto::pairing::new_code),
            fingerprint: identity.fingerprint(),
            name: cfg.name.clone(),
            state_dir: cfg.state_dir.clone(),
            targets,
            force: cfg.force,
            roots: cfg.roots.clone(),
            writing: tokio::sync::Mutex::new(()),
            writer: Mutex::new(None),
            tasks: super::tasks::Tasks::load(&cfg.state_dir),
            joins: super::join::Joins::default(),
            max_sessions: cfg.max_sessions.max(1),
            sessions: AtomicU64::new(0),
            failures: Mutex::new(HashMap::new()),
            acceptor: TlsAcceptor::from(identity.server_config()?),
        }))
    }

    pub fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Sessions that passed the pairing check since start.
    pub fn sessions_started(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }

    /// The TLS acceptor, shared by the data port and the control API.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut f = self.failures.lock().expect("failures lock");
        f.entry(ip).or_default().push(Instant::now());
    }

    /// Whether `ip` made too many failed attempts lately.
    pub fn rate_limited(&self, ip: IpAddr) -> bool {
        let mut f = self.failures.lock().expect("failures lock");
        let list = f.entry(ip).or_default();
        list.retain(|t| t.elapsed() < FAIL_WINDOW);
        list.len() >= MAX_FAILURES
    }

    /// Serve connections on `listener` until `shutdown` completes.
    pub async fn serve(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) {
        let limit = Arc::new(tokio::sync::Semaphore::new(self.max_sessions));
        tokio::pin!(shutdown);
        loop {
            let (tcp, peer) = tokio::select! {
                _ = &mut shutdown => return,
                a = accept(&listener) => a,
            };
            // A short burst queues for a slot; a flood is turned away.
            let permit =
                tokio::time::timeout(Duration::from_secs(5), limit.clone().acquire_owned()).await;
            let Ok(Ok(permit)) = permit else {
                events::log(
                    &self.state_dir,
                    "-",
                    "session-refused",
                    &format!("{peer}: too many sessions"),
                );
                continue;
            };
            let rx = self.clone();
            tokio::spawn(async move {
                rx.handle(tcp, peer).await;
                drop(permit);
            });
        }
    }

    async fn handle(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let tls = match tokio::time::timeout(session::HELLO_TIMEOUT, self.acceptor.accept(tcp))
            .await
        {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return self.refused("-", peer, &format!("TLS handshake failed: {e}")),
            Err(_) => return self.refused("-", peer, "TLS handshake timed out"),
        };
        let (r, mut w) = tokio::io::split(tls);
        let mut r = FrameReader::new(r, MAX_FRAME);
        if self.rate_limited(peer.ip()) {
            let msg = format!("too many failed attempts; wait {} s", FAIL_WINDOW.as_secs());
            // Take the Hello first, so that closing does not reset the
            // connection before the source reads why.
            let hello = r.next();
            let _ = tokio::time::timeout(Duration::from_secs(5), hello).await;
            let e = Message::Error(ErrorMsg {
                code: ErrorCode::RateLimited,
                message: msg.clone(),
            });
            let _ = write_message(&mut w, &e, MAX_FRAME).await;
            self.refused("-", peer, &msg);
            return close(r.into_inner(), w).await;
        }
        match session::run(&self, &mut r, &mut w, peer).await {
            Ok(out) => console(format_args!(
                "ferry receive: task {} from {peer}: {} chunks, {} bytes written",
                out.task, out.chunks, out.bytes
            )),
            Err(Refusal { code, message, .. }) => {
                let e = Message::Error(ErrorMsg {
                    code,
                    message: message.clone(),
                });
                let _ = write_message(&mut w, &e, MAX_FRAME).await;
                self.refused("-", peer, &format!("{message} ({code:?})"));
            }
        }
        close(r.into_inner(), w).await;
    }

    fn refused(&self, task: &str, peer: SocketAddr, why: &str) {
        console(format_args!(
            "ferry receive: session from {peer} ended: {why}"
        ));
        events::log(
            &self.state_dir,
            task,
            "session-refused",
            &format!("{peer}: {why}"),
        );
    }
}

/// The next connection; a failed accept (out of descriptors, ...) is
/// logged and retried after a pause rather than ending the listener.
pub(crate) async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(a) => return a,
            Err(e) => {
                tracing::warn!("accept failed on {:?}: {e}", listener.local_addr().ok());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;

/// Close a session politely: TLS close_notify, then drain what the source
/// still had in flight (bounded in bytes and time), so the kernel does not
/// answer with a reset that could overtake our last message.
async fn close(r: tokio::io::ReadHalf<ServerTls>, w: tokio::io::WriteHalf<ServerTls>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = r.unsplit(w);
    let _ = tls.shutdown().await;
    let mut sink = vec![0u8; 64 << 10];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut drained = 0usize;
    while drained < (64 << 20) {
        match tokio::time::timeout_at(deadline, tls.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => drained += n,
            _ => break,
        }
    }
}

/// A line on the receiver's console (stderr). A console that went away (a
/// closed pipe) must not take the receiver down with it.
pub fn console(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}
