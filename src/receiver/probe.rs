//! A netcheck session: after Welcome the source sends Probe frames of filler
//! for a few seconds, then Finish; the receiver counts and discards them and
//! answers Finished with the frames and bytes that arrived. Nothing is
//! written and no task state changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::server::Receiver;
use super::session::{Outcome, Refusal, next, refuse, send};
use crate::proto::codec::FrameReader;
use crate::proto::message::{ErrorCode, Message};
use crate::report::events;

/// The longest bandwidth run a source may ask for.
pub const MAX_PROBE_TIME: Duration = Duration::from_secs(60);

pub async fn run<R, W>(
    rx: &Arc<Receiver>,
    task: &str,
    first: Bytes,
    r: &mut FrameReader<R>,
    w: &mut W,
) -> Result<Outcome, Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let start = Instant::now();
    let (mut frames, mut bytes) = (1u64, first.len() as u64);
    loop {
        let left = MAX_PROBE_TIME.saturating_sub(start.elapsed());
        match next(r, left).await? {
            Message::Probe(data) => {
                frames += 1;
                bytes += data.len() as u64;
            }
            Message::Finish { .. } => break,
            other => {
                return Err(refuse(
                    ErrorCode::MalformedFrame,
                    format!("unexpected message kind {} in a netcheck run", other.kind()),
                ));
            }
        }
    }
    send(
        w,
        &Message::Finished {
            chunks: frames,
            bytes,
        },
    )
    .await?;
    let secs = start.elapsed().as_secs_f64();
    events::log(
        &rx.state_dir,
        task,
        "netcheck",
        &format!(
            "{bytes} bytes in {frames} frames over {secs:.2} s ({:.1} Mbit/s)",
            bytes as f64 * 8.0 / secs.max(1e-6) / 1e6
        ),
    );
    Ok(Outcome {
        task: task.to_string(),
        chunks: 0,
        bytes: 0,
    })
}
