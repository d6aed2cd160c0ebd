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

nix::ioctl_none_bad!(blkrrpart, nix::request_code_none!(0x12, 95));

/// Ask the kernel to re-read a disk's partition table (BLKRRPART).
pub fn reread_partitions(f: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: the fd is open; BLKRRPART takes no argument.
    unsafe { blkrrpart(f.as_raw_fd()) }.map_err(io::Error::from)?;
    Ok(())
}

/// `struct loop_info64` of <linux/loop.h>.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

/// `struct loop_config` of <linux/loop.h> (LOOP_CONFIGURE, Linux 5.8).
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The loop device detaches itself when its last user closes it.
const LO_FLAGS_AUTOCLEAR: u32 = 4;

nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);
nix::ioctl_write_ptr_bad!(loop_configure_raw, 0x4C0A, LoopConfig);

/// A free loop device number (LOOP_CTL_GET_FREE on /dev/loop-control).
pub fn loop_get_free(control: &impl AsRawFd) -> io::Result<u32> {
    // SAFETY: the fd is open on /dev/loop-control; the ioctl takes no
    // argument and returns the device number.
    let n = unsafe { loop_ctl_get_free(control.as_raw_fd()) }.map_err(io::Error::from)?;
    u32::try_from(n).map_err(|_| io::Error::other(format!("LOOP_CTL_GET_FREE returned {n}")))
}

/// Bind `backing` to the loop device `dev` over `size` bytes at `offset`,
/// with `block_size`-byte logical sectors, detaching itself on last close
/// (LOOP_CONFIGURE).
pub fn loop_configure(
    dev: &impl AsRawFd,
    backing: &impl AsRawFd,
    offset: u64,
    size: u64,
    block_size: u32,
) -> io::Result<()> {
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?;
    let cfg = LoopConfig {
        fd,
        block_size,
        info: LoopInfo64 {
            lo_device: 0,
            lo_inode: 0,
            lo_rdevice: 0,
            lo_offset: offset,
            lo_sizelimit: size,
            lo_number: 0,
            lo_encrypt_type: 0,
            lo_encrypt_key_size: 0,
            lo_flags: LO_FLAGS_AUTOCLEAR,
            lo_file_name: [0; 64],
            lo_crypt_name: [0; 64],
            lo_encrypt_key: [0; 32],
            lo_init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: both fds are open; the kernel reads one `struct loop_config`
    // from the pointer, which points at a live value of that layout.
    unsafe { loop_configure_raw(dev.as_raw_fd(), &cfg) }.map_err(io::Error::from)?;
    Ok(())
}
