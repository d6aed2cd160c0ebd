//! A source disk: a block device or an image file, opened read-only.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::aligned::{AlignedBuf, DIRECT_ALIGN};
use super::{ReadAt, check_bounds, ioctl};

/// A disk opened `O_RDONLY`. There is no way to write through this type.
///
/// A block device is opened a second time with `O_DIRECT`: reads aligned to
/// the logical sector go around the page cache (a production server's cache
/// is not flushed by a migration, and what is read is what the disk holds);
/// anything else, and image files, are read buffered.
#[derive(Debug)]
pub struct SourceDisk {
    path: PathBuf,
    file: File,
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
        let direct = if is_block {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_DIRECT.bits())
                .open(path)
                .ok()
        } else {
            None
        };
        Ok(SourceDisk {
            path: path.to_path_buf(),
            file,
            direct,
            size,
            is_block,
            logical_sector,
            physical_sector,
        })
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
    /// Whether aligned reads bypass the page cache.
    pub fn direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Read through the O_DIRECT descriptor into a per-thread aligned buffer.
    fn read_direct(&self, f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
        thread_local! {
            static BOUNCE: std::cell::RefCell<Option<AlignedBuf>> =
                const { std::cell::RefCell::new(None) };
        }
        BOUNCE.with(|b| {
            let mut b = b.borrow_mut();
            if b.as_ref().is_none_or(|x| x.len() < buf.len()) {
                *b = Some(AlignedBuf::new(buf.len().next_multiple_of(DIRECT_ALIGN)));
            }
            let bounce = b.as_mut().expect("just made");
            let part = &mut bounce.as_mut()[..buf.len()];
            f.read_exact_at(part, offset)?;
            buf.copy_from_slice(part);
            Ok(())
        })
    }
}

impl ReadAt for SourceDisk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        let sector = (self.logical_sector as u64).max(512);
        match &self.direct {
            Some(f)
                if offset.is_multiple_of(sector)
                    && (buf.len() as u64).is_multiple_of(sector)
                    && !buf.is_empty() =>
            {
                self.read_direct(f, buf, offset)
            }
            _ => self.file.read_exact_at(buf, offset),
        }
    }
    fn size(&self) -> u64 {
        self.size
    }
}
