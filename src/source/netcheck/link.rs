//! The network side of a netcheck: the TLS session (Hello, then Probe
//! frames for the bandwidth run) and the UDP probes for latency, jitter and
//! loss.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use bytes::Bytes;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;

use super::{
    FILLER_LEN, NETCHECK_TASK, NetReport, NetcheckConfig, PROBE_WAIT, PROGRESS_EVERY, Stage,
};
use crate::proto::codec::{FrameReader, MAX_FRAME, encode, write_message};
use crate::proto::message::Message;
use crate::proto::udp;
use crate::source::link::{Link, Tls, connect, refusal};

const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// What the network side measured.
pub(super) struct Net {
    pub receiver_name: String,
    pub probes: Probes,
    /// Bandwidth run: bytes the receiver counted, and seconds.
    pub bytes: u64,
    pub secs: f64,
}

pub(super) async fn network(
    cfg: &NetcheckConfig,
    addr: SocketAddr,
    progress: &mut impl FnMut(Stage),
) -> anyhow::Result<Net> {
    progress(Stage::Connecting {
        receiver: addr.to_string(),
    });
    let Link {
        receiver: receiver_name,
        mut r,
        mut w,
        ..
    } = connect(&cfg.receiver, cfg.fingerprint, &cfg.code, NETCHECK_TASK).await?;

    // Latency on the idle link, then bandwidth.
    let probes = probe(cfg, addr, progress).await?;
    let (bytes, secs) = bandwidth(cfg, &mut r, &mut w, progress).await?;
    let mut tls: Tls = r.into_inner().unsplit(w);
    let _ = tls.shutdown().await;
    Ok(Net {
        receiver_name,
        probes,
        bytes,
        secs,
    })
}

/// The receiver's next message, within [`REPLY_TIMEOUT`].
async fn reply(r: &mut FrameReader<tokio::io::ReadHalf<Tls>>) -> anyhow::Result<Message> {
    match tokio::time::timeout(REPLY_TIMEOUT, r.next()).await {
        Err(_) => bail!(
            "the receiver did not answer within {} s",
            REPLY_TIMEOUT.as_secs()
        ),
        Ok(Ok(Some(m))) => Ok(m),
        Ok(Ok(None)) => bail!("the receiver closed the connection"),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("reading from the receiver")),
    }
}

/// What the UDP probes found.
#[derive(Debug, Default)]
pub(super) struct Probes {
    sent: u32,
    /// Round-trip time per sequence number; `None`: lost (or late).
    rtts: Vec<Option<Duration>>,
    /// An ICMP "port unreachable" came back.
    pub refused: bool,
    pub send_error: Option<String>,
}

impl Probes {
    pub(super) fn fill(&self, report: &mut NetReport) {
        let ms: Vec<f64> = self
            .rtts
            .iter()
            .flatten()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        report.probes_sent = self.sent;
        report.probes_received = ms.len() as u32;
        report.loss_percent = if self.sent == 0 {
            100.0
        } else {
            100.0 * (self.sent as f64 - ms.len() as f64) / self.sent as f64
        };
        if ms.is_empty() {
            return;
        }
        report.latency_min_ms = Some(ms.iter().copied().fold(f64::INFINITY, f64::min));
        report.latency_max_ms = Some(ms.iter().copied().fold(0.0, f64::max));
        report.latency_avg_ms = Some(ms.iter().sum::<f64>() / ms.len() as f64);
        report.jitter_ms = Some(jitter(&ms));
    }
}

/// Mean absolute difference of consecutive values (0 for fewer than two).
fn jitter(rtts_ms: &[f64]) -> f64 {
    if rtts_ms.len() < 2 {
        return 0.0;
    }
    let sum: f64 = rtts_ms.windows(2).map(|w| (w[1] - w[0]).abs()).sum();
    sum / (rtts_ms.len() - 1) as f64
}

/// Send `cfg.probes` UDP probes at `cfg.probe_interval` to `addr` and match
/// the echoes by run id and sequence number; duplicates, replies to another
/// run and replies later than [`PROBE_WAIT`] are ignored.
async fn probe(
    cfg: &NetcheckConfig,
    addr: SocketAddr,
    progress: &mut impl FnMut(Stage),
) -> anyhow::Result<Probes> {
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(local)
        .await
        .context("opening a UDP socket for the probes")?;
    sock.connect(addr)
        .await
        .with_context(|| format!("addressing UDP probes to {addr}"))?;
    let mut run = [0u8; 4];
    SystemRandom::new()
        .fill(&mut run)
        .map_err(|_| anyhow!("the system random source failed"))?;
    let run = u32::from_le_bytes(run);
    let total = cfg.probes;
    let base = Instant::now();
    let mut sent_micros: Vec<u64> = Vec::with_capacity(total as usize);
    let mut out = Probes {
        rtts: vec![None; total as usize],
        ..Default::default()
    };
    let mut received = 0u32;
    let mut next_send = tokio::time::Instant::now();
    let mut buf = [0u8; 2048];
    loop {
        let done_sending = out.sent == total;
        if done_sending && received == total {
            break;
        }
        let wake = if done_sending {
            next_send - cfg.probe_interval + PROBE_WAIT
        } else {
            next_send
        };
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {
                if done_sending {
                    break;
                }
                let micros = base.elapsed().as_micros() as u64;
                let p = udp::Probe { seq: out.sent, run, sent_micros: micros };
                let datagram = udp::encode(&cfg.code, &cfg.fingerprint, p);
                match sock.send(&datagram).await {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => out.refused = true,
                    Err(e) => out.send_error = Some(e.to_string()),
                }
                sent_micros.push(micros);
                out.sent += 1;
                next_send += cfg.probe_interval;
                progress(Stage::Probing { sent: out.sent, received, total });
            }
            got = sock.recv(&mut buf) => match got {
                Ok(n) => {
                    let now = base.elapsed();
                    let Some(p) = udp::decode(&cfg.code, &cfg.fingerprint, &buf[..n]) else {
                        continue;
                    };
                    let i = p.seq as usize;
                    if p.run != run || i >= sent_micros.len() || sent_micros[i] != p.sent_micros
                        || out.rtts[i].is_some()
                    {
                        continue;
                    }
                    let rtt = now.saturating_sub(Duration::from_micros(p.sent_micros));
                    if rtt <= PROBE_WAIT {
                        out.rtts[i] = Some(rtt);
                        received += 1;
                        progress(Stage::Probing { sent: out.sent, received, total });
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => out.refused = true,
                Err(e) => out.send_error = Some(e.to_string()),
            },
        }
    }
    Ok(out)
}

/// Filler for the bandwidth run: 1 MiB that no link compresses.
fn filler() -> Bytes {
    let mut b = vec![0u8; FILLER_LEN];
    blake3::Hasher::new()
        .update(b"ferry netcheck filler")
        .finalize_xof()
        .fill(&mut b);
    Bytes::from(b)
}

/// Stream Probe frames for `cfg.bandwidth_secs`, then Finish; returns the
/// bytes the receiver counted and the seconds from the first byte to its
/// Finished. A count that differs from what was sent is an error.
async fn bandwidth(
    cfg: &NetcheckConfig,
    r: &mut FrameReader<tokio::io::ReadHalf<Tls>>,
    w: &mut tokio::io::WriteHalf<Tls>,
    progress: &mut impl FnMut(Stage),
) -> anyhow::Result<(u64, f64)> {
    let frame = encode(&Message::Probe(filler()), MAX_FRAME)?;
    let run = Duration::from_secs_f64(cfg.bandwidth_secs);
    let start = Instant::now();
    let mut shown = start;
    let (mut frames, mut bytes) = (0u64, 0u64);
    while start.elapsed() < run {
        tokio::select! {
            sent = w.write_all(&frame) => sent.context("sending to the receiver")?,
            // The receiver says nothing during the run unless it refuses.
            msg = r.next() => return Err(match msg {
                Ok(Some(Message::Error(e))) => refusal(&e),
                Ok(Some(m)) => anyhow!("unexpected message from the receiver: kind {}", m.kind()),
                Ok(None) => anyhow!("the receiver closed the connection"),
                Err(e) => anyhow::Error::new(e).context("reading from the receiver"),
            }),
        }
        frames += 1;
        bytes += FILLER_LEN as u64;
        if shown.elapsed() >= PROGRESS_EVERY {
            shown = Instant::now();
            progress(Stage::Bandwidth {
                bytes,
                secs: start.elapsed().as_secs_f64(),
                total_secs: cfg.bandwidth_secs,
            });
        }
    }
    write_message(
        w,
        &Message::Finish {
            chunks: frames,
            bytes,
        },
        MAX_FRAME,
    )
    .await
    .context("sending to the receiver")?;
    let (got_frames, got_bytes) = match reply(r).await? {
        Message::Finished { chunks, bytes } => (chunks, bytes),
        Message::Error(e) => return Err(refusal(&e)),
        other => bail!("unexpected reply to Finish: message kind {}", other.kind()),
    };
    let secs = start.elapsed().as_secs_f64();
    ensure!(
        (got_frames, got_bytes) == (frames, bytes),
        "the receiver counted {got_bytes} bytes in {got_frames} frames of the {bytes} bytes in \
         {frames} frames sent"
    );
    progress(Stage::Bandwidth {
        bytes,
        secs,
        total_secs: cfg.bandwidth_secs,
    });
    Ok((got_bytes, secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_the_mean_absolute_difference() {
        assert_eq!(jitter(&[]), 0.0);
        assert_eq!(jitter(&[5.0]), 0.0);
        assert_eq!(jitter(&[1.0, 3.0, 2.0, 2.0]), (2.0 + 1.0 + 0.0) / 3.0);
    }

    #[test]
    fn probes_fill_loss_latency_and_jitter() {
        let ms = Duration::from_millis;
        let p = Probes {
            sent: 4,
            rtts: vec![Some(ms(10)), None, Some(ms(14)), Some(ms(12))],
            ..Default::default()
        };
        let mut r = NetReport::default();
        p.fill(&mut r);
        assert_eq!((r.probes_sent, r.probes_received), (4, 3));
        assert_eq!(r.loss_percent, 25.0);
        assert_eq!(r.latency_min_ms, Some(10.0));
        assert_eq!(r.latency_max_ms, Some(14.0));
        assert_eq!(r.latency_avg_ms, Some(12.0));
        assert_eq!(r.jitter_ms, Some(3.0));
        let none = Probes {
            sent: 3,
            rtts: vec![None; 3],
            ..Default::default()
        };
        let mut r = NetReport::default();
        none.fill(&mut r);
        assert_eq!(r.loss_percent, 100.0);
        assert_eq!(r.latency_avg_ms, None);
        assert_eq!(r.jitter_ms, None);
    }
}
