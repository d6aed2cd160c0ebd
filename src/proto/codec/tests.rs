//! Unit tests of `codec`.

use super::super::message::*;
use super::*;
use proptest::prelude::*;

fn samples() -> Vec<Message> {
    let hash = [7u8; HASH_LEN];
    vec![
        Message::Hello(Hello {
            min_version: 1,
            max_version: 1,
            nonce: [1; 16],
            proof: [2; 32],
            source: "srv-01".into(),
            task: "task-1".into(),
        }),
        Message::Welcome(Welcome {
            version: 1,
            receiver: "rx".into(),
            session: 42,
        }),
        Message::VersionMismatch(VersionMismatch {
            min_version: 2,
            max_version: 3,
        }),
        Message::Layout(Layout {
            pass: Pass::Full,
            chunk_size: 1 << 20,
            hash: HashAlgo::Blake3,
            volumes: vec![VolumePlan {
                name: "disk.img:3".into(),
                target: 0,
                size: 1 << 30,
                extents: vec![Extent {
                    source_offset: 0,
                    len: 4096,
                    target_offset: 1 << 20,
                }],
            }],
        }),
        Message::LayoutAccepted(LayoutAccepted {
            resume_seq: 9,
            compare: true,
        }),
        Message::Chunk(Chunk {
            header: ChunkHeader {
                seq: 3,
                target: 0,
                offset: 1 << 20,
                len: 1 << 20,
                codec: Codec::Zstd,
                hash,
                crc64: 0xdead_beef,
            },
            data: Bytes::from_static(b"compressed bytes"),
            patch: None,
        }),
        Message::Chunk(Chunk {
            header: ChunkHeader {
                seq: 4,
                target: 1,
                offset: 0,
                len: 1 << 20,
                codec: Codec::Zero,
                hash,
                crc64: 0,
            },
            data: Bytes::new(),
            patch: None,
        }),
        // A patch carrying parts 0 and 2 (of 16 KiB; the last is short).
        Message::Chunk(Chunk {
            header: ChunkHeader {
                seq: 5,
                target: 0,
                offset: 2 << 20,
                len: (32 << 10) + 100,
                codec: Codec::None,
                hash,
                crc64: 1,
            },
            data: Bytes::from(vec![9u8; (16 << 10) + 100]),
            patch: Some(PatchMap {
                part_size: 16 << 10,
                present: vec![true, false, true],
            }),
        }),
        Message::HashQuery(HashQuery {
            first_seq: 10,
            chunks: vec![
                ChunkRef {
                    target: 0,
                    offset: 0,
                    len: 1 << 20,
                    hash
                };
                3
            ],
        }),
        Message::HashAnswer(HashAnswer {
            first_seq: 10,
            have: vec![true, false, true, true, false, false, false, false, true],
            parts: None,
        }),
        Message::HashAnswer(HashAnswer {
            first_seq: 11,
            have: vec![true, false, false],
            parts: Some(PartDigests {
                spec: PartSpec {
                    size: 16 << 10,
                    seed: 77,
                },
                lacking: vec![vec![1, 2, 3], vec![]],
            }),
        }),
        Message::Checkpoint { seq: 100 },
        Message::Ack {
            seq: 100,
            bytes_durable: 1 << 30,
        },
        Message::Finish {
            chunks: 5,
            bytes: 5 << 20,
        },
        Message::Finished {
            chunks: 5,
            bytes: 5 << 20,
        },
        Message::Error(ErrorMsg {
            code: ErrorCode::OutOfExtent,
            message: "chunk outside plan".into(),
        }),
        Message::Error(ErrorMsg {
            code: ErrorCode::Other(999),
            message: String::new(),
        }),
        Message::Control(Control {
            rate_mbit: Some(250),
            paused: false,
        }),
        Message::Control(Control {
            rate_mbit: None,
            paused: true,
        }),
        Message::Probe(Bytes::from_static(&[0x5a; 100])),
        Message::Join { session: 77 },
        Message::TargetPlan("{\"disks\":[]}".into()),
    ]
}

#[tokio::test]
async fn frame_reader_survives_cancellation() {
    // Frames trickle in a few bytes at a time; a select that keeps
    // cancelling `next` must still see every message whole.
    let msgs = samples();
    let mut wire = Vec::new();
    for m in &msgs {
        wire.extend_from_slice(&encode(m, MAX_FRAME).unwrap());
    }
    let (mut tx, rx) = tokio::io::duplex(7);
    let writer = tokio::spawn(async move {
        for piece in wire.chunks(5) {
            tx.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
    });
    let mut reader = FrameReader::new(rx, MAX_FRAME);
    let mut got = Vec::new();
    loop {
        tokio::select! {
            m = reader.next() => match m.unwrap() {
                Some(m) => got.push(m),
                None => break,
            },
            _ = tokio::task::yield_now() => {}
        }
    }
    writer.await.unwrap();
    assert_eq!(got, msgs);
}

#[test]
fn chunk_heads_match_encode() {
    for m in samples() {
        let Message::Chunk(c) = &m else { continue };
        if c.patch.is_some() {
            continue;
        }
        let f = encode(&m, MAX_FRAME).unwrap();
        let head = chunk_head(&c.header, c.data.len(), MAX_FRAME).unwrap();
        assert_eq!(&f[..CHUNK_HEAD], &head[..]);
        assert_eq!(&f[CHUNK_HEAD..], &c.data[..]);
    }
    let h = ChunkHeader {
        seq: 0,
        target: 0,
        offset: 0,
        len: 1,
        codec: crate::proto::message::Codec::None,
        hash: [0; HASH_LEN],
        crc64: 0,
    };
    assert!(matches!(
        chunk_head(&h, 1000, 512),
        Err(FrameError::TooLarge { .. })
    ));
}

#[test]
fn every_message_round_trips() {
    for m in samples() {
        let f = encode(&m, MAX_FRAME).unwrap();
        let (back, used) = decode(&f, MAX_FRAME).unwrap().unwrap();
        assert_eq!(back, m);
        assert_eq!(used, f.len());
    }
}

#[test]
fn truncated_frames_wait_or_fail() {
    for m in samples() {
        let f = encode(&m, MAX_FRAME).unwrap();
        for cut in 0..f.len() {
            // A short buffer is "not yet"; a short payload inside a
            // complete frame is malformed.
            assert!(decode(&f.slice(..cut), MAX_FRAME).unwrap().is_none());
        }
        let mut bad = f.to_vec();
        let len = u32::from_le_bytes(bad[..4].try_into().unwrap());
        if len > 1 {
            bad[..4].copy_from_slice(&(len - 1).to_le_bytes());
            bad.pop();
            let r = decode(&Bytes::from(bad), MAX_FRAME);
            // Compressed chunk data and probe filler may legitimately
            // be one byte shorter.
            let open_ended = matches!(&m, Message::Chunk(c) if c.header.codec == Codec::Zstd)
                || matches!(&m, Message::Probe(_));
            if !open_ended {
                assert!(r.is_err(), "{m:?}");
            }
        }
    }
}

#[test]
fn oversized_and_empty_frames_are_refused() {
    let big = Message::Chunk(Chunk {
        header: ChunkHeader {
            seq: 0,
            target: 0,
            offset: 0,
            len: 1000,
            codec: Codec::None,
            hash: [0; 32],
            crc64: 0,
        },
        data: Bytes::from(vec![0u8; 1000]),
        patch: None,
    });
    assert!(matches!(
        encode(&big, 512),
        Err(FrameError::TooLarge { .. })
    ));
    let mut f = (u32::MAX).to_le_bytes().to_vec();
    f.push(1);
    assert!(matches!(
        decode(&Bytes::from(f), MAX_FRAME),
        Err(FrameError::TooLarge { .. })
    ));
    assert!(matches!(
        decode(&Bytes::from_static(&[0, 0, 0, 0]), MAX_FRAME),
        Err(FrameError::Empty)
    ));
    let unknown = Bytes::from_static(&[1, 0, 0, 0, 200]);
    assert!(matches!(
        decode(&unknown, MAX_FRAME),
        Err(FrameError::Malformed(_))
    ));
    let zero_kind = Bytes::from_static(&[1, 0, 0, 0, 0]);
    assert!(decode(&zero_kind, MAX_FRAME).is_err());
    // HashAnswer bitmaps are canonical: padding bits must be clear.
    let f = Bytes::from_static(&[
        14,
        0,
        0,
        0,
        8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        3,
        0,
        0,
        0,
        0b1000_0101,
    ]);
    assert!(matches!(
        decode(&f, MAX_FRAME),
        Err(FrameError::Malformed(_))
    ));
    let ok = Bytes::from_static(&[14, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0b101]);
    assert!(decode(&ok, MAX_FRAME).unwrap().is_some());
    // Raw chunk data must be exactly the declared length.
    let mut w = Writer::default();
    Message::Chunk(Chunk {
        header: ChunkHeader {
            seq: 0,
            target: 0,
            offset: 0,
            len: 8,
            codec: Codec::None,
            hash: [0; 32],
            crc64: 0,
        },
        data: Bytes::from_static(b"8 bytes!"),
        patch: None,
    })
    .encode_payload(&mut w);
    let mut p = w.0.to_vec();
    p.pop();
    let mut f = (p.len() as u32).to_le_bytes().to_vec();
    f.extend(p);
    assert!(matches!(
        decode(&Bytes::from(f), MAX_FRAME),
        Err(FrameError::Malformed(_))
    ));
}

#[tokio::test]
async fn async_read_write() {
    let (mut a, mut b) = tokio::io::duplex(1 << 16);
    for m in samples() {
        write_message(&mut a, &m, MAX_FRAME).await.unwrap();
    }
    drop(a);
    for m in samples() {
        assert_eq!(read_message(&mut b, MAX_FRAME).await.unwrap(), Some(m));
    }
    assert_eq!(read_message(&mut b, MAX_FRAME).await.unwrap(), None);
}

#[tokio::test]
async fn async_refuses_oversized_before_reading_it() {
    let (mut a, mut b) = tokio::io::duplex(64);
    a.write_all(&(MAX_FRAME as u32 + 1).to_le_bytes())
        .await
        .unwrap();
    let e = read_message(&mut b, MAX_FRAME).await.unwrap_err();
    assert!(matches!(e, FrameError::TooLarge { .. }));
    let (mut a, mut b) = tokio::io::duplex(64);
    a.write_all(&[10, 0, 0, 0, 9]).await.unwrap();
    drop(a);
    assert!(matches!(
        read_message(&mut b, MAX_FRAME).await.unwrap_err(),
        FrameError::Truncated
    ));
}

fn arb_message() -> impl Strategy<Value = Message> {
    let hash = proptest::array::uniform32(any::<u8>());
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            proptest::array::uniform16(any::<u8>()),
            hash,
            ".{0,40}",
            ".{0,40}"
        )
            .prop_map(|(a, b, nonce, proof, source, task)| Message::Hello(Hello {
                min_version: a,
                max_version: b,
                nonce,
                proof,
                source,
                task
            })),
        (
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            1u8..=3,
            hash,
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(seq, target, offset, len, c, hash, crc64, mut data)| {
                let codec = [Codec::None, Codec::Zstd, Codec::Zero][c as usize - 1];
                let len = match codec {
                    Codec::None => data.len() as u32,
                    Codec::Zero => {
                        data.clear();
                        len
                    }
                    Codec::Zstd => {
                        data.push(1);
                        len
                    }
                };
                Message::Chunk(Chunk {
                    header: ChunkHeader {
                        seq,
                        target,
                        offset,
                        len,
                        codec,
                        hash,
                        crc64,
                    },
                    data: Bytes::from(data),
                    patch: None,
                })
            }),
        (
            any::<u64>(),
            proptest::collection::vec(any::<bool>(), 0..100)
        )
            .prop_map(|(first_seq, have)| Message::HashAnswer(HashAnswer {
                first_seq,
                have,
                parts: None
            })),
        (1u16.., ".{0,100}").prop_map(|(c, message)| Message::Error(ErrorMsg {
            code: ErrorCode::from_u16(c).unwrap(),
            message
        })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(seq, bytes_durable)| Message::Ack { seq, bytes_durable }),
        (proptest::option::of(any::<u32>()), any::<bool>())
            .prop_map(|(rate_mbit, paused)| Message::Control(Control { rate_mbit, paused })),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(|d| Message::Probe(Bytes::from(d))),
        any::<u64>().prop_map(|session| Message::Join { session }),
        ".{0,200}".prop_map(Message::TargetPlan),
        proptest::collection::vec(
            (
                ".{0,20}",
                any::<u32>(),
                any::<u64>(),
                proptest::collection::vec((any::<u64>(), any::<u64>(), any::<u64>()), 0..5)
            ),
            0..4
        )
        .prop_map(|vols| Message::Layout(Layout {
            pass: Pass::Incremental,
            chunk_size: 1 << 20,
            hash: HashAlgo::Xxh3_128,
            volumes: vols
                .into_iter()
                .map(|(name, target, size, ex)| VolumePlan {
                    name,
                    target,
                    size,
                    extents: ex
                        .into_iter()
                        .map(|(s, l, t)| Extent {
                            source_offset: s,
                            len: l,
                            target_offset: t
                        })
                        .collect(),
                })
                .collect(),
        })),
    ]
}

proptest! {
    #[test]
    fn arbitrary_messages_round_trip(m in arb_message()) {
        let f = encode(&m, MAX_FRAME).unwrap();
        let (back, used) = decode(&f, MAX_FRAME).unwrap().unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(used, f.len());
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&Bytes::from(b), MAX_FRAME);
    }
}

#[test]
fn patches_and_part_digests_are_checked() {
    let header = ChunkHeader {
        seq: 1,
        target: 0,
        offset: 0,
        len: 40 << 10,
        codec: Codec::None,
        hash: [3; 32],
        crc64: 0,
    };
    let patch = |h: ChunkHeader, part_size: u32, present: Vec<bool>, data: Vec<u8>| {
        encode(
            &Message::Chunk(Chunk {
                header: h,
                data: Bytes::from(data),
                patch: Some(PatchMap { part_size, present }),
            }),
            MAX_FRAME,
        )
        .unwrap()
    };
    let refused = |f: &Bytes, what: &str| {
        let e = decode(f, MAX_FRAME).expect_err(what).to_string();
        assert!(e.contains(what), "{e}");
    };
    // Parts 1 and 2 of three: 16 KiB and the last 8 KiB.
    let good = patch(header, 16 << 10, vec![false, true, true], vec![1; 24 << 10]);
    let (m, _) = decode(&good, MAX_FRAME).unwrap().unwrap();
    let Message::Chunk(c) = m else { panic!() };
    assert_eq!(c.patch.as_ref().unwrap().carried(c.header.len), 24 << 10);
    assert_eq!(
        c.patch.unwrap().ranges(40 << 10).collect::<Vec<_>>(),
        vec![(16 << 10, 32 << 10), (32 << 10, 40 << 10)]
    );
    // Raw parts must be exactly the bytes the map carries.
    refused(
        &patch(header, 16 << 10, vec![false, true, true], vec![1; 16 << 10]),
        "chunk data",
    );
    // Parts too small, too many, or a zero codec.
    refused(
        &patch(header, 100, vec![true; 410], vec![1; 40 << 10]),
        "patch part size",
    );
    let zero = ChunkHeader {
        codec: Codec::Zero,
        ..header
    };
    refused(
        &patch(zero, 16 << 10, vec![false; 3], vec![]),
        "patch codec",
    );
    // The part bitmap is canonical: padding bits clear.
    let mut bad = good.to_vec();
    bad[CHUNK_HEAD + 4] |= 0x80;
    refused(&Bytes::from(bad), "patch parts");
    // Part digests: one entry per chunk answered lacking.
    let answer = |lacking: Vec<Vec<u64>>, part_size: u32| {
        encode(
            &Message::HashAnswer(HashAnswer {
                first_seq: 0,
                have: vec![false, true, false],
                parts: Some(PartDigests {
                    spec: PartSpec {
                        size: part_size,
                        seed: 1,
                    },
                    lacking,
                }),
            }),
            MAX_FRAME,
        )
        .unwrap()
    };
    assert!(decode(&answer(vec![vec![1], vec![]], 16 << 10), MAX_FRAME).is_ok());
    refused(&answer(vec![vec![1]], 16 << 10), "part digests");
    refused(&answer(vec![vec![], vec![]], 8), "part size");
}
