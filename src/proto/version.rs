//! Protocol versions: a contract between a source and a receiver that may run
//! different ferry builds (an old boot image against a newer receiver).
//!
//! One line per version saying what changed. Both sides send the range they
//! speak; the receiver picks the highest common version or answers
//! `VersionMismatch` with its own range and closes.

/// Versions of the data protocol on port 8703.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u16)]
pub enum Version {
    /// 1: Hello/Welcome with pairing proof, Layout with extents, Chunk (none,
    /// zstd, zero; BLAKE3 or xxh3-128; CRC-64), HashQuery/HashAnswer,
    /// Checkpoint/Ack, Finish/Finished, Error with stable codes.
    V1 = 1,
    /// 2: patches. A HashAnswer may carry digests of 4 KiB parts of what
    /// the target holds where each lacking chunk goes; the source then
    /// sends a chunk as a Patch (kind 18) holding only the parts that
    /// differ. A receiver sends part digests only in sessions at 2.
    V2 = 2,
}

/// Oldest version this build speaks.
pub const MIN: u16 = Version::V1 as u16;
/// Newest version this build speaks.
pub const MAX: u16 = Version::V2 as u16;

/// The highest version both ranges share, if any. Version 0 is never valid.
pub fn negotiate(peer_min: u16, peer_max: u16) -> Option<u16> {
    let hi = peer_max.min(MAX);
    let lo = peer_min.max(MIN).max(1);
    (lo <= hi).then_some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(1, 1), Some(1));
        assert_eq!(negotiate(1, 9), Some(MAX));
        assert_eq!(negotiate(MAX + 1, MAX + 5), None);
        assert_eq!(negotiate(0, 0), None);
        assert_eq!(negotiate(3, 2), None);
    }
}
