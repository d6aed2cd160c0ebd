//! One data session: handshake (`conn.rs`), layout checks, then
//! chunks written inside the planned extents, checkpoints and finish.
//!
//! Nothing is written before the layout is accepted; a chunk outside the plan,
//! with a bad hash or that decompresses past its declared length ends the
//! session with an error and is not written.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::conn::hello;
pub use super::conn::{HELLO_TIMEOUT, IDLE_TIMEOUT, PAUSED_TIMEOUT, Refusal};
pub(crate) use super::conn::{next, refuse, send};
use super::hashlog;
use super::join::Joined;
use super::journal::Journal;
use super::post::PostPlan;
use super::server::Receiver;
use super::tracker::Tracker;
use crate::proto::codec::FrameReader;
use crate::proto::digest;
use crate::proto::message::*;
use crate::report::events;
use crate::report::task::TaskState;

/// What a completed session did.
#[derive(Debug, Default)]
pub struct Outcome {
    pub task: String,
    pub chunks: u64,
    pub bytes: u64,
}

/// Run a session on an established TLS stream.
pub async fn run<R, W>(
    rx: &Arc<Receiver>,
    r: &mut FrameReader<R>,
    w: &mut W,
    peer: SocketAddr,
) -> Result<Outcome, Refusal>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (hello, session, version) = hello(rx, r, w, peer).await?;

    // Layout: checks before anything is written; one writing session at a
    // time. A netcheck session sends probe data instead.
    let mut first = next(r, IDLE_TIMEOUT).await?;
    // A pass that follows a plan announces the target tables first.
    let post = match first {
        Message::TargetPlan(json) => {
            let p = PostPlan::parse(json)?;
            first = next(r, IDLE_TIMEOUT).await?;
            Some(p)
        }
        _ => None,
    };
    let layout = match first {
        Message::Layout(l) => l,
        Message::Probe(first) => return super::probe::run(rx, &hello.task, first, r, w).await,
        Message::Join { session } => {
            return super::join::run(rx, &hello.task, session, r, w).await;
        }
        other => {
            return Err(refuse(
                ErrorCode::MalformedFrame,
                format!("expected Layout, got message kind {}", other.kind()),
            ));
        }
    };
    rx.tasks.add(&hello.task, &hello.source, peer);
    let mut busy = Some(match rx.writing.try_lock() {
        Ok(g) => g,
        Err(_) => take_over(rx, &hello.task).await?,
    });
    let superseded = Arc::new(tokio::sync::Notify::new());
    if let Ok(mut w) = rx.writer.lock() {
        *w = Some((hello.task.clone(), superseded.clone()));
    }
    let planned = rx.check_layout(
        &layout,
        &post.as_ref().map(PostPlan::min_sizes).unwrap_or_default(),
    )?;
    if let Some(p) = &post {
        rx.check_plan(p)?;
    }
    // The digest is the data's placement: a plan whose tables or growth
    // changed but whose data lands on the same bytes resumes.
    let digest = layout_digest(&layout);
    let journal = Journal::load(&rx.state_dir, &hello.task)
        .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))?;
    // A resume continues a pass of the same plan; with no journal of it
    // (a receiver whose state dir was lost) the target is hashed instead:
    // the source offers hashes and sends only what the target lacks. An
    // incremental pass continues only an interrupted one (after a finished
    // pass it compares everything); full and verify passes start at 0.
    let record = hashlog::SessionRecord::open(rx, &hello.task, journal.as_ref(), &layout)?;
    let (resume_seq, compare) = match (&journal, layout.pass) {
        (Some(j), Pass::Resume) if j.layout_digest == digest => (j.durable_seq, false),
        (_, Pass::Resume) => (0, true),
        (Some(j), Pass::Incremental) if j.layout_digest == digest && !j.finished => {
            (j.durable_seq, false)
        }
        _ => (0, false),
    };
    // Chunks may skip ahead (the ones the target holds are not sent).
    let skipping = layout.pass == Pass::Incremental || compare;
    // Sessions at protocol 2 that send data get part digests with their
    // hash answers, so that a chunk changed in a few places travels as a
    // patch of those parts. The seed is drawn per session.
    let patches = (version >= 2 && skipping && layout.pass != Pass::Verify).then(|| {
        let n = crate::proto::pairing::nonce();
        PartSpec {
            size: PART_SIZE,
            seed: u64::from_le_bytes(n[..8].try_into().expect("8 bytes")),
        }
    });
    // A verify pass changes nothing, not even the journal.
    let persist = layout.pass != Pass::Verify;
    let mut journal = Journal {
        task: hello.task.clone(),
        layout_digest: digest,
        durable_seq: resume_seq,
        durable_bytes: journal
            .filter(|_| resume_seq > 0)
            .map_or(0, |j| j.durable_bytes),
        finished: false,
        hashes_complete: false,
        stamps: Vec::new(),
    };
    let mut tracker = Tracker::new(&layout, resume_seq)?;
    let mut ctl = rx.tasks.begin(tracker.status(
        &hello.task,
        &layout,
        resume_seq,
        &hello.source,
        peer,
        session,
    ));
    save(&journal, persist, &rx.state_dir)?;
    if let Some(p) = post.as_ref().filter(|_| persist) {
        tokio::task::block_in_place(|| rx.prepare_plan(&hello.task, p))?;
    }
    send(
        w,
        &Message::LayoutAccepted(LayoutAccepted {
            resume_seq,
            compare,
        }),
    )
    .await?;
    if record.trusted {
        events::log(
            &rx.state_dir,
            &hello.task,
            "task-start",
            "the targets are unchanged since the last pass: hash queries are answered from the hash record",
        );
    }
    if compare {
        events::log(
            &rx.state_dir,
            &hello.task,
            "task-start",
            "no journal of this plan: hashing the target to find what it holds",
        );
    }
    rx.tasks.set_state(&hello.task, TaskState::Syncing, None);
    // The operator may have set a rate limit or stopped the task before
    // this session began.
    let mut paused = false;
    let first = *ctl.borrow_and_update();
    if first != Control::default() {
        paused = first.paused;
        send(w, &Message::Control(first)).await?;
        if paused {
            rx.tasks.control(&hello.task, |_| {});
        }
    }
    let mut ctl_open = true;
    events::log(
        &rx.state_dir,
        &hello.task,
        "task-start",
        &format!(
            "{:?} pass, {} volume(s), resuming at chunk {resume_seq}",
            layout.pass,
            layout.volumes.len()
        ),
    );

    let mut out = Outcome {
        task: hello.task.clone(),
        ..Default::default()
    };
    // Extra streams of this session (`--streams`) hand their chunks over.
    let (_joins, mut join_rx) = rx.joins.open(session, &hello.task);
    let mut streams = 0usize;
    let mut multi = false;
    let mut pending_finish = None;
    let mut expect = resume_seq;
    // Chunks from extra streams handed to the pool and not yet written.
    let mut in_flight = std::collections::HashSet::new();
    // What this session wrote since the last sync; once durable it goes
    // to the read-back thread, and Finish waits for all of it to be checked.
    let mut written: Vec<ChunkRef> = Vec::new();
    let mut written_total = 0u64;
    let verifier = super::verify::Verifier::start(rx.clone(), planned.clone(), layout.hash);
    // Twice the cores: a thread waiting on its O_DIRECT write leaves its
    // core to one decompressing the next chunk.
    let threads = std::thread::available_parallelism().map_or(2, |n| (n.get() * 2).min(8));
    let mut pool = super::pool::WritePool::start(
        rx.clone(),
        planned.clone(),
        layout.hash,
        layout.chunk_size as usize,
        threads,
    )?;
    let mut current: Option<u64> = None;
    let pass_name = format!("{:?}", layout.pass);
    let task = hello.task.as_str();
    // A chunk the pool wrote (or refused): count it, or end the session.
    macro_rules! completed {
        ($done:expr) => {{
            let super::pool::Done {
                header,
                wire,
                patched,
                result,
            } = $done;
            let n = match result {
                Ok(n) => n,
                Err(e) => {
                    current = Some(header.seq);
                    return Err(e);
                }
            };
            let zero = header.codec == Codec::Zero;
            record.note(header.seq, &header.hash)?;
            tracker.written(&header, zero, patched, wire);
            in_flight.remove(&header.seq);
            if multi {
                expect = tracker.prefix_from(expect);
            }
            rx.tasks.update(task, |s| {
                s.chunks_done += 1;
                s.bytes_done += n;
                s.chunks_written += 1;
                s.bytes_written += n;
                s.wire_bytes += wire as u64;
                s.zero_chunks += zero as u64;
                s.chunks_patched += patched as u64;
            });
            out.chunks += 1;
            out.bytes += n;
            journal.durable_bytes += n;
            written_total += 1;
            written.push(ChunkRef {
                target: header.target,
                offset: header.offset,
                len: header.len,
                hash: header.hash,
            });
        }};
    }
    // Wait for every chunk in the pool: before syncs, answers and Finish.
    macro_rules! drain {
        () => {
            while pool.in_flight > 0 {
                completed!(pool.next_done().await?);
            }
        };
    }
    let result = async {
        let (chunks, bytes) = loop {
            let idle = if paused { PAUSED_TIMEOUT } else { IDLE_TIMEOUT };
            let msg = tokio::select! {
                // Extra streams first: a stream's Start is queued before its
                // source can send Finish on this one, so Finish never
                // overtakes it.
                biased;
                _ = superseded.notified() => {
                    return Err(refuse(
                        ErrorCode::TargetInUse,
                        format!("a new session of task {task} took the targets over; this one ends"),
                    ));
                }
                j = join_rx.recv() => match j {
                    Some(Joined::Chunk(c)) => Message::Chunk(*c),
                    Some(Joined::Start) => {
                        streams += 1;
                        multi = true;
                        rx.tasks.update(task, |s| s.streams = 1 + streams as u32);
                        continue;
                    }
                    Some(Joined::End) => {
                        streams = streams.saturating_sub(1);
                        rx.tasks.update(task, |s| s.streams = 1 + streams as u32);
                        match pending_finish.take() {
                            Some(f) if streams == 0 => break f,
                            f => pending_finish = f,
                        }
                        continue;
                    }
                    Some(Joined::Failed(e)) => return Err(e),
                    None => continue,
                },
                d = pool.next_done(), if pool.in_flight > 0 => {
                    completed!(d?);
                    continue;
                }
                changed = ctl.changed(), if ctl_open => {
                    if changed.is_err() {
                        ctl_open = false;
                        continue;
                    }
                    let c = *ctl.borrow_and_update();
                    let was = std::mem::replace(&mut paused, c.paused);
                    send(w, &Message::Control(c)).await?;
                    let rate = c.rate_mbit.map_or("the source's own".to_string(), |m| format!("{m} Mbit/s"));
                    let (event, what) = match (was, c.paused) {
                        (false, true) => ("task-stop", "stopped by the operator"),
                        (true, false) => ("task-start", "started again by the operator"),
                        _ => ("task-rate", "rate limit changed by the operator"),
                    };
                    events::log(&rx.state_dir, task, event, &format!("{what}; rate limit {rate}"));
                    continue;
                }
                m = next(r, idle) => m?,
            };
            match msg {
                Message::Chunk(c) => {
                    // Full and resumed passes send every chunk in order;
                    // comparing passes skip the chunks the receiver holds.
                    let seq = c.header.seq;
                    let in_order = if skipping {
                        // Data follows the answers, queries run ahead: any
                        // chunk not yet written in this pass.
                        tracker.pending(seq) && !in_flight.contains(&seq)
                    } else if multi {
                        // Streams interleave: any chunk not yet written.
                        seq >= expect && tracker.pending(seq) && !in_flight.contains(&seq)
                    } else {
                        seq == expect
                    };
                    if !in_order || layout.pass == Pass::Verify {
                        return Err(refuse(
                            ErrorCode::MalformedFrame,
                            format!(
                                "chunk {} arrived where chunk {expect} was due ({:?} pass)",
                                c.header.seq, layout.pass
                            ),
                        ));
                    }
                    current = Some(seq);
                    tracker.check(&c.header)?;
                    current = None;
                    if multi || skipping {
                        in_flight.insert(seq);
                    }
                    if !multi {
                        expect = expect.max(seq + 1);
                    }
                    // Checked against the plan, bound and hash, then
                    // written, by a pool thread; counted when done.
                    pool.submit(c).await?;
                }
                Message::HashQuery(q) => {
                    drain!();
                    tracker.check_query(q.first_seq, &q.chunks)?;
                    // From the record where it knows the chunk; the rest
                    // (all of them when it is not trusted) from the target.
                    let known = record.answer(q.first_seq, &q.chunks)?;
                    let unknown: Vec<usize> = (0..q.chunks.len()).filter(|&i| known[i].is_none()).collect();
                    let refs: Vec<ChunkRef> = unknown.iter().map(|&i| q.chunks[i]).collect();
                    let read = tokio::task::block_in_place(|| {
                        rx.examine(&planned, Some(layout.hash), patches, &refs)
                    })?;
                    let mut have: Vec<bool> = known.iter().map(|k| k.unwrap_or(false)).collect();
                    // Per chunk of the query: digests of the target's parts
                    // where it lacks the chunk (sessions that take patches).
                    let mut parts: Vec<Vec<u64>> = vec![Vec::new(); q.chunks.len()];
                    for (&i, held) in unknown.iter().zip(read) {
                        have[i] = held.same;
                        parts[i] = held.parts;
                        if held.same {
                            record.note(q.first_seq + i as u64, &q.chunks[i].hash)?;
                        }
                    }
                    // The record knew these lack the chunk: their parts are read here.
                    let known_lacking: Vec<usize> = (0..q.chunks.len())
                        .filter(|&i| known[i] == Some(false) && patches.is_some())
                        .collect();
                    if !known_lacking.is_empty() {
                        let refs: Vec<ChunkRef> = known_lacking.iter().map(|&i| q.chunks[i]).collect();
                        // Only an offer: a target that cannot be read here
                        // gets its chunks whole (and the write will tell).
                        match tokio::task::block_in_place(|| {
                            rx.examine(&planned, None, patches, &refs)
                        }) {
                            Ok(read) => {
                                for (&i, held) in known_lacking.iter().zip(read) {
                                    parts[i] = held.parts;
                                }
                            }
                            Err(e) => events::log(
                                &rx.state_dir,
                                task,
                                "task-notice",
                                &format!("no part digests for chunks from {}: {}", q.first_seq, e.message),
                            ),
                        }
                    }
                    let parts = patches.map(|spec| PartDigests {
                        spec,
                        lacking: parts
                            .into_iter()
                            .zip(&have)
                            .filter(|(_, h)| !**h)
                            .map(|(d, _)| d)
                            .collect(),
                    });
                    let hashes: Vec<[u8; 32]> = q.chunks.iter().map(|c| c.hash).collect();
                    tracker.answered(q.first_seq, &have, &hashes, layout.pass == Pass::Verify);
                    let held: Vec<&ChunkRef> =
                        q.chunks.iter().zip(&have).filter(|(_, h)| **h).map(|(c, _)| c).collect();
                    let differ = (q.chunks.len() - held.len()) as u64;
                    let verify = layout.pass == Pass::Verify;
                    rx.tasks.update(task, |s| {
                        s.chunks_held += held.len() as u64;
                        s.chunks_done += held.len() as u64;
                        s.bytes_done += held.iter().map(|c| c.len as u64).sum::<u64>();
                        if verify {
                            s.chunks_differ += differ;
                            s.chunks_done += differ;
                            s.bytes_done += q.chunks.iter().zip(&have)
                                .filter(|(_, h)| !**h).map(|(c, _)| c.len as u64).sum::<u64>();
                        }
                    });
                    send(
                        w,
                        &Message::HashAnswer(HashAnswer {
                            first_seq: q.first_seq,
                            have,
                            parts,
                        }),
                    )
                    .await?;
                    expect = expect.max(q.first_seq);
                }
                Message::Checkpoint { seq } => {
                    drain!();
                    tokio::task::block_in_place(|| rx.sync())?;
                    record.sync()?;
                    verifier.check(std::mem::take(&mut written));
                    let bad = verifier.bad_so_far();
                    if bad > 0 {
                        return Err(refuse(
                            ErrorCode::HashMismatch,
                            format!("{bad} chunks written read back differently from their hashes"),
                        ));
                    }
                    journal.durable_seq = if skipping || layout.pass == Pass::Verify {
                        seq.max(journal.durable_seq)
                    } else {
                        seq.min(expect)
                    };
                    save(&journal, persist, &rx.state_dir)?;
                    send(
                        w,
                        &Message::Ack {
                            seq: journal.durable_seq,
                            bytes_durable: journal.durable_bytes,
                        },
                    )
                    .await?;
                    events::log(
                        &rx.state_dir,
                        task,
                        "task-sync",
                        &format!(
                            "durable below chunk {}, {} bytes",
                            journal.durable_seq, journal.durable_bytes
                        ),
                    );
                }
                Message::Finish { chunks, bytes } => {
                    // Chunks on extra streams may still be in flight.
                    if streams > 0 {
                        pending_finish = Some((chunks, bytes));
                        continue;
                    }
                    break (chunks, bytes);
                }
                Message::Error(e) => {
                    return Err(refuse(e.code, format!("the source gave up: {}", e.message)));
                }
                other => {
                    return Err(refuse(
                        ErrorCode::MalformedFrame,
                        format!("unexpected message kind {}", other.kind()),
                    ));
                }
            }
        };
        drain!();
        // Every chunk of a sending pass must have arrived, on whichever stream.
        if !skipping && layout.pass != Pass::Verify && expect < chunks {
            return Err(refuse(
                ErrorCode::MalformedFrame,
                format!("the pass ended but chunks {expect}..{chunks} never arrived"),
            ));
        }
        rx.tasks.set_state(task, TaskState::Processing, None);
        tokio::task::block_in_place(|| rx.sync())?;
        // Read back what this session wrote before calling it done.
        verifier.check(std::mem::take(&mut written));
        let checked = tokio::task::block_in_place(|| verifier.finish())?;
        if checked.chunks != written_total {
            return Err(refuse(
                ErrorCode::Internal,
                format!(
                    "read back {} of the {written_total} chunks written",
                    checked.chunks
                ),
            ));
        }
        if checked.bad > 0 {
            return Err(refuse(
                ErrorCode::HashMismatch,
                format!(
                    "{} of {written_total} chunks written read back differently from their hashes",
                    checked.bad
                ),
            ));
        }
        rx.tasks.set_state(task, TaskState::Cleaning, None);
        journal.durable_seq = chunks.max(expect);
        journal.finished = true;
        if let Some(stamps) = record.finish(rx, tracker.rows.len() as u64)? {
            journal.hashes_complete = true;
            journal.stamps = stamps;
        }
        if layout.pass == Pass::Verify && tracker.differing() > 0 {
            hashlog::distrust(&rx.state_dir, task);
        }
        save(&journal, persist, &rx.state_dir)?;
        // A plan's tables and growth, once the data is durable: a failure
        // leaves the journal finished, so a resume pass re-runs only this.
        if let Some(p) = post.as_ref().filter(|_| persist) {
            let mut steps = Vec::new();
            let applied = tokio::task::block_in_place(|| rx.apply_plan(task, p, &mut steps));
            tracker.post_steps = steps;
            // The steps changed target bytes the hash record describes.
            hashlog::distrust(&rx.state_dir, task);
            applied?;
        }
        tracker.write(&rx.state_dir, &hello.task, &pass_name, &hello.source, Vec::new());
        rx.tasks.set_state(task, TaskState::Finished, None);
        events::log(
            &rx.state_dir,
            &hello.task,
            "result",
            &format!(
                "finished: {} chunks, {} bytes this session; the source sent {chunks} chunks, {bytes} bytes in all",
                out.chunks, out.bytes
            ),
        );
        // Everything is durable and recorded: the targets are
        // free for the next pass before the source hears so.
        busy.take();
        send(
            w,
            &Message::Finished {
                chunks: expect,
                bytes: journal.durable_bytes,
            },
        )
        .await?;
        Ok(out)
    }
    .await;
    // A finished pass wrote its report before answering Finished.
    if let Err(r) = &result {
        if let Some(seq) = current {
            tracker.failed(seq, &r.message);
        }
        let error = format!("{} ({:?})", r.message, r.code);
        let state = if r.interrupted {
            TaskState::Waiting
        } else {
            TaskState::InError
        };
        rx.tasks.set_state(&hello.task, state, Some(error.clone()));
        events::log(
            &rx.state_dir,
            &hello.task,
            "result",
            &format!("{}: {error}", state.name()),
        );
        let errors = vec![error];
        tracker.write(
            &rx.state_dir,
            &hello.task,
            &pass_name,
            &hello.source,
            errors,
        );
    }
    result
}

/// Save the journal (not in a verify pass, which changes nothing).
fn save(journal: &Journal, persist: bool, state_dir: &std::path::Path) -> Result<(), Refusal> {
    if persist {
        journal
            .save(state_dir)
            .map_err(|e| refuse(ErrorCode::Internal, e.to_string()))?;
    }
    Ok(())
}

/// BLAKE3 of the layout's encoding with the pass left out (a resume runs the
/// same plan as the pass it continues), as hex.
pub(crate) fn layout_digest(l: &Layout) -> String {
    let mut w = crate::proto::wire::Writer::default();
    let plan = Layout {
        pass: Pass::Full,
        ..l.clone()
    };
    Message::Layout(plan).encode_payload(&mut w);
    digest::hash_hex(HashAlgo::Blake3, &digest::hash(HashAlgo::Blake3, &w.0))
}

/// How long a new session of the same task waits for the session it
/// supersedes to end (it stops at its next await, then saves its state).
const TAKE_OVER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The targets are held by another session: when it is a session of the
/// same task (the source came back: a crash, a reboot, a link that died
/// without a FIN), end it and take the targets; otherwise refuse.
async fn take_over<'a>(
    rx: &'a Receiver,
    task: &str,
) -> Result<tokio::sync::MutexGuard<'a, ()>, Refusal> {
    let held_by = rx.writer.lock().ok().and_then(|w| w.clone());
    match held_by {
        Some((t, stop)) if t == task => {
            events::log(
                &rx.state_dir,
                task,
                "task-start",
                "a new session of this task while the last one still holds the targets: ending the last one",
            );
            stop.notify_one();
            tokio::time::timeout(TAKE_OVER_WAIT, rx.writing.lock())
                .await
                .map_err(|_| {
                    refuse(
                        ErrorCode::TargetInUse,
                        format!(
                            "the last session of task {task} did not end within {} s; try again",
                            TAKE_OVER_WAIT.as_secs()
                        ),
                    )
                })
        }
        Some((other, _)) => Err(refuse(
            ErrorCode::TargetInUse,
            format!("the targets are being written by another session (task {other})"),
        )),
        None => Err(refuse(
            ErrorCode::TargetInUse,
            "the targets are being written by another session",
        )),
    }
}
