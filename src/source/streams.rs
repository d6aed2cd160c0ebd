//! Extra TLS streams of a pass (`--streams N`): each connects, pairs, and
//! joins the primary session; then a writer task sends the chunk frames it
//! is given. Acks, checkpoints and Finish stay on the primary stream; the
//! receiver counts a chunk durable only when every chunk before it arrived,
//! whichever stream carried it.

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::link::{Link, connect, refusal};
use super::send::SendConfig;
use crate::proto::codec::{MAX_FRAME, write_message};
use crate::proto::message::Message;

/// Frames queued per extra stream.
const QUEUE: usize = 4;

/// An extra stream: where to put frames, and its writer.
pub struct Extra {
    pub tx: mpsc::Sender<Bytes>,
    writer: JoinHandle<anyhow::Result<()>>,
}

/// Open `n` extra streams joining `session`.
pub async fn open(cfg: &SendConfig, session: u64, n: usize) -> anyhow::Result<Vec<Extra>> {
    let mut out = Vec::with_capacity(n);
    for k in 1..=n {
        let Link { mut r, mut w, .. } =
            connect(&cfg.receiver, cfg.fingerprint, &cfg.code, &cfg.task)
                .await
                .with_context(|| format!("stream {k}"))?;
        write_message(&mut w, &Message::Join { session }, MAX_FRAME).await?;
        match r.next().await.with_context(|| format!("stream {k}"))? {
            Some(Message::LayoutAccepted(_)) => {}
            Some(Message::Error(e)) => return Err(refusal(&e).context(format!("stream {k}"))),
            other => bail!("stream {k}: unexpected reply to Join: {other:?}"),
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let writer = tokio::spawn(async move {
            while let Some(frame) = rx.recv().await {
                w.write_all(&frame)
                    .await
                    .with_context(|| format!("sending on stream {k}"))?;
            }
            let mut tls = r.into_inner().unsplit(w);
            let _ = tls.shutdown().await;
            Ok(())
        });
        out.push(Extra { tx, writer });
    }
    Ok(out)
}

/// Close every extra stream after its queue drained; the first error, if any.
pub async fn close(extras: Vec<Extra>) -> anyhow::Result<()> {
    let mut first = Ok(());
    for e in extras {
        drop(e.tx);
        let res = e.writer.await.context("a stream's writer stopped")?;
        if first.is_ok() {
            first = res;
        }
    }
    first
}
