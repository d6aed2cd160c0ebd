//! On-disk layout: partition tables, LVM, filesystems and their used maps.
//!
//! Every parser here is a pure function over [`crate::disk::ReadAt`]: it never
//! writes, never trusts a length or offset it read, and reports damage as a
//! [`LayoutError`] naming the byte offset, never as a panic.

pub mod bytes;
pub mod crc;
pub mod fs;
pub mod gpt;
pub mod lvm;
pub mod mbr;
pub mod ranges;

use std::io;

use crate::disk::ReadAt;

/// Damage or a failed read, with the byte offset (relative to the volume parsed).
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("at byte {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    #[error("cannot read {len} bytes at byte {offset}: {source}")]
    Read {
        offset: u64,
        len: usize,
        #[source]
        source: io::Error,
    },
}

impl LayoutError {
    /// Byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            LayoutError::Corrupt { offset, .. } | LayoutError::Read { offset, .. } => *offset,
        }
    }

    /// The same error with its offset moved by `base` (volume-relative to disk-absolute).
    pub fn rebase(self, base: u64) -> Self {
        match self {
            LayoutError::Corrupt { offset, what } => LayoutError::Corrupt {
                offset: offset.saturating_add(base),
                what,
            },
            LayoutError::Read {
                offset,
                len,
                source,
            } => LayoutError::Read {
                offset: offset.saturating_add(base),
                len,
                source,
            },
        }
    }
}

pub type Result<T> = std::result::Result<T, LayoutError>;

/// A [`LayoutError::Corrupt`] at `offset`.
pub fn corrupt(offset: u64, what: impl Into<String>) -> LayoutError {
    LayoutError::Corrupt {
        offset,
        what: what.into(),
    }
}

/// Read `len` bytes at `offset` into a new buffer.
pub fn read_vec(dev: &dyn ReadAt, offset: u64, len: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    dev.read_exact_at(&mut buf, offset)
        .map_err(|source| LayoutError::Read {
            offset,
            len,
            source,
        })?;
    Ok(buf)
}

/// Read `len` bytes at `offset`, or `None` when the volume is too small to hold them.
/// Used by probes, where a short volume simply is not that filesystem.
pub fn read_opt(dev: &dyn ReadAt, offset: u64, len: usize) -> Result<Option<Vec<u8>>> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= dev.size() => read_vec(dev, offset, len).map(Some),
        _ => Ok(None),
    }
}
