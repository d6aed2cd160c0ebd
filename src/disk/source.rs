//! A source disk: a block device or an image file, opened read-only.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use super::{ReadAt, check_bounds, ioctl};

/// A disk opened `O_RDONLY`. There is no way to write through this type.
#[derive(Debug)]
pub struct SourceDisk {
    path: PathBuf,
    file: File,
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
}

impl ReadAt for SourceDisk {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        check_bounds(offset, buf.len(), self.size)?;
        self.file.read_exact_at(buf, offset)
    }
    fn size(&self) -> u64 {
        self.size
    }
}
