//! Block-device ioctls. The only place with `unsafe`; only typed safe wrappers leave.

use std::io;
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_uint};

nix::ioctl_read!(blkgetsize64, 0x12, 114, u64);
nix::ioctl_read_bad!(blksszget, nix::request_code_none!(0x12, 104), c_int);
nix::ioctl_read_bad!(blkpbszget, nix::request_code_none!(0x12, 123), c_uint);
nix::ioctl_write_ptr_bad!(blkzeroout, nix::request_code_none!(0x12, 127), [u64; 2]);

/// Size of a block device in bytes (BLKGETSIZE64).
pub fn size_bytes(f: &impl AsRawFd) -> io::Result<u64> {
    let mut v: u64 = 0;
    // SAFETY: the fd is open for the lifetime of `f`; the kernel writes one u64 into `v`.
    unsafe { blkgetsize64(f.as_raw_fd(), &mut v) }.map_err(io::Error::from)?;
    Ok(v)
}

/// Logical sector size (BLKSSZGET).
pub fn logical_sector_size(f: &impl AsRawFd) -> io::Result<u32> {
    let mut v: c_int = 0;
    // SAFETY: the fd is open; BLKSSZGET writes one int into `v`.
    unsafe { blksszget(f.as_raw_fd(), &mut v) }.map_err(io::Error::from)?;
    u32::try_from(v).map_err(|_| io::Error::other(format!("BLKSSZGET returned {v}")))
}

/// Physical sector size (BLKPBSZGET).
pub fn physical_sector_size(f: &impl AsRawFd) -> io::Result<u32> {
    let mut v: c_uint = 0;
    // SAFETY: the fd is open; BLKPBSZGET writes one unsigned int into `v`.
    unsafe { blkpbszget(f.as_raw_fd(), &mut v) }.map_err(io::Error::from)?;
    Ok(v)
}

/// Zero `len` bytes at `offset` of a block device (BLKZEROOUT): the device
/// writes or unmaps them without data crossing the bus.
pub fn zero_out(f: &impl AsRawFd, offset: u64, len: u64) -> io::Result<()> {
    let range = [offset, len];
    // SAFETY: the fd is open; BLKZEROOUT reads two u64 from the pointer, which
    // points at a live array of two u64.
    unsafe { blkzeroout(f.as_raw_fd(), &range) }.map_err(io::Error::from)?;
    Ok(())
}
