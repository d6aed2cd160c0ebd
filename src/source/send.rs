//! `ferry send`: a pass over the selected volumes to a receiver.
//!
//! The read side (reader, compressing workers, in-order collector) is in
//! `pipeline.rs`; here the network side (tokio, TLS) writes the frames,
//! spreads them over extra streams, checkpoints every `checkpoint_bytes` or
//! few seconds, follows the receiver's Control, and reads acks.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::chunk::CHUNK_SIZE;
use super::link::{Link, TlsRead, TlsWrite, connect, refusal};
use super::pipeline::{Item, Lack, Reframed, reframe, start_pipeline};
use super::rate::{Pacer, RateLimit};
use super::record;
use super::streams;
use super::tally::Tally;
use super::volumes::{SourceVolume, open_plan, open_volumes};
use super::watch::Stage;
use crate::proto::codec::{MAX_FRAME, write_message};
use crate::proto::message::*;

pub use super::link::DATA_PORT;
pub use config::SendConfig;
pub use report::{Mismatch, SendReport};

mod config;
mod report;

fn layout(volumes: &[SourceVolume], cfg: &SendConfig) -> Layout {
    Layout {
        pass: cfg.pass,
        chunk_size: CHUNK_SIZE as u32,
        hash: cfg.hash,
        volumes: volumes
            .iter()
            .map(|v| VolumePlan {
                name: v.name.clone(),
                target: v.target,
                size: v.size,
                extents: v
                    .used
                    .iter()
                    .map(|(a, b)| Extent {
                        source_offset: a,
                        len: b - a,
                        target_offset: v.base + a,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Run one pass. Errors name what failed: the receiver's refusal, a read
/// error with the volume and offset, a dropped connection.
pub fn send(cfg: &SendConfig) -> anyhow::Result<SendReport> {
    record::begin(cfg);
    stage(cfg, Stage::Preparing);
    let res = open_source(cfg).and_then(|(plan, volumes)| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(run(cfg, volumes, plan))
    });
    stage(cfg, Stage::Cleaning);
    record::end(cfg, &res);
    if let (Some(w), Ok(r)) = (&cfg.watch, &res) {
        w.figures(&r.volumes, r.bytes, r.wire_bytes, true);
    }
    stage(cfg, Stage::Done);
    res
}

fn stage(cfg: &SendConfig, s: Stage) {
    if let Some(w) = &cfg.watch {
        w.stage(s);
    }
}

/// The running figures for a watcher.
fn figures(cfg: &SendConfig, report: &SendReport, force: bool) {
    if let Some(w) = &cfg.watch {
        w.figures(
            &report.tally.volumes,
            report.bytes,
            report.wire_bytes,
            force,
        );
    }
}

/// A stop the watcher asked for: checkpoint what was sent and end the pass
/// (the same task resumes from the checkpoint).
async fn stop_requested(cfg: &SendConfig, w: &mut TlsWrite, next_seq: u64) -> anyhow::Result<()> {
    if cfg.watch.as_ref().is_some_and(|w| w.stopping()) {
        write_message(w, &Message::Checkpoint { seq: next_seq }, MAX_FRAME).await?;
        w.flush().await?;
        bail!("stopped by the operator at chunk {next_seq}; send the same task again to resume");
    }
    Ok(())
}

/// The volumes to read and, with a plan, the target plan (JSON) for the
/// receiver.
fn open_source(cfg: &SendConfig) -> anyhow::Result<(Option<String>, Vec<SourceVolume>)> {
    match &cfg.plan {
        None => Ok((None, open_volumes(&cfg.volumes, &cfg.scan, &cfg.roots)?)),
        Some(spec) => {
            let (planned, volumes) = open_plan(spec, &cfg.scan, &cfg.roots)?;
            let json = serde_json::to_string(&planned.target_plan())?;
            Ok((Some(json), volumes))
        }
    }
}

async fn run(
    cfg: &SendConfig,
    volumes: Vec<SourceVolume>,
    plan: Option<String>,
) -> anyhow::Result<SendReport> {
    let start = Instant::now();
    let Link {
        mut r,
        mut w,
        session,
        ..
    } = connect(&cfg.receiver, cfg.fingerprint, &cfg.code, &cfg.task).await?;
    if let Some(json) = plan {
        write_message(&mut w, &Message::TargetPlan(json), MAX_FRAME).await?;
    }
    write_message(&mut w, &Message::Layout(layout(&volumes, cfg)), MAX_FRAME).await?;
    let (resume, hint) = match r.next().await? {
        Some(Message::LayoutAccepted(a)) => (a.resume_seq, a.compare),
        Some(Message::Error(e)) => return Err(refusal(&e)),
        other => bail!("unexpected reply to Layout: {other:?}"),
    };

    let connected = start.elapsed().as_secs_f64();
    stage(cfg, Stage::Syncing);
    let volumes = Arc::new(volumes);
    // The receiver asks for hashes when it has no record of a resumed pass.
    let compare = matches!(cfg.pass, Pass::Incremental | Pass::Verify) || hint;
    if hint {
        notice(format_args!(
            "the receiver has no journal of this task: comparing hashes, sending only what it lacks"
        ));
    }
    let (frames_tx, mut frames_rx) = tokio::sync::mpsc::channel::<Item>(cfg.threads.max(1) * 2);
    let pipeline = start_pipeline(cfg, volumes.clone(), resume, frames_tx, compare);

    let mut report = SendReport {
        task: cfg.task.clone(),
        resumed_at: resume,
        tally: Tally::new(&volumes, CHUNK_SIZE as u32, resume, cfg.hash),
        seconds_connecting: connected,
        ..Default::default()
    };
    if compare {
        let next_seq =
            compare_pass(cfg, &volumes, &mut frames_rx, &mut r, &mut w, &mut report).await?;
        let _ = pipeline.join();
        return finish(
            cfg.watch.as_ref(),
            r,
            w,
            next_seq.max(resume),
            report,
            start,
        )
        .await;
    }
    // Frame k of the pass goes on stream k mod N (0: this one).
    let extras = streams::open(cfg, session, cfg.streams.max(1) - 1).await?;
    let mut since_checkpoint = 0u64;
    let mut last_checkpoint = Instant::now();
    let mut next_seq = resume;
    let mut pacer = Pacer::default();
    let mut paused = false;
    loop {
        tokio::select! {
            // The receiver's word (a pause) goes before the next frame.
            biased;
            msg = r.next() => match msg? {
                Some(Message::Ack { seq, bytes_durable }) => record::event(
                    cfg,
                    "task-sync",
                    &format!("durable on the receiver below chunk {seq}, {bytes_durable} bytes"),
                ),
                Some(Message::Control(c)) => {
                    let was = paused;
                    paused = apply_control(cfg, c, was);
                    if paused && !was {
                        // Make what was sent durable while the task waits.
                        write_message(&mut w, &Message::Checkpoint { seq: next_seq }, MAX_FRAME).await?;
                        since_checkpoint = 0;
                    }
                }
                Some(Message::Error(e)) => return Err(refusal(&e)),
                Some(other) => bail!("unexpected message from the receiver: kind {}", other.kind()),
                None => bail!("the receiver closed the connection"),
            },
            item = frames_rx.recv(), if !paused => match item {
                Some(Item::Frame { seq, volume, len, zero, hash, frame }) => {
                    report.tally.hashed(volume as usize, len, &hash);
                    let covers = Covers { volume, len, zero };
                    let out = match (seq % (extras.len() as u64 + 1)) as usize {
                        0 => Out::Primary(&mut w),
                        k => Out::Extra(&extras[k - 1].tx),
                    };
                    send_frame(out, &frame, covers, &cfg.rate, &mut pacer, &mut report).await?;
                    since_checkpoint += len as u64;
                    next_seq = seq + 1;
                    figures(cfg, &report, false);
                    stop_requested(cfg, &mut w, next_seq).await?;
                    // Every N MiB, and every few seconds on a slow link.
                    if since_checkpoint >= cfg.checkpoint_bytes
                        || last_checkpoint.elapsed() >= CHECKPOINT_EVERY
                    {
                        last_checkpoint = Instant::now();
                        write_message(&mut w, &Message::Checkpoint { seq: next_seq }, MAX_FRAME).await?;
                        since_checkpoint = 0;
                    }
                }
                Some(Item::Failed(why)) => {
                    let e = Message::Error(ErrorMsg { code: ErrorCode::Internal, message: why.clone() });
                    let _ = write_message(&mut w, &e, MAX_FRAME).await;
                    bail!("{why}");
                }
                Some(Item::Hashed { .. }) => bail!("internal: a hash-only result in a sending pass"),
                None => break,
            },
        }
    }
    let _ = pipeline.join();
    // Every frame is on the wire before Finish.
    streams::close(extras).await?;
    finish(cfg.watch.as_ref(), r, w, next_seq, report, start).await
}

/// Finish the pass: the receiver syncs, reads back what it wrote, and answers.
async fn finish(
    cfg_watch: Option<&super::watch::Watch>,
    mut r: TlsRead,
    mut w: TlsWrite,
    next_seq: u64,
    mut report: SendReport,
    start: Instant,
) -> anyhow::Result<SendReport> {
    report.chunks = next_seq;
    let finishing = Instant::now();
    if let Some(wt) = &cfg_watch {
        wt.figures(&report.tally.volumes, report.bytes, report.wire_bytes, true);
        wt.stage(Stage::Processing);
    }
    write_message(
        &mut w,
        &Message::Finish {
            chunks: next_seq,
            bytes: report.bytes,
        },
        MAX_FRAME,
    )
    .await?;
    loop {
        match r.next().await? {
            Some(Message::Ack { .. }) => continue,
            Some(Message::Finished { .. }) => break,
            Some(Message::Error(e)) => return Err(refusal(&e)),
            other => bail!("unexpected reply to Finish: {other:?}"),
        }
    }
    report.seconds_finishing = finishing.elapsed().as_secs_f64();
    let mut tls = r.into_inner().unsplit(w);
    let _ = tls.shutdown().await;
    report.seconds = start.elapsed().as_secs_f64();
    report.volumes = std::mem::take(&mut report.tally).finish();
    Ok(report)
}

/// What a chunk frame covers, for the counts.
struct Covers {
    volume: u32,
    len: u32,
    zero: bool,
}

/// The stream a frame goes on.
enum Out<'a> {
    Primary(&'a mut TlsWrite),
    Extra(&'a tokio::sync::mpsc::Sender<Bytes>),
}

/// Write one chunk frame, paced to the rate limit, and count it.
async fn send_frame(
    out: Out<'_>,
    frame: &Bytes,
    Covers { volume, len, zero }: Covers,
    rate: &RateLimit,
    pacer: &mut Pacer,
    report: &mut SendReport,
) -> anyhow::Result<()> {
    let wait = pacer.delay(frame.len() as u64, rate.get(), Instant::now());
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    match out {
        Out::Primary(w) => w
            .write_all(frame)
            .await
            .context("sending to the receiver")?,
        Out::Extra(tx) => tx
            .send(frame.clone())
            .await
            .map_err(|_| anyhow::anyhow!("an extra stream to the receiver closed"))?,
    }
    report.chunks_sent += 1;
    report.bytes += len as u64;
    report.wire_bytes += frame.len() as u64;
    report.zero_chunks += zero as u64;
    report.tally.sent(volume as usize, len, frame.len(), zero);
    Ok(())
}

/// The longest a sending pass goes without asking for a checkpoint.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Chunks compared per HashQuery.
const QUERY_BATCH: usize = 64;
/// Hash queries a comparison pass keeps asked ahead of their answers.
const QUERIES_IN_FLIGHT: usize = 2;

/// Incremental and verify passes: send the hashes of every chunk in batches;
/// of the chunks the receiver does not hold, an incremental pass sends the
/// data and a verify pass lists them. Returns the next sequence number.
async fn compare_pass(
    cfg: &SendConfig,
    volumes: &Arc<Vec<SourceVolume>>,
    items: &mut tokio::sync::mpsc::Receiver<Item>,
    r: &mut TlsRead,
    w: &mut TlsWrite,
    report: &mut SendReport,
) -> anyhow::Result<u64> {
    let mut pacer = Pacer::default();
    let mut paused = false;
    // (seq, volume, offset in it, the chunk's place and hash)
    let mut batch: Vec<(u64, usize, u64, ChunkRef)> = Vec::with_capacity(QUERY_BATCH);
    // Queries asked and not yet answered: the next batch is hashed here
    // while the receiver hashes its target for the one before.
    let mut asked: std::collections::VecDeque<Vec<(u64, usize, u64, ChunkRef)>> =
        Default::default();
    let mut next_seq = 0;
    // Checkpoints as in a sending pass: after so many bytes sent or so many
    // seconds, not after every batch (each costs the receiver a journal
    // fsync, and most batches of an incremental pass send nothing).
    let (mut since_checkpoint, mut last_checkpoint) = (0u64, std::time::Instant::now());
    // Chunks the receiver lacks, being read again: (first seq, frames).
    let mut resends = Resends::new();
    loop {
        let done = match items.recv().await {
            Some(Item::Hashed {
                seq,
                volume,
                offset,
                chunk,
            }) => {
                report.tally.hashed(volume, chunk.len, &chunk.hash);
                batch.push((seq, volume, offset, chunk));
                false
            }
            Some(Item::Failed(why)) => bail!("{why}"),
            Some(Item::Frame { .. }) => bail!("internal: a data frame in a comparison pass"),
            None => true,
        };
        if batch.len() >= QUERY_BATCH || (done && !batch.is_empty()) {
            let query = HashQuery {
                first_seq: batch[0].0,
                chunks: batch.iter().map(|b| b.3).collect(),
            };
            write_message(w, &Message::HashQuery(query), MAX_FRAME).await?;
            asked.push_back(std::mem::take(&mut batch));
        }
        while asked.len() >= QUERIES_IN_FLIGHT || (done && !asked.is_empty()) {
            let b = asked.pop_front().expect("a query is outstanding");
            let answer = loop {
                match r.next().await? {
                    Some(Message::Ack { .. }) => continue,
                    Some(Message::Control(c)) => {
                        paused = apply_control(cfg, c, paused);
                        continue;
                    }
                    Some(Message::HashAnswer(a))
                        if a.have.len() == b.len() && a.first_seq == b[0].0 =>
                    {
                        break a;
                    }
                    Some(Message::Error(e)) => return Err(refusal(&e)),
                    other => bail!("unexpected reply to a hash query: {other:?}"),
                }
            };
            report.compared += b.len() as u64;
            figures(cfg, report, false);
            stop_requested(cfg, w, next_seq).await?;
            // Protocol 2: digests of the receiver's parts where it lacks a
            // chunk (the decoder checked there is one entry per such chunk).
            let spec = answer.parts.as_ref().map(|p| p.spec);
            let mut theirs = answer
                .parts
                .map(|p| p.lacking)
                .unwrap_or_default()
                .into_iter();
            let mut lacking = Vec::new();
            for ((seq, vi, offset, c), held) in b.into_iter().zip(answer.have) {
                next_seq = seq + 1;
                if held {
                    report.tally.held(vi, c.len);
                    continue;
                }
                let parts = theirs.next().unwrap_or_default();
                if let Some(spec) = spec
                    && !parts.is_empty()
                    && parts.len() != PatchMap::parts(c.len, spec.size)
                {
                    bail!(
                        "the receiver's answer gives {} part digests for chunk {seq}, which has {} parts",
                        parts.len(),
                        PatchMap::parts(c.len, spec.size)
                    );
                }
                if cfg.pass == Pass::Verify {
                    report.mismatches.push(Mismatch {
                        volume: volumes[vi].name.clone(),
                        offset,
                        len: c.len,
                    });
                } else {
                    lacking.push(Lack {
                        seq,
                        volume: vi,
                        offset,
                        chunk: c,
                        parts,
                    });
                }
            }
            if let Some(first) = lacking.first().map(|l| l.seq) {
                // Read again and framed off this task, while the pass goes on.
                let (vols, level, algo) = (volumes.clone(), cfg.level, cfg.hash);
                let job = tokio::task::spawn_blocking(move || {
                    reframe(&vols, level, algo, spec, &lacking)
                });
                resends.push_back((first, job));
            }
            let keep = if done { 0 } else { RESENDS_IN_FLIGHT };
            since_checkpoint +=
                send_reframed(cfg, &mut resends, keep, w, &mut pacer, report).await?;
            let due = since_checkpoint >= cfg.checkpoint_bytes
                || last_checkpoint.elapsed() >= CHECKPOINT_EVERY;
            if cfg.pass != Pass::Verify && due {
                // Not past a chunk still being read again.
                let seq = resends.front().map_or(next_seq, |r| r.0);
                write_message(w, &Message::Checkpoint { seq }, MAX_FRAME).await?;
                (since_checkpoint, last_checkpoint) = (0, std::time::Instant::now());
            }
            // Stopped by the receiver's operator: wait for the start.
            while paused {
                match r.next().await? {
                    Some(Message::Control(c)) => paused = apply_control(cfg, c, paused),
                    Some(Message::Ack { .. }) => {}
                    Some(Message::Error(e)) => return Err(refusal(&e)),
                    other => bail!("unexpected message while paused: {other:?}"),
                }
            }
        }
        if done {
            send_reframed(cfg, &mut resends, 0, w, &mut pacer, report).await?;
            return Ok(next_seq);
        }
    }
}

/// Batches of lacking chunks being read again and framed, oldest first.
type Resends =
    std::collections::VecDeque<(u64, tokio::task::JoinHandle<Result<Vec<Reframed>, String>>)>;

/// Batches of lacking chunks a comparison pass has being read again at
/// once. Each read waits behind the pass's own reads in the disk's queue,
/// so the pass goes on hashing meanwhile.
const RESENDS_IN_FLIGHT: usize = 4;

/// Send the frames of the read-again batches that are ready, oldest first,
/// waiting for the oldest while more than `keep` are outstanding. Returns
/// the bytes of source data sent.
async fn send_reframed(
    cfg: &SendConfig,
    resends: &mut Resends,
    keep: usize,
    w: &mut TlsWrite,
    pacer: &mut Pacer,
    report: &mut SendReport,
) -> anyhow::Result<u64> {
    let mut sent = 0;
    loop {
        let outstanding = resends.len();
        let Some((_, job)) = resends.front_mut() else {
            break;
        };
        if outstanding <= keep && !job.is_finished() {
            break;
        }
        let frames = job
            .await
            .context("reading chunks again")?
            .map_err(anyhow::Error::msg)?;
        resends.pop_front();
        for f in frames {
            let covers = Covers {
                volume: f.volume,
                len: f.len,
                zero: f.zero,
            };
            send_frame(Out::Primary(w), &f.frame, covers, &cfg.rate, pacer, report).await?;
            report.chunks_patched += f.patched as u64;
            sent += f.len as u64;
        }
    }
    Ok(sent)
}

/// Follow the receiver operator's Control: the rate limit override now, and
/// whether to pause. Returns whether the task is paused.
fn apply_control(cfg: &SendConfig, c: Control, was_paused: bool) -> bool {
    let before = cfg.rate.get();
    cfg.rate.set_override(c.rate_mbit.map(u64::from));
    let now = cfg.rate.get();
    if now != before {
        let limit = match now {
            0 => "no limit".to_string(),
            m => format!("{m} Mbit/s"),
        };
        notice(format_args!("the receiver set the rate limit: {limit}"));
    }
    match (was_paused, c.paused) {
        (false, true) => {
            notice(format_args!(
                "the receiver paused the task; waiting for it to be started"
            ));
            record::event(cfg, "task-stop", "stopped by the receiver's operator");
        }
        (true, false) => {
            notice(format_args!("the receiver started the task again"));
            record::event(
                cfg,
                "task-start",
                "started again by the receiver's operator",
            );
        }
        _ => {}
    }
    c.paused
}

/// A line on the source's console (stderr); a closed console is ignored.
fn notice(line: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "ferry send: {line}");
}
