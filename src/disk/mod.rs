//! Disks: block devices and image files, opened read-only, and views into them.
//!
//! Everything that parses on-disk bytes reads through [`ReadAt`], so parsers run the
//! same way on a raw device, an image file, an in-memory buffer (tests, fuzzers), a
//! partition ([`Slice`]) or an LVM logical volume mapped through its segments.

pub mod aligned;
pub(crate) mod ioctl;
pub mod source;
pub mod sysfs;

use std::io;

pub use source::SourceDisk;

/// Positional, read-only access to a disk-like byte range.
///
/// There is deliberately no write method: the source side of ferry can not write.
pub trait ReadAt {
    /// Fill `buf` from `offset`; a short read is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Size in bytes.
    fn size(&self) -> u64;
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

impl<T: ReadAt + ?Sized> ReadAt for std::sync::Arc<T> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        (**self).size()
    }
}

/// A shareable, thread-safe reader: what the transfer pipeline holds.
pub type SharedReader = std::sync::Arc<dyn ReadAt + Send + Sync>;

/// Check that `len` bytes at `offset` lie inside a range of `size` bytes.
pub(crate) fn check_bounds(offset: u64, len: usize, size: u64) -> io::Result<()> {
    match offset.checked_add(len as u64) {
        Some(end) if end <= size => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read of {len} bytes at byte {offset} runs past the end ({size} bytes)"),
        )),
    }
}

/// An in-memory disk (tests, fuzzers).
#[derive(Debug, Clone, Default)]
pub struct MemDisk(pub Vec<u8>);

impl ReadAt for MemDisk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size())?;
        let start = offset as usize;
        buf.copy_from_slice(&self.0[start..start + buf.len()]);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

impl ReadAt for [u8] {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len() as u64)?;
        let start = offset as usize;
        buf.copy_from_slice(&self[start..start + buf.len()]);
        Ok(())
    }
    fn size(&self) -> u64 {
        self.len() as u64
    }
}

/// A window `[start, start + len)` of another disk: a partition. `R` is a
/// reference (scanning) or an `Arc` (a transfer's worker threads).
pub struct Slice<R> {
    inner: R,
    start: u64,
    len: u64,
}

impl<R: ReadAt> Slice<R> {
    /// A view of `len` bytes at `start`; fails if the window leaves the disk.
    pub fn new(inner: R, start: u64, len: u64) -> io::Result<Self> {
        match start.checked_add(len) {
            Some(end) if end <= inner.size() => Ok(Slice { inner, start, len }),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "range at byte {start} of {len} bytes runs past the end of the disk ({} bytes)",
                    inner.size()
                ),
            )),
        }
    }
}

impl<R: ReadAt> ReadAt for Slice<R> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.len)?;
        self.inner.read_exact_at(buf, self.start + offset)
    }
    fn size(&self) -> u64 {
        self.len
    }
}

/// `Read + Seek` over a [`ReadAt`], for crates (gptman, mbrman) that want a stream.
pub struct Cursor<'a> {
    inner: &'a dyn ReadAt,
    pos: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(inner: &'a dyn ReadAt) -> Self {
        Cursor { inner, pos: 0 }
    }
}

impl io::Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.inner.size().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        self.inner.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for Cursor<'_> {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        let new = match pos {
            io::SeekFrom::Start(p) => Some(p),
            io::SeekFrom::End(d) => self.inner.size().checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_bounds() {
        let d = MemDisk((0u8..100).collect());
        let s = Slice::new(&d, 10, 20).unwrap();
        let mut b = [0u8; 5];
        s.read_exact_at(&mut b, 15).unwrap();
        assert_eq!(b, [25, 26, 27, 28, 29]);
        assert!(s.read_exact_at(&mut b, 16).is_err());
        assert!(Slice::new(&d, 90, 11).is_err());
        assert!(Slice::new(&d, u64::MAX, 2).is_err());
    }

    #[test]
    fn cursor_reads_to_end() {
        use std::io::{Read, Seek, SeekFrom};
        let d = MemDisk(vec![7; 10]);
        let mut c = Cursor::new(&d);
        c.seek(SeekFrom::End(-3)).unwrap();
        let mut v = Vec::new();
        c.read_to_end(&mut v).unwrap();
        assert_eq!(v, vec![7; 3]);
        assert!(c.seek(SeekFrom::Current(-100)).is_err());
    }
}
