//! Wire messages of the data protocol. Each frame's payload starts with a kind
//! byte; every wire enum has 0 invalid. See docs/protocol.md.

use bytes::Bytes;

use super::wire::{Reader, WireError, Writer};

mod parts;
pub use parts::{MAX_PARTS, MIN_PART, PART_SIZE, PartDigests, PartSpec, PatchMap};
use parts::{read_part_digests, read_patch_map};

/// Hash length on the wire: BLAKE3 fills 32 bytes; xxh3-128 fills 16, rest zero.
pub const HASH_LEN: usize = 32;
/// Most volumes or extents in one Layout, chunks in one HashQuery.
pub const MAX_ITEMS: usize = 1 << 20;

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $n:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $v = $n),+ }
        impl $name {
            fn read(r: &mut Reader) -> Result<Self, WireError> {
                let at = r.pos();
                match r.u8()? {
                    $($n => Ok($name::$v),)+
                    v => Err(r.invalid_at(stringify!($name), at, format!("unknown value {v}"))),
                }
            }
        }
    };
}

wire_enum!(
    /// How a chunk's bytes travel.
    Codec { None = 1, Zstd = 2, Zero = 3 }
);
wire_enum!(
    /// Chunk hash algorithm.
    HashAlgo { Blake3 = 1, Xxh3_128 = 2 }
);
wire_enum!(
    /// Which kind of sweep over the plan.
    Pass { Full = 1, Resume = 2, Incremental = 3, Verify = 4 }
);

/// Stable error codes: they cross the wire and appear in logs and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadVersion,
    BadPairingCode,
    MalformedFrame,
    FrameTooLarge,
    OutOfExtent,
    HashMismatch,
    TargetTooSmall,
    TargetInUse,
    RateLimited,
    UnknownTask,
    DecompressBound,
    Internal,
    /// A post-step (partition table, filesystem or LVM growth) failed.
    PostStep,
    /// A code this build does not know (a newer peer); kept as sent.
    Other(u16),
}

impl ErrorCode {
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadVersion => 1,
            ErrorCode::BadPairingCode => 2,
            ErrorCode::MalformedFrame => 3,
            ErrorCode::FrameTooLarge => 4,
            ErrorCode::OutOfExtent => 5,
            ErrorCode::HashMismatch => 6,
            ErrorCode::TargetTooSmall => 7,
            ErrorCode::TargetInUse => 8,
            ErrorCode::RateLimited => 9,
            ErrorCode::UnknownTask => 10,
            ErrorCode::DecompressBound => 11,
            ErrorCode::Internal => 12,
            ErrorCode::PostStep => 13,
            ErrorCode::Other(v) => v,
        }
    }
    pub fn from_u16(v: u16) -> Option<Self> {
        Some(match v {
            0 => return None,
            1 => ErrorCode::BadVersion,
            2 => ErrorCode::BadPairingCode,
            3 => ErrorCode::MalformedFrame,
            4 => ErrorCode::FrameTooLarge,
            5 => ErrorCode::OutOfExtent,
            6 => ErrorCode::HashMismatch,
            7 => ErrorCode::TargetTooSmall,
            8 => ErrorCode::TargetInUse,
            9 => ErrorCode::RateLimited,
            10 => ErrorCode::UnknownTask,
            11 => ErrorCode::DecompressBound,
            12 => ErrorCode::Internal,
            13 => ErrorCode::PostStep,
            v => ErrorCode::Other(v),
        })
    }
}

/// Source -> receiver: first message of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub min_version: u16,
    pub max_version: u16,
    /// Random per connection; part of the pairing proof.
    pub nonce: [u8; 16],
    /// HMAC-SHA256 proving the pairing code (see `proto::pairing`).
    pub proof: [u8; 32],
    /// The source's name for itself (hostname, machine id).
    pub source: String,
    /// The task to start or resume.
    pub task: String,
}

/// Receiver -> source: the session is accepted at `version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    pub version: u16,
    pub receiver: String,
    pub session: u64,
}

/// Receiver -> source: no common version; the connection closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionMismatch {
    pub min_version: u16,
    pub max_version: u16,
}

/// Bytes `[source_offset, +len)` of a volume go to `target_offset` on its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub source_offset: u64,
    pub len: u64,
    pub target_offset: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumePlan {
    /// The inventory's volume name.
    pub name: String,
    /// Index of the receiver's target.
    pub target: u32,
    pub size: u64,
    pub extents: Vec<Extent>,
}

/// Source -> receiver: what this pass will send and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub pass: Pass,
    pub chunk_size: u32,
    pub hash: HashAlgo,
    pub volumes: Vec<VolumePlan>,
}

/// Receiver -> source: the layout fits the targets; chunks with `seq` below
/// `resume_seq` are already durable on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutAccepted {
    pub resume_seq: u64,
    /// The receiver has no record of what it holds (no journal for this
    /// plan): the source should offer chunk hashes and send only what the
    /// target does not hold, as in an incremental pass.
    pub compare: bool,
}

/// The fixed part of a chunk; its data follows in the same frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub seq: u64,
    pub target: u32,
    pub offset: u64,
    /// Uncompressed length.
    pub len: u32,
    pub codec: Codec,
    pub hash: [u8; HASH_LEN],
    pub crc64: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub header: ChunkHeader,
    /// Compressed or raw bytes (empty for `Codec::Zero`), shared with the frame.
    /// For a patch, only the parts it carries, one after another.
    pub data: Bytes,
    /// Protocol 2: the chunk travels as a patch of what the target holds
    /// (message kind 18); `header` still describes the whole chunk.
    pub patch: Option<PatchMap>,
}

/// A chunk named by place and hash, without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    pub target: u32,
    pub offset: u64,
    pub len: u32,
    pub hash: [u8; HASH_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashQuery {
    pub first_seq: u64,
    pub chunks: Vec<ChunkRef>,
}

/// `have[i]`: the receiver already holds `chunks[i]` of the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashAnswer {
    pub first_seq: u64,
    pub have: Vec<bool>,
    /// Protocol 2, passes that send data: digests of the parts of what the
    /// target holds where each lacking chunk goes, so that the source can
    /// send only the parts that differ (a patch).
    pub parts: Option<PartDigests>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    pub code: ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    Welcome(Welcome),
    VersionMismatch(VersionMismatch),
    Layout(Layout),
    LayoutAccepted(LayoutAccepted),
    Chunk(Chunk),
    HashQuery(HashQuery),
    HashAnswer(HashAnswer),
    /// Source -> receiver: make everything up to `seq` durable and ack.
    Checkpoint {
        seq: u64,
    },
    /// Receiver -> source: every chunk below `seq` is durable.
    Ack {
        seq: u64,
        bytes_durable: u64,
    },
    /// Source -> receiver: the pass is complete.
    Finish {
        chunks: u64,
        bytes: u64,
    },
    /// Receiver -> source: all written and synced.
    Finished {
        chunks: u64,
        bytes: u64,
    },
    Error(ErrorMsg),
    /// Receiver -> source, at any time after LayoutAccepted: the operator
    /// changed the task through the control API.
    Control(Control),
    /// Source -> receiver, in a netcheck session instead of Layout: filler
    /// bytes the receiver counts and discards; Finish ends the run and
    /// Finished answers with what arrived.
    Probe(Bytes),
    /// Source -> receiver, instead of Layout on an extra stream: carry chunks
    /// of the running session `session` (answered with LayoutAccepted).
    Join {
        session: u64,
    },
    /// Source -> receiver, before Layout when the pass follows a plan: the
    /// target disks' tables and grow steps (JSON of
    /// [`crate::plan::target::TargetPlan`]), applied once the data is durable.
    TargetPlan(String),
}

/// What the receiver's operator asks of a running task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Control {
    /// Mbit/s to use instead of the source's own limit or schedule
    /// (`Some(0)`: no limit); `None` returns to the source's own.
    pub rate_mbit: Option<u32>,
    /// Stop sending data (after a checkpoint) until a Control with `false`.
    pub paused: bool,
}

impl Message {
    /// The kind byte (never 0).
    pub fn kind(&self) -> u8 {
        match self {
            Message::Hello(_) => 1,
            Message::Welcome(_) => 2,
            Message::VersionMismatch(_) => 3,
            Message::Layout(_) => 4,
            Message::LayoutAccepted(_) => 5,
            Message::Chunk(c) if c.patch.is_some() => 18,
            Message::Chunk(_) => 6,
            Message::HashQuery(_) => 7,
            Message::HashAnswer(_) => 8,
            Message::Checkpoint { .. } => 9,
            Message::Ack { .. } => 10,
            Message::Finish { .. } => 11,
            Message::Finished { .. } => 12,
            Message::Error(_) => 13,
            Message::Control(_) => 14,
            Message::Probe(_) => 15,
            Message::Join { .. } => 16,
            Message::TargetPlan(_) => 17,
        }
    }

    /// The payload (kind byte and body), without the length prefix.
    pub fn encode_payload(&self, w: &mut Writer) {
        w.u8(self.kind());
        match self {
            Message::Hello(h) => {
                w.u16(h.min_version)
                    .u16(h.max_version)
                    .bytes(&h.nonce)
                    .bytes(&h.proof);
                w.str(&h.source).str(&h.task);
            }
            Message::Welcome(m) => {
                w.u16(m.version).str(&m.receiver).u64(m.session);
            }
            Message::VersionMismatch(m) => {
                w.u16(m.min_version).u16(m.max_version);
            }
            Message::Layout(l) => {
                w.u8(l.pass as u8).u32(l.chunk_size).u8(l.hash as u8);
                w.u32(l.volumes.len() as u32);
                for v in &l.volumes {
                    w.str(&v.name)
                        .u32(v.target)
                        .u64(v.size)
                        .u32(v.extents.len() as u32);
                    for e in &v.extents {
                        w.u64(e.source_offset).u64(e.len).u64(e.target_offset);
                    }
                }
            }
            Message::LayoutAccepted(a) => {
                w.u64(a.resume_seq).bool(a.compare);
            }
            Message::Chunk(c) => {
                let h = &c.header;
                w.u64(h.seq)
                    .u32(h.target)
                    .u64(h.offset)
                    .u32(h.len)
                    .u8(h.codec as u8);
                w.bytes(&h.hash).u64(h.crc64);
                if let Some(p) = &c.patch {
                    w.u32(p.part_size).bytes(&bitmap(&p.present));
                }
                w.bytes(&c.data);
            }
            Message::HashQuery(q) => {
                w.u64(q.first_seq).u32(q.chunks.len() as u32);
                for c in &q.chunks {
                    w.u32(c.target).u64(c.offset).u32(c.len).bytes(&c.hash);
                }
            }
            Message::HashAnswer(a) => {
                w.u64(a.first_seq).u32(a.have.len() as u32);
                w.bytes(&bitmap(&a.have));
                if let Some(p) = &a.parts {
                    w.u32(p.spec.size)
                        .u64(p.spec.seed)
                        .u32(p.lacking.len() as u32);
                    for d in &p.lacking {
                        w.u32(d.len() as u32);
                        for x in d {
                            w.u64(*x);
                        }
                    }
                }
            }
            Message::Checkpoint { seq } => {
                w.u64(*seq);
            }
            Message::Ack { seq, bytes_durable } => {
                w.u64(*seq).u64(*bytes_durable);
            }
            Message::Finish { chunks, bytes } | Message::Finished { chunks, bytes } => {
                w.u64(*chunks).u64(*bytes);
            }
            Message::Error(e) => {
                w.u16(e.code.to_u16()).str(&e.message);
            }
            Message::Control(c) => {
                let flags = c.rate_mbit.is_some() as u8 | (c.paused as u8) << 1;
                w.u8(flags).u32(c.rate_mbit.unwrap_or(0));
            }
            Message::Probe(data) => {
                w.bytes(data);
            }
            Message::Join { session } => {
                w.u64(*session);
            }
            Message::TargetPlan(json) => {
                w.u32(json.len() as u32).bytes(json.as_bytes());
            }
        }
    }

    /// Decode a frame's payload; chunk data is sliced out of `payload` without copying.
    pub fn decode_payload(payload: &Bytes) -> Result<Message, WireError> {
        let mut r = Reader::new(payload);
        let kind = r.u8()?;
        let msg = match kind {
            1 => Message::Hello(Hello {
                min_version: r.u16()?,
                max_version: r.u16()?,
                nonce: r.array()?,
                proof: r.array()?,
                source: r.str()?,
                task: r.str()?,
            }),
            2 => Message::Welcome(Welcome {
                version: r.u16()?,
                receiver: r.str()?,
                session: r.u64()?,
            }),
            3 => Message::VersionMismatch(VersionMismatch {
                min_version: r.u16()?,
                max_version: r.u16()?,
            }),
            4 => {
                let pass = Pass::read(&mut r)?;
                let chunk_size = r.u32()?;
                let hash = HashAlgo::read(&mut r)?;
                let n = r.count("volumes", MAX_ITEMS)?;
                let mut volumes = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    let name = r.str()?;
                    let target = r.u32()?;
                    let size = r.u64()?;
                    let m = r.count("extents", MAX_ITEMS)?;
                    let mut extents = Vec::with_capacity(m.min(4096));
                    for _ in 0..m {
                        extents.push(Extent {
                            source_offset: r.u64()?,
                            len: r.u64()?,
                            target_offset: r.u64()?,
                        });
                    }
                    volumes.push(VolumePlan {
                        name,
                        target,
                        size,
                        extents,
                    });
                }
                Message::Layout(Layout {
                    pass,
                    chunk_size,
                    hash,
                    volumes,
                })
            }
            5 => Message::LayoutAccepted(LayoutAccepted {
                resume_seq: r.u64()?,
                compare: r.bool()?,
            }),
            6 | 18 => {
                let header = ChunkHeader {
                    seq: r.u64()?,
                    target: r.u32()?,
                    offset: r.u64()?,
                    len: r.u32()?,
                    codec: Codec::read(&mut r)?,
                    hash: r.array()?,
                    crc64: r.u64()?,
                };
                let patch = if kind == 18 {
                    Some(read_patch_map(&mut r, &header)?)
                } else {
                    None
                };
                let at = r.pos();
                let data = r.rest(payload);
                let raw = patch
                    .as_ref()
                    .map_or(header.len as usize, |p| p.carried(header.len));
                let ok = match header.codec {
                    Codec::None => data.len() == raw,
                    Codec::Zero => data.is_empty() && patch.is_none(),
                    Codec::Zstd => !data.is_empty(),
                };
                if !ok {
                    let why = format!(
                        "{} data bytes do not fit codec {:?} for {} bytes",
                        data.len(),
                        header.codec,
                        header.len
                    );
                    return Err(r.invalid_at("chunk data", at, why));
                }
                Message::Chunk(Chunk {
                    header,
                    data,
                    patch,
                })
            }
            7 => {
                let first_seq = r.u64()?;
                let n = r.count("chunks", MAX_ITEMS)?;
                let mut chunks = Vec::with_capacity(n.min(4096));
                for _ in 0..n {
                    chunks.push(ChunkRef {
                        target: r.u32()?,
                        offset: r.u64()?,
                        len: r.u32()?,
                        hash: r.array()?,
                    });
                }
                Message::HashQuery(HashQuery { first_seq, chunks })
            }
            8 => {
                let first_seq = r.u64()?;
                let n = r.count("answers", MAX_ITEMS)?;
                let have = read_bitmap(&mut r, n, "answer bitmap")?;
                // Protocol 2 may follow the bitmap with part digests.
                let parts = if r.pos() < payload.len() {
                    Some(read_part_digests(&mut r, &have)?)
                } else {
                    None
                };
                Message::HashAnswer(HashAnswer {
                    first_seq,
                    have,
                    parts,
                })
            }
            9 => Message::Checkpoint { seq: r.u64()? },
            10 => Message::Ack {
                seq: r.u64()?,
                bytes_durable: r.u64()?,
            },
            11 => Message::Finish {
                chunks: r.u64()?,
                bytes: r.u64()?,
            },
            12 => Message::Finished {
                chunks: r.u64()?,
                bytes: r.u64()?,
            },
            13 => {
                let at = r.pos();
                let code = r.u16()?;
                let code = ErrorCode::from_u16(code)
                    .ok_or_else(|| r.invalid_at("error code", at, "0 is not a code".into()))?;
                Message::Error(ErrorMsg {
                    code,
                    message: r.str()?,
                })
            }
            14 => {
                let at = r.pos();
                let flags = r.u8()?;
                let rate = r.u32()?;
                if flags & !3 != 0 || (flags & 1 == 0 && rate != 0) {
                    return Err(r.invalid_at("control flags", at, format!("{flags:#x}")));
                }
                Message::Control(Control {
                    rate_mbit: (flags & 1 != 0).then_some(rate),
                    paused: flags & 2 != 0,
                })
            }
            15 => Message::Probe(r.rest(payload)),
            16 => Message::Join { session: r.u64()? },
            17 => {
                let at = r.pos();
                let n = r.u32()? as usize;
                let b = r.take(n)?;
                let text = std::str::from_utf8(b)
                    .map_err(|_| r.invalid_at("target plan", at, "not UTF-8".into()))?;
                Message::TargetPlan(text.to_string())
            }
            k => return Err(r.invalid_at("message kind", 0, format!("unknown kind {k}"))),
        };
        r.finish()?;
        Ok(msg)
    }
}

/// Bits, least significant first, padded with zeros to whole bytes.
fn bitmap(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
        out[i / 8] |= 1 << (i % 8);
    }
    out
}

/// `n` bits written by [`bitmap`]; padding bits must be zero.
fn read_bitmap(r: &mut Reader, n: usize, what: &'static str) -> Result<Vec<bool>, WireError> {
    let at = r.pos();
    let bits = r.take(n.div_ceil(8))?;
    if !n.is_multiple_of(8) && bits[n / 8] >> (n % 8) != 0 {
        return Err(r.invalid_at(what, at, "padding bits set".into()));
    }
    Ok((0..n).map(|i| bits[i / 8] & (1 << (i % 8)) != 0).collect())
}
