//! Extra streams of a session (`ferry send --streams N`): a connection that
//! pairs like any other, then sends Join(session) instead of a Layout. Its
//! chunk frames are handed to the session that owns the layout, which
//! checks and writes them exactly as its own.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use super::server::Receiver;
use super::session::{Outcome, PAUSED_TIMEOUT, Refusal, next, refuse, send};
use crate::proto::codec::FrameReader;
use crate::proto::message::{ErrorCode, LayoutAccepted, Message};

/// Extra streams one session takes at most.
pub const MAX_STREAMS: usize = 16;

/// What an extra stream hands its session.
pub enum Joined {
    /// A stream joined.
    Start,
    /// A chunk it carried.
    Chunk(Box<crate::proto::message::Chunk>),
    /// It closed cleanly.
    End,
    /// It failed; the session fails with it.
    Failed(Refusal),
}

struct Slot {
    task: String,
    tx: mpsc::Sender<Joined>,
    joined: usize,
}

/// Sessions that take extra streams, by session number.
#[derive(Default)]
pub struct Joins(Mutex<HashMap<u64, Slot>>);

impl Joins {
    /// Session `session` of `task` takes extra streams; they arrive on the
    /// returned channel until the guard is dropped.
    pub fn open(&self, session: u64, task: &str) -> (JoinGuard<'_>, mpsc::Receiver<Joined>) {
        let (tx, rx) = mpsc::channel(8);
        let slot = Slot {
            task: task.to_string(),
            tx,
            joined: 0,
        };
        self.0.lock().expect("joins lock").insert(session, slot);
        (
            JoinGuard {
                joins: self,
                session,
            },
            rx,
        )
    }

    fn take(&self, session: u64, task: &str) -> Result<mpsc::Sender<Joined>, Refusal> {
        let mut map = self.0.lock().expect("joins lock");
        match map.get_mut(&session) {
            Some(s) if s.task == task && s.joined < MAX_STREAMS => {
                s.joined += 1;
                Ok(s.tx.clone())
            }
            Some(s) if s.task == task => Err(refuse(
                ErrorCode::MalformedFrame,
                format!("session {session} already has {MAX_STREAMS} extra streams"),
            )),
            _ => Err(refuse(
                ErrorCode::UnknownTask,
                format!("no session {session} of task {task:?} takes extra streams"),
            )),
        }
    }
}

/// Closes a session to extra streams when dropped.
pub struct JoinGuard<'a> {
    joins: &'a Joins,
    session: u64,
}

impl Drop for JoinGuard<'_> {
    fn drop(&mut self) {
        self.joins
            .0
            .lock()
            .expect("joins lock")
            .remove(&self.session);
    }
}

/// Run an extra stream that asked to join `session`.
pub async fn run<R, W>(
    rx: &Receiver,
    task: &str,
    session: u64,
    r: &mut FrameReader<R>,
    w: &mut W,
) -> Result<Outcome, Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let tx = rx.joins.take(session, task)?;
    let gone = || refuse(ErrorCode::Internal, format!("session {session} has ended"));
    tx.send(Joined::Start).await.map_err(|_| gone())?;
    send(
        w,
        &Message::LayoutAccepted(LayoutAccepted {
            resume_seq: 0,
            compare: false,
        }),
    )
    .await?;
    let mut out = Outcome {
        task: task.to_string(),
        ..Default::default()
    };
    loop {
        // The session governs how long a stream may be idle (a stopped task
        // sends nothing for a long time); when it ends, so does the stream.
        let m = tokio::select! {
            m = next(r, PAUSED_TIMEOUT) => m,
            _ = tx.closed() => return Err(gone()),
        };
        match m {
            Ok(Message::Chunk(c)) => {
                out.chunks += 1;
                out.bytes += c.header.len as u64;
                tx.send(Joined::Chunk(Box::new(c)))
                    .await
                    .map_err(|_| gone())?;
            }
            // Closed: chunks that never arrived are the session's to find.
            Err(e) if e.interrupted => {
                let _ = tx.send(Joined::End).await;
                return Ok(out);
            }
            Err(e) => {
                let _ = tx
                    .send(Joined::Failed(refuse(e.code, e.message.clone())))
                    .await;
                return Err(e);
            }
            Ok(other) => {
                let e = refuse(
                    ErrorCode::MalformedFrame,
                    format!(
                        "an extra stream carries chunks only, not kind {}",
                        other.kind()
                    ),
                );
                let _ = tx
                    .send(Joined::Failed(refuse(e.code, e.message.clone())))
                    .await;
                return Err(e);
            }
        }
    }
}
