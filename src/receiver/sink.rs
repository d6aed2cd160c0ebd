//! Receiver targets: block devices or image files, written only inside the
//! extents a layout planned, and checked for exclusive use before anything is
//! written.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{FallocateFlags, fallocate};

use crate::disk::aligned::{AlignedBuf, DIRECT_ALIGN, is_aligned};
use crate::disk::ioctl;
use crate::disk::sysfs::{self, Roots};
use crate::layout::ranges::RangeSet;

/// One target disk or image file.
#[derive(Debug)]
pub struct Target {
    pub path: PathBuf,
    file: File,
    /// The same file opened with O_DIRECT, where the filesystem allows it:
    /// aligned chunks bypass the page cache (far less CPU than buffered
    /// writes), and aligned reads (the read-back at the end, hash answers)
    /// come from the device.
    direct: Option<File>,
    is_block: bool,
}

impl Target {
    /// Open (an image file is created when missing) for writing.
    pub fn open(path: &Path) -> io::Result<Target> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(!path.exists())
            .truncate(false)
            .open(path)?;
        let is_block = file.metadata()?.file_type().is_block_device();
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc_o_direct())
            .open(path)
            .ok();
        Ok(Target {
            path: path.to_path_buf(),
            file,
            direct,
            is_block,
        })
    }

    pub fn is_block_device(&self) -> bool {
        self.is_block
    }

    pub fn size(&self) -> io::Result<u64> {
        if self.is_block {
            ioctl::size_bytes(&self.file)
        } else {
            Ok(self.file.metadata()?.len())
        }
    }

    /// Make room for `len` bytes: an image file grows (sparse); a device must
    /// already be large enough (`Err` with its size otherwise).
    pub fn ensure_size(&self, len: u64) -> Result<(), u64> {
        let have = self.size().map_err(|_| 0u64)?;
        if have >= len {
            return Ok(());
        }
        if self.is_block {
            return Err(have);
        }
        self.file.set_len(len).map_err(|_| have)
    }

    /// Allocate an image file's blocks for `ranges` before they are written
    /// (they read as zeros until then; the file's size stays). O_DIRECT
    /// writes into allocated blocks run side by side, where each write into
    /// a hole holds the file's lock until its I/O is done, one at a time;
    /// and a filesystem without room for the data says so before anything
    /// is written rather than halfway through. A device, or a filesystem
    /// that cannot preallocate, is left as it is. An error comes with the
    /// byte offset it met.
    pub fn reserve(&self, ranges: &RangeSet) -> Result<(), (u64, io::Error)> {
        if self.is_block {
            return Ok(());
        }
        for (start, end) in ranges.iter() {
            let len = (end - start) as i64;
            match fallocate(
                self.file.as_fd(),
                FallocateFlags::FALLOC_FL_KEEP_SIZE,
                start as i64,
                len,
            ) {
                Ok(()) => {}
                Err(nix::errno::Errno::EOPNOTSUPP) => return Ok(()),
                Err(e) => return Err((start, io::Error::from(e))),
            }
        }
        Ok(())
    }

    /// Why the target may not be written: mounted, swap, held (an active PV,
    /// a dm mapping), or an image file attached to a loop device.
    pub fn in_use(&self, roots: &Roots) -> Vec<String> {
        if self.is_block {
            sysfs::kernel_name(&self.path).map_or_else(Vec::new, |n| sysfs::in_use(roots, &n))
        } else {
            sysfs::loops_backed_by(roots, &self.path)
                .into_iter()
                .map(|l| format!("attached to /dev/{l}"))
                .collect()
        }
    }

    /// Write `data` at `offset`: with O_DIRECT when the range is aligned
    /// (straight from `data` when it is itself aligned, else from an aligned
    /// copy), buffered otherwise.
    pub fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        let aligned =
            offset.is_multiple_of(DIRECT_ALIGN as u64) && data.len().is_multiple_of(DIRECT_ALIGN);
        if let (Some(d), true, false) = (&self.direct, aligned, data.is_empty()) {
            if is_aligned(data.as_ptr(), data.len(), offset) {
                return d.write_all_at(data, offset);
            }
            let mut buf = AlignedBuf::new(data.len());
            buf.as_mut().copy_from_slice(data);
            return d.write_all_at(buf.as_ref(), offset);
        }
        self.file.write_all_at(data, offset)
    }

    /// Make `[offset, offset+len)` read as zeros: BLKZEROOUT on a device, a
    /// punched hole (the file stays sparse) on an image file.
    pub fn zero(&self, offset: u64, len: u64) -> io::Result<()> {
        if self.is_block {
            return ioctl::zero_out(&self.file, offset, len);
        }
        let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
        match fallocate(self.file.as_fd(), flags, offset as i64, len as i64) {
            Ok(()) => Ok(()),
            // A filesystem without hole punching: write the zeros.
            Err(nix::errno::Errno::EOPNOTSUPP) => self.write_at(&vec![0u8; len as usize], offset),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Read `buf` at `offset`: with O_DIRECT (from the device, not the page
    /// cache) when buffer, offset and length are aligned, buffered otherwise.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if let (Some(d), true) = (&self.direct, is_aligned(buf.as_ptr(), buf.len(), offset)) {
            return d.read_exact_at(buf, offset);
        }
        self.file.read_exact_at(buf, offset)
    }

    /// Make everything written so far durable.
    pub fn sync(&self) -> io::Result<()> {
        if let Some(d) = &self.direct {
            d.sync_data()?;
        }
        self.file.sync_data()
    }
}

fn libc_o_direct() -> i32 {
    nix::fcntl::OFlag::O_DIRECT.bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_target_grows_writes_and_zeroes() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("target.img");
        let tg = Target::open(&p).unwrap();
        assert!(!tg.is_block_device());
        tg.ensure_size(1 << 20).unwrap();
        assert_eq!(tg.size().unwrap(), 1 << 20);
        tg.write_at(&[7u8; 8192], 4096).unwrap(); // aligned: O_DIRECT where possible
        tg.write_at(&[3u8; 100], 1 << 19).unwrap(); // unaligned: buffered
        tg.zero(4096, 4096).unwrap();
        let mut b = vec![1u8; 8192];
        tg.read_at(&mut b, 4096).unwrap();
        assert!(b[..4096].iter().all(|&x| x == 0));
        assert!(b[4096..].iter().all(|&x| x == 7));
        let mut c = vec![0u8; 100];
        tg.read_at(&mut c, 1 << 19).unwrap();
        assert_eq!(c, vec![3u8; 100]);
        tg.sync().unwrap();
        assert!(tg.in_use(&Roots::system()).is_empty());
    }

    #[test]
    fn reserving_allocates_the_ranges_only_and_changes_no_byte() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("target.img");
        let tg = Target::open(&p).unwrap();
        tg.ensure_size(64 << 20).unwrap();
        tg.write_at(&[9u8; 4096], 8 << 20).unwrap();
        let before = std::fs::metadata(&p).unwrap().blocks() * 512;
        let mut ranges = RangeSet::new();
        ranges.insert(1 << 20, 2 << 20);
        ranges.insert(8 << 20, 1 << 20);
        tg.reserve(&ranges).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.len(), 64 << 20, "the size stays");
        // 3 MiB reserved (4 KiB of it written before); the rest still a
        // hole. Filesystems allocate in their own block sizes: allow slack.
        let grown = m.blocks() * 512 - before;
        assert!(
            ((3 << 20) - 4096..(3 << 20) + (1 << 20)).contains(&grown),
            "{grown} bytes allocated"
        );
        let mut b = vec![1u8; 3 << 20];
        tg.read_at(&mut b, 1 << 20).unwrap();
        assert!(b.iter().all(|&x| x == 0), "reserved blocks read as zeros");
        let mut c = vec![0u8; 4096];
        tg.read_at(&mut c, 8 << 20).unwrap();
        assert_eq!(c, vec![9u8; 4096], "written data stays");
    }
}
