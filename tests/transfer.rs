//! Fast tier: `ferry send` to an in-process receiver over TLS on 127.0.0.1
//! (no root): data lands exactly on the used ranges, and bad peers (wrong code,
//! wrong fingerprint, old versions, malformed or oversized frames, chunks
//! outside the plan) are refused while the receiver keeps serving.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::inproc::{CODE, Running, start};
use ferry::proto::codec::{MAX_FRAME, read_message, write_message};
use ferry::proto::message::*;
use ferry::proto::{pairing, tls, version};
use ferry::source::send::{SendConfig, send};
use tokio::io::AsyncWriteExt;

fn noise(len: usize, seed: u8) -> Vec<u8> {
    let mut v = vec![0u8; len];
    blake3::Hasher::new()
        .update(&[seed])
        .finalize_xof()
        .fill(&mut v);
    v
}

/// A 6 MiB disk of unknown content: half noise, a zero MiB, half text.
fn disk_image(dir: &Path) -> PathBuf {
    let mut d = noise(2 << 20, 1);
    d.extend(vec![0u8; 1 << 20]);
    d.extend(b"ferry moves used blocks ".repeat((3 << 20) / 24));
    d.resize(6 << 20, 7);
    let p = dir.join("disk.img");
    std::fs::write(&p, d).unwrap();
    p
}

/// A 2 MiB swap volume: only its header page is used; the rest is garbage.
fn swap_image(dir: &Path) -> PathBuf {
    let mut d = noise(2 << 20, 2);
    d[..4096].fill(0);
    d[1024] = 1;
    d[1028..1032].copy_from_slice(&511u32.to_le_bytes());
    d[4086..4096].copy_from_slice(b"SWAPSPACE2");
    let p = dir.join("swap.img");
    std::fs::write(&p, d).unwrap();
    p
}

fn config(r: &Running, volumes: &[&Path]) -> SendConfig {
    let mut c = SendConfig::new(
        &r.addr.to_string(),
        r.rx.fingerprint,
        CODE,
        "t1",
        volumes.iter().map(|p| p.display().to_string()).collect(),
    );
    c.checkpoint_bytes = 1 << 20;
    c.threads = 2;
    c
}

#[test]
fn full_pass_writes_exactly_the_used_ranges() {
    let t = tempfile::tempdir().unwrap();
    let (disk, swap) = (disk_image(t.path()), swap_image(t.path()));
    let (t0, t1) = (t.path().join("t0.img"), t.path().join("t1.img"));
    let r = start(t.path(), vec![t0.clone(), t1.clone()], false);
    let rep = send(&config(&r, &[&disk, &swap])).unwrap();
    // The pass's time, split: before the first chunk, and after the last.
    assert!(
        rep.seconds_connecting > 0.0
            && rep.seconds_finishing > 0.0
            && rep.seconds_connecting + rep.seconds_finishing <= rep.seconds,
        "{} + {} of {} s",
        rep.seconds_connecting,
        rep.seconds_finishing,
        rep.seconds
    );
    assert_eq!(
        rep.bytes,
        (6 << 20) + 4096,
        "whole unknown disk + swap header"
    );
    assert_eq!(rep.zero_chunks, 1);
    assert!(rep.wire_bytes < rep.bytes, "zeros and text shrink");
    assert_eq!(std::fs::read(&t0).unwrap(), std::fs::read(&disk).unwrap());
    let got = std::fs::read(&t1).unwrap();
    let src = std::fs::read(&swap).unwrap();
    assert_eq!(got.len(), src.len(), "target sized to the volume");
    assert_eq!(&got[..4096], &src[..4096]);
    assert!(
        got[4096..].iter().all(|&b| b == 0),
        "unused swap pages were not sent"
    );
    // Journal and events.
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.path().join("state/tasks/t1.json")).unwrap())
            .unwrap();
    assert_eq!(j["finished"], true);
    assert_eq!(j["durable_seq"], rep.chunks);
    let events = std::fs::read_to_string(t.path().join("state/events.jsonl")).unwrap();
    assert!(events.contains("\"result\""), "{events}");
    // Report files: every chunk listed, all completed, none in error.
    let reports = t.path().join("state/reports");
    let total = std::fs::read_to_string(reports.join("t1_total_list.csv")).unwrap();
    assert_eq!(
        total.lines().next().unwrap(),
        "volume,offset,length,crc64,hash,status,time,error"
    );
    assert_eq!(total.lines().count() as u64, 1 + rep.chunks);
    let done = std::fs::read_to_string(reports.join("t1_completed_list.csv")).unwrap();
    assert_eq!(done.lines().count() as u64, 1 + rep.chunks);
    let swap_row = done.lines().find(|l| l.contains("swap.img")).unwrap();
    let crc = format!(
        "{:016x}",
        ferry::proto::digest::crc64(&std::fs::read(&swap).unwrap()[..4096])
    );
    assert!(
        swap_row.contains(&format!(",0,4096,{crc},")) && swap_row.contains(",written,"),
        "{swap_row}"
    );
    let errs = std::fs::read_to_string(reports.join("t1_error_list.csv")).unwrap();
    assert_eq!(errs.lines().count(), 1, "{errs}");
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reports.join("t1_report.json")).unwrap()).unwrap();
    assert_eq!(j["state"], "Finished");
    assert_eq!(j["bytes_written"], rep.bytes);
    assert_eq!(j["volumes"][1]["used_bytes"], 4096);
    assert_eq!(j["volumes"][0]["zero_chunks"], 1);
    assert!(j["compression_ratio"].as_f64().unwrap() > 1.0);
    assert_eq!(j["passes"][0]["pass"], "Full");

    // Both sides give each volume the same digest: BLAKE3 over the chunk
    // hashes, one hex line each, as in the total list.
    for (i, v) in rep.volumes.iter().enumerate() {
        let d = v.digest.as_deref().expect("a full pass hashes every chunk");
        assert_eq!(j["volumes"][i]["digest"], d, "volume {i}");
        let name = &v.name;
        let from_list = ferry::source::tally::digest_of(
            total
                .lines()
                .skip(1)
                .filter(|l| l.starts_with(name.as_str()))
                .map(|l| l.split(',').nth(4).unwrap()),
        );
        assert_eq!(from_list, d, "volume {i} from the CSV");
    }
    assert_eq!(rep.volumes[1].bytes_read, 4096);
    assert_eq!(rep.volumes[0].bytes_sent, 6 << 20);
}

#[test]
fn wrong_code_and_fingerprint_are_refused_and_the_receiver_keeps_serving() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let r = start(t.path(), vec![t.path().join("t0.img")], false);
    let mut bad = config(&r, &[&disk]);
    bad.code = "WRONG-ONE".into();
    let e = format!("{:#}", send(&bad).unwrap_err());
    assert!(
        e.contains("wrong pairing code") && e.contains("BadPairingCode"),
        "{e}"
    );
    let mut bad = config(&r, &[&disk]);
    bad.fingerprint[0] ^= 1;
    let e = format!("{:#}", send(&bad).unwrap_err());
    assert!(e.contains("does not match the pinned"), "{e}");
    send(&config(&r, &[&disk])).unwrap();
    let events = std::fs::read_to_string(t.path().join("state/events.jsonl")).unwrap();
    assert!(events.contains("wrong pairing code"), "{events}");
    assert!(events.contains("TLS handshake failed"), "{events}");
}

#[test]
fn repeated_failures_are_rate_limited() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let r = start(t.path(), vec![t.path().join("t0.img")], false);
    let mut bad = config(&r, &[&disk]);
    bad.code = "WRONG-ONE".into();
    for _ in 0..5 {
        assert!(format!("{:#}", send(&bad).unwrap_err()).contains("BadPairingCode"));
    }
    let e = format!("{:#}", send(&config(&r, &[&disk])).unwrap_err());
    assert!(e.contains("RateLimited"), "even the right code waits: {e}");
}

/// A raw TLS client that speaks frames by hand.
async fn raw(r: &Running) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    let c = tokio_rustls::TlsConnector::from(tls::client_config(r.rx.fingerprint).unwrap());
    c.connect(tls::server_name(), tcp).await.unwrap()
}

fn hello(fp: &[u8; 32], min: u16, max: u16) -> Message {
    let nonce = pairing::nonce();
    Message::Hello(Hello {
        min_version: min,
        max_version: max,
        nonce,
        proof: pairing::proof(CODE, fp, &nonce),
        source: "raw".into(),
        task: "raw".into(),
    })
}

/// A full pass of one volume of `size` bytes whose first `used` are used.
fn one_volume(size: u64, used: u64) -> Layout {
    Layout {
        pass: Pass::Full,
        chunk_size: 1 << 20,
        hash: HashAlgo::Blake3,
        volumes: vec![VolumePlan {
            name: "v".into(),
            target: 0,
            size,
            extents: vec![Extent {
                source_offset: 0,
                len: used,
                target_offset: 0,
            }],
        }],
    }
}

/// Chunk `seq` of raw bytes at `offset`, with its true hash.
fn raw_chunk(seq: u64, offset: u64, data: Vec<u8>) -> Message {
    let data = Bytes::from(data);
    Message::Chunk(Chunk {
        header: ChunkHeader {
            seq,
            target: 0,
            offset,
            len: data.len() as u32,
            codec: Codec::None,
            hash: ferry::proto::digest::hash(HashAlgo::Blake3, &data),
            crc64: 0,
        },
        data,
        patch: None,
    })
}

async fn reply(s: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> Message {
    read_message(s, MAX_FRAME).await.unwrap().expect("a reply")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_oversized_and_misplaced_frames_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("t0.img");
    let r = start(t.path(), vec![target.clone()], false);
    let fp = r.rx.fingerprint;

    // Oversized length prefix: refused before reading it.
    let mut s = raw(&r).await;
    s.write_all(&((MAX_FRAME as u32) + 1).to_le_bytes())
        .await
        .unwrap();
    assert!(matches!(
        reply(&mut s).await,
        Message::Error(ErrorMsg {
            code: ErrorCode::FrameTooLarge,
            ..
        })
    ));

    // Garbage payload.
    let mut s = raw(&r).await;
    s.write_all(&[3, 0, 0, 0, 99, 1, 2]).await.unwrap();
    assert!(matches!(
        reply(&mut s).await,
        Message::Error(ErrorMsg {
            code: ErrorCode::MalformedFrame,
            ..
        })
    ));

    // A future protocol version only.
    let mut s = raw(&r).await;
    write_message(
        &mut s,
        &hello(&fp, version::MAX + 1, version::MAX + 3),
        MAX_FRAME,
    )
    .await
    .unwrap();
    match reply(&mut s).await {
        Message::VersionMismatch(v) => {
            assert_eq!((v.min_version, v.max_version), (version::MIN, version::MAX))
        }
        other => panic!("{other:?}"),
    }
    drop(s);

    // A chunk outside the planned extents: refused, nothing written.
    let mut s = raw(&r).await;
    write_message(&mut s, &hello(&fp, 1, 1), MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(reply(&mut s).await, Message::Welcome(_)));
    let layout = one_volume(1 << 20, 4096);
    write_message(&mut s, &Message::Layout(layout), MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(reply(&mut s).await, Message::LayoutAccepted(_)));
    let data = Bytes::from(vec![9u8; 8192]);
    let chunk = Chunk {
        header: ChunkHeader {
            seq: 0,
            target: 0,
            offset: 0,
            len: 8192,
            codec: Codec::None,
            hash: ferry::proto::digest::hash(HashAlgo::Blake3, &data),
            crc64: 0,
        },
        data,
        patch: None,
    };
    write_message(&mut s, &Message::Chunk(chunk), MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(
        reply(&mut s).await,
        Message::Error(ErrorMsg {
            code: ErrorCode::OutOfExtent,
            ..
        })
    ));
    let written = std::fs::read(&target).unwrap();
    assert!(
        written.iter().all(|&b| b == 0),
        "nothing written outside the plan"
    );

    // A chunk whose data does not match its hash.
    let mut s = raw(&r).await;
    write_message(&mut s, &hello(&fp, 1, 1), MAX_FRAME)
        .await
        .unwrap();
    reply(&mut s).await;
    let layout = one_volume(1 << 20, 8192);
    write_message(&mut s, &Message::Layout(layout), MAX_FRAME)
        .await
        .unwrap();
    reply(&mut s).await;
    let chunk = Chunk {
        header: ChunkHeader {
            seq: 0,
            target: 0,
            offset: 0,
            len: 8192,
            codec: Codec::None,
            hash: [0; 32],
            crc64: 0,
        },
        data: Bytes::from(vec![9u8; 8192]),
        patch: None,
    };
    write_message(&mut s, &Message::Chunk(chunk), MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(
        reply(&mut s).await,
        Message::Error(ErrorMsg {
            code: ErrorCode::HashMismatch,
            ..
        })
    ));
    assert!(std::fs::read(&target).unwrap().iter().all(|&b| b == 0));
    drop(s);

    // Still serving.
    let disk = disk_image(t.path());
    let r2 = tokio::task::spawn_blocking({
        let cfg = config(&r, &[&disk]);
        move || send(&cfg)
    })
    .await
    .unwrap();
    r2.unwrap();
}

#[test]
fn incremental_sends_only_changed_chunks_and_verify_finds_damage() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let t0 = t.path().join("t0.img");
    let r = start(t.path(), vec![t0.clone()], false);
    let full = send(&config(&r, &[&disk])).unwrap();
    assert_eq!(full.chunks, 6);

    // Nothing changed: an incremental pass compares all and sends nothing.
    let mut inc = config(&r, &[&disk]);
    inc.pass = Pass::Incremental;
    let same = send(&inc).unwrap();
    assert_eq!((same.compared, same.chunks_sent), (6, 0));

    // Change bytes in two chunks of the source.
    let mut d = std::fs::read(&disk).unwrap();
    d[10] ^= 0xff;
    d[(4 << 20) + 77] ^= 0xff;
    std::fs::write(&disk, &d).unwrap();
    let changed = send(&inc).unwrap();
    assert_eq!((changed.compared, changed.chunks_sent), (6, 2));
    assert_eq!(std::fs::read(&t0).unwrap(), d);
    // Each went as a patch of the one 4 KiB part that changed: the noise
    // chunk alone would be a whole MiB on the wire.
    assert_eq!(changed.chunks_patched, 2);
    // The receiver counts them too: its task status and report.
    assert_eq!(r.rx.tasks.get("t1").unwrap().chunks_patched, 2);
    let j: serde_json::Value = serde_json::from_slice(
        &std::fs::read(t.path().join("state/reports/t1_report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(j["volumes"][0]["chunks_patched"], 2);
    assert_eq!(j["volumes"][0]["chunks_written"], 2);
    assert!(
        changed.wire_bytes < 2 * ((4 << 10) + 256),
        "{}",
        changed.wire_bytes
    );

    // Changes over most of a chunk send it whole.
    let mut d = std::fs::read(&disk).unwrap();
    for b in &mut d[(1 << 20)..(1 << 20) + (900 << 10)] {
        *b ^= 0x55;
    }
    std::fs::write(&disk, &d).unwrap();
    let most = send(&inc).unwrap();
    assert_eq!((most.chunks_sent, most.chunks_patched), (1, 0));
    assert!(most.wire_bytes > 1 << 20, "{}", most.wire_bytes);
    assert_eq!(std::fs::read(&t0).unwrap(), d);

    // Verify: clean, then one flipped byte on the target is found.
    let mut ver = config(&r, &[&disk]);
    ver.pass = Pass::Verify;
    let ok = send(&ver).unwrap();
    assert_eq!(
        (ok.compared, ok.chunks_sent, ok.mismatches.len()),
        (6, 0, 0)
    );
    let mut tgt = std::fs::read(&t0).unwrap();
    tgt[(3 << 20) + 5] ^= 1;
    std::fs::write(&t0, &tgt).unwrap();
    let bad = send(&ver).unwrap();
    assert_eq!(bad.mismatches.len(), 1);
    assert_eq!(bad.mismatches[0].offset, 3 << 20);
    let errs = std::fs::read_to_string(t.path().join("state/reports/t1_error_list.csv")).unwrap();
    assert_eq!(errs.lines().count(), 2, "{errs}");
    assert!(
        errs.lines()
            .nth(1)
            .unwrap()
            .contains(&format!(",{},1048576,", 3 << 20))
            && errs.contains(",differs,"),
        "{errs}"
    );
    assert_eq!(
        std::fs::read(&t0).unwrap(),
        tgt,
        "a verify pass writes nothing"
    );
}

/// How many times the receiver's events say it answered from its hash record.
fn from_record(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("state/events.jsonl"))
        .unwrap()
        .matches("answered from the hash record")
        .count()
}

#[test]
fn incremental_passes_trust_the_hash_record_only_while_the_target_is_unchanged() {
    let t = tempfile::tempdir().unwrap();
    let disk = disk_image(t.path());
    let t0 = t.path().join("t0.img");
    let r = start(t.path(), vec![t0.clone()], false);
    send(&config(&r, &[&disk])).unwrap();
    let mut inc = config(&r, &[&disk]);
    inc.pass = Pass::Incremental;
    let same = send(&inc).unwrap();
    assert_eq!((same.compared, same.chunks_sent), (6, 0));
    assert_eq!(from_record(t.path()), 1, "the record answered");

    // Written behind the receiver's back: the stamps moved, so the target
    // is read and the damaged chunk sent again.
    let src = std::fs::read(&disk).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut tgt = std::fs::read(&t0).unwrap();
    tgt[(2 << 20) + 9] ^= 0x10;
    std::fs::write(&t0, &tgt).unwrap();
    let fixed = send(&inc).unwrap();
    assert_eq!((fixed.compared, fixed.chunks_sent), (6, 1));
    assert_eq!(from_record(t.path()), 1, "the target was read");
    assert_eq!(std::fs::read(&t0).unwrap(), src);
    send(&inc).unwrap();
    assert_eq!(
        from_record(t.path()),
        2,
        "trusted again after a finished pass"
    );

    // A change the stamps cannot see (here: stamps forged to match) is
    // what a verify pass is for: it reads the target, and the record is
    // not trusted again until a pass has rewritten it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    tgt = src.clone();
    tgt[(4 << 20) + 3] ^= 1;
    std::fs::write(&t0, &tgt).unwrap();
    let jp = t.path().join("state/tasks/t1.json");
    let mut j: serde_json::Value = serde_json::from_slice(&std::fs::read(&jp).unwrap()).unwrap();
    let now = ferry::receiver::hashlog::stamps(&r.rx.targets, &r.rx.roots).unwrap();
    j["stamps"] = serde_json::to_value(now).unwrap();
    std::fs::write(&jp, serde_json::to_vec(&j).unwrap()).unwrap();
    let mut ver = config(&r, &[&disk]);
    ver.pass = Pass::Verify;
    assert_eq!(send(&ver).unwrap().mismatches.len(), 1);
    let healed = send(&inc).unwrap();
    assert_eq!((healed.compared, healed.chunks_sent), (6, 1));
    assert_eq!(from_record(t.path()), 2, "the target was read");
    assert_eq!(std::fs::read(&t0).unwrap(), src);
}

#[test]
fn extra_streams_carry_a_pass() {
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("big.img");
    std::fs::write(&disk, noise(12 << 20, 7)).unwrap();
    let t0 = t.path().join("t0.img");
    let r = start(t.path(), vec![t0.clone()], false);
    let mut cfg = config(&r, &[&disk]);
    cfg.streams = 3;
    let rep = send(&cfg).unwrap();
    assert_eq!((rep.chunks, rep.chunks_sent), (12, 12));
    assert_eq!(std::fs::read(&t0).unwrap(), std::fs::read(&disk).unwrap());
    let ev = std::fs::read_to_string(t.path().join("state/events.jsonl")).unwrap();
    assert_eq!(ev.matches("\"session-start\"").count(), 3, "{ev}");
    let s = r.rx.tasks.get("t1").unwrap();
    assert_eq!((s.chunks_written, s.bytes_written), (12, 12 << 20));
    // The digest is the same as a single stream's.
    let mut one = config(&r, &[&disk]);
    one.pass = Pass::Verify;
    let v = send(&one).unwrap();
    assert_eq!(v.mismatches.len(), 0);
    assert_eq!(v.volumes[0].digest, rep.volumes[0].digest);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_are_checked_and_missing_chunks_found() {
    let t = tempfile::tempdir().unwrap();
    let target = t.path().join("t0.img");
    let r = start(t.path(), vec![target.clone()], false);
    let fp = r.rx.fingerprint;

    // Joining a session that does not exist.
    let mut s = raw(&r).await;
    write_message(&mut s, &hello(&fp, 1, 1), MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(reply(&mut s).await, Message::Welcome(_)));
    write_message(&mut s, &Message::Join { session: 999 }, MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(
        reply(&mut s).await,
        Message::Error(ErrorMsg {
            code: ErrorCode::UnknownTask,
            ..
        })
    ));

    // A pass of two chunks: only chunk 1 arrives (on an extra stream).
    let mut p = raw(&r).await;
    write_message(&mut p, &hello(&fp, 1, 1), MAX_FRAME)
        .await
        .unwrap();
    let Message::Welcome(w) = reply(&mut p).await else {
        panic!("no welcome")
    };
    write_message(
        &mut p,
        &Message::Layout(one_volume(2 << 20, 2 << 20)),
        MAX_FRAME,
    )
    .await
    .unwrap();
    assert!(matches!(reply(&mut p).await, Message::LayoutAccepted(_)));
    let mut j = raw(&r).await;
    write_message(&mut j, &hello(&fp, 1, 1), MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(reply(&mut j).await, Message::Welcome(_)));
    write_message(&mut j, &Message::Join { session: w.session }, MAX_FRAME)
        .await
        .unwrap();
    assert!(matches!(reply(&mut j).await, Message::LayoutAccepted(_)));
    let ones = vec![1u8; 1 << 20];
    write_message(&mut j, &raw_chunk(1, 1 << 20, ones.clone()), MAX_FRAME)
        .await
        .unwrap();
    j.shutdown().await.unwrap();
    write_message(
        &mut p,
        &Message::Finish {
            chunks: 2,
            bytes: 2 << 20,
        },
        MAX_FRAME,
    )
    .await
    .unwrap();
    match reply(&mut p).await {
        Message::Error(e) => {
            assert_eq!(e.code, ErrorCode::MalformedFrame);
            assert!(
                e.message.contains("chunks 0..2 never arrived"),
                "{}",
                e.message
            );
        }
        other => panic!("{other:?}"),
    }
    // The chunk that came was checked and written in its place; the task
    // is in error, not finished.
    let got = std::fs::read(&target).unwrap();
    assert!(got[..1 << 20].iter().all(|&b| b == 0));
    assert_eq!(&got[1 << 20..2 << 20], &ones[..]);
    let st = r.rx.tasks.get("raw").unwrap();
    assert_eq!(st.state, ferry::report::task::TaskState::InError);
}

#[test]
fn a_slow_pass_checkpoints_every_few_seconds() {
    let t = tempfile::tempdir().unwrap();
    let disk = t.path().join("slow.img");
    std::fs::write(&disk, noise(12 << 20, 9)).unwrap();
    let r = start(t.path(), vec![t.path().join("t0.img")], false);
    let mut cfg = config(&r, &[&disk]);
    // 16 Mbit/s: the 12 MiB take about 6 s, far less than a checkpoint's
    // worth of bytes; time alone must ask for one.
    cfg.checkpoint_bytes = 1 << 30;
    cfg.rate = ferry::source::rate::RateLimit::new(16);
    send(&cfg).unwrap();
    let ev = std::fs::read_to_string(t.path().join("state/events.jsonl")).unwrap();
    assert!(ev.matches("\"task-sync\"").count() >= 1, "{ev}");
}
