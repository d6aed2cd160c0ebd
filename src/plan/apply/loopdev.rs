//! Loop devices over a byte range of a target (an image file or a disk):
//! how the grow steps reach a partition or an LV without the kernel's
//! partition nodes or device-mapper. A loop device detaches itself when it
//! is dropped (autoclear, once its last user closes it).

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::disk::ioctl;

/// An attached loop device; detached when dropped.
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    /// Held open: the device detaches when the last opener closes it.
    _dev: File,
}

impl LoopDevice {
    /// A loop device over `size` bytes at `offset` of `backing`, with
    /// `sector`-byte logical sectors.
    pub fn attach(backing: &Path, offset: u64, size: u64, sector: u32) -> io::Result<LoopDevice> {
        let file = OpenOptions::new().read(true).write(true).open(backing)?;
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .map_err(|e| io::Error::new(e.kind(), format!("/dev/loop-control: {e}")))?;
        // Another process may take the free device between the two calls:
        // a few tries.
        let mut last = None;
        for _ in 0..8 {
            let n = ioctl::loop_get_free(&control)?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let dev = match open_node(&path) {
                Ok(d) => d,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match ioctl::loop_configure(&dev, &file, offset, size, sector) {
                Ok(()) => return Ok(LoopDevice { path, _dev: dev }),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = Some(e),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{}: LOOP_CONFIGURE: {e}", path.display()),
                    ));
                }
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no free loop device")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The node of a just-created loop device (devtmpfs makes it; a moment's
/// wait where a udev would).
fn open_node(path: &Path) -> io::Result<File> {
    let mut tries = 0;
    loop {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => return Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
}
