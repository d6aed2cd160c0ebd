//! A data connection's frames as the receiver reads and writes them: with
//! timeouts, as refusals the source is told about, and the Hello that opens
//! every session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::journal::valid_task;
use super::server::Receiver;
use crate::proto::codec::{FrameReader, MAX_FRAME, write_message};
use crate::proto::message::*;
use crate::proto::{pairing, version};
use crate::report::events;

/// How long a source may take to say Hello, and to send the next frame.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a paused source may stay silent.
pub const PAUSED_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// Why a session ended early: sent to the source as an Error, logged, shown.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
    /// The link dropped or went silent: the task can resume, it did not fail.
    pub interrupted: bool,
}

pub(crate) fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        interrupted: false,
    }
}

pub(crate) fn dropped(message: impl Into<String>) -> Refusal {
    Refusal {
        interrupted: true,
        ..refuse(ErrorCode::Internal, message)
    }
}

pub(crate) async fn next<R: AsyncRead + Unpin>(
    r: &mut FrameReader<R>,
    limit: Duration,
) -> Result<Message, Refusal> {
    match tokio::time::timeout(limit, r.next()).await {
        Err(_) => Err(dropped("timed out waiting for the source")),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => Err(dropped("the source closed the connection")),
        Ok(Err(e @ (crate::proto::FrameError::Truncated | crate::proto::FrameError::Io(_)))) => {
            Err(dropped(format!("connection to the source lost: {e}")))
        }
        Ok(Err(crate::proto::FrameError::TooLarge { len, max })) => Err(refuse(
            ErrorCode::FrameTooLarge,
            format!("frame of {len} bytes exceeds the {max}-byte limit"),
        )),
        Ok(Err(e)) => Err(refuse(ErrorCode::MalformedFrame, e.to_string())),
    }
}

pub(crate) async fn send<W: AsyncWrite + Unpin>(w: &mut W, m: &Message) -> Result<(), Refusal> {
    write_message(w, m, MAX_FRAME).await.map_err(|e| {
        refuse(
            ErrorCode::Internal,
            format!("cannot write to the source: {e}"),
        )
    })
}

/// Hello: the version both speak and the pairing proof; Welcome with a new
/// session number. Wrong versions and codes are refused (a wrong code counts
/// towards the address's lockout).
pub(crate) async fn hello<R, W>(
    rx: &Arc<Receiver>,
    r: &mut FrameReader<R>,
    w: &mut W,
    peer: SocketAddr,
) -> Result<(Hello, u64, u16), Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = match next(r, HELLO_TIMEOUT).await? {
        Message::Hello(h) => h,
        other => {
            return Err(refuse(
                ErrorCode::MalformedFrame,
                format!("expected Hello, got message kind {}", other.kind()),
            ));
        }
    };
    let Some(v) = version::negotiate(hello.min_version, hello.max_version) else {
        let m = Message::VersionMismatch(VersionMismatch {
            min_version: version::MIN,
            max_version: version::MAX,
        });
        let _ = send(w, &m).await;
        return Err(refuse(
            ErrorCode::BadVersion,
            format!(
                "the source speaks protocol {}..{}, this receiver {}..{}",
                hello.min_version,
                hello.max_version,
                version::MIN,
                version::MAX
            ),
        ));
    };
    if !pairing::verify(&rx.code, &rx.fingerprint, &hello.nonce, &hello.proof) {
        rx.record_failure(peer.ip());
        return Err(refuse(ErrorCode::BadPairingCode, "wrong pairing code"));
    }
    if !valid_task(&hello.task) {
        return Err(refuse(
            ErrorCode::UnknownTask,
            format!("task name {:?} is not valid", hello.task),
        ));
    }
    let session = rx.next_session();
    send(
        w,
        &Message::Welcome(Welcome {
            version: v,
            receiver: rx.name.clone(),
            session,
        }),
    )
    .await?;
    events::log(
        &rx.state_dir,
        &hello.task,
        "session-start",
        &format!("from {peer} ({}), session {session}", hello.source),
    );

    Ok((hello, session, v))
}
