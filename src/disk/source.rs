//! A source disk: a block device or an image file, opened read-only.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::aligned::is_aligned;
use super::{ReadAt, check_bounds, ioctl};

/// A disk opened `O_RDONLY`. There is no way to write through this type.
#[derive(Debug)]
pub struct SourceDisk {
    path: PathBuf,
    file: File,
    /// The same disk opened `O_RDONLY | O_DIRECT` (see [`SourceDisk::with_direct`]).
    direct: Option<File>,
    size: u64,
    is_block: bool,
    logical_sector: u32,
    physical_sector: u32,
}

impl SourceDisk {
    /// Open `path` read-only; block devices are sized by ioctl, files by length.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let is_block = meta.file_type().is_block_device();
        let (size, logical_sector, physical_sector) = if is_block {
            let size = ioctl::size_bytes(&file)?;
            let lss = ioctl::logical_sector_size(&file)?;
            let pss = ioctl::physical_sector_size(&file).unwrap_or(lss);
            (size, lss, pss)
        } else if meta.is_file() {
            (meta.len(), 512, 512)
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a block device or a regular file",
            ));
        };
        Ok(SourceDisk {
            path: path.to_path_buf(),
            file,
            direct: None,
            size,
            is_block,
            logical_sector,
            physical_sector,
        })
    }

    /// Also open the disk with `O_DIRECT` (still read-only), where the
    /// filesystem or driver allows it: reads of aligned ranges into aligned
    /// buffers then bypass the page cache. A transfer reads each used block
    /// once, so caching it only costs CPU (a page-cache fill and a copy per
    /// byte) and evicts the running system's cache.
    pub fn with_direct(mut self) -> Self {
        self.direct = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
            .open(&self.path)
            .ok();
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn is_block_device(&self) -> bool {
        self.is_block
    }
    /// Logical sector size: from the kernel for devices, 512 for files.
    pub fn logical_sector_size(&self) -> u32 {
        self.logical_sector
    }
    pub fn physical_sector_size(&self) -> u32 {
        self.physical_sector
    }
    /// Whether aligned reads go around the page cache.
    pub fn direct(&self) -> bool {
        self.direct.is_some()
    }
}

impl ReadAt for SourceDisk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        if let Some(d) = &self.direct
            && is_aligned(buf.as_ptr(), buf.len(), offset)
        {
            match d.read_exact_at(buf, offset) {
                Ok(()) => return Ok(()),
                // A stricter alignment than ours (a large-block filesystem):
                // the buffered descriptor reads anything.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(e),
            }
        }
        self.file.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.size
    }
}
