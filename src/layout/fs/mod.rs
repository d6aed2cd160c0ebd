//! Filesystem (and container) detection, and used maps.
//!
//! [`detect`] tries each probe in a fixed order and returns the first match.
//! [`used_map`] returns the byte ranges a filesystem uses; formats ferry does not
//! parse (btrfs, LUKS, RAID members, unknown) are reported as fully used, which is
//! always correct, only slower.

pub mod ext;
pub mod ntfs;
pub mod simple;
pub mod vfat;
pub mod xfs;

use serde::Serialize;

use super::Result;
use super::ranges::RangeSet;
use crate::disk::ReadAt;

/// What a volume holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsKind {
    Ext2,
    Ext3,
    Ext4,
    Xfs,
    Btrfs,
    Swap,
    Vfat,
    Ntfs,
    Luks,
    LvmPv,
    RaidMember,
    Unknown,
}

impl FsKind {
    /// The name blkid uses for this type.
    pub fn name(self) -> &'static str {
        match self {
            FsKind::Ext2 => "ext2",
            FsKind::Ext3 => "ext3",
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Swap => "swap",
            FsKind::Vfat => "vfat",
            FsKind::Ntfs => "ntfs",
            FsKind::Luks => "crypto_LUKS",
            FsKind::LvmPv => "LVM2_member",
            FsKind::RaidMember => "linux_raid_member",
            FsKind::Unknown => "unknown",
        }
    }
}

/// Identity of a detected filesystem or container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FsInfo {
    pub kind: FsKind,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// Bytes the filesystem spans (may be less than the volume).
    pub size: Option<u64>,
    /// Allocation unit in bytes (block or cluster), where the format has one.
    pub block_size: Option<u32>,
}

impl FsInfo {
    pub fn unknown() -> Self {
        FsInfo::new(FsKind::Unknown)
    }

    pub fn new(kind: FsKind) -> Self {
        FsInfo {
            kind,
            label: None,
            uuid: None,
            size: None,
            block_size: None,
        }
    }
}

type Probe = fn(&dyn ReadAt) -> Result<Option<FsInfo>>;

/// Probes in order: containers whose magic sits at the start first, then
/// filesystems, then formats recognised by a superblock at the end.
const PROBES: &[Probe] = &[
    simple::probe_luks,
    simple::probe_lvm_pv,
    simple::probe_raid_start,
    xfs::probe,
    ext::probe,
    simple::probe_btrfs,
    simple::probe_swap,
    ntfs::probe,
    vfat::probe,
    simple::probe_raid_end,
];

/// Identify what `dev` holds; `Unknown` when nothing matches.
pub fn detect(dev: &dyn ReadAt) -> Result<FsInfo> {
    for probe in PROBES {
        if let Some(info) = probe(dev)? {
            return Ok(info);
        }
    }
    Ok(FsInfo::unknown())
}

/// How a used map was obtained, for the inventory and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsedMethod {
    /// Parsed from the filesystem's own allocation metadata.
    Allocation,
    /// Only a header is worth keeping (swap).
    Header,
    /// The format is not parsed: everything counts as used.
    All,
    /// Derived from the LVM logical volumes on a physical volume.
    Lvm,
}

/// A volume's used map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedMap {
    pub ranges: RangeSet,
    pub method: UsedMethod,
    /// Why a parsed format still counts as fully used (an xfs dirty log), for
    /// the operator: copying less needs a clean unmount first.
    pub note: Option<String>,
}

/// Byte ranges of `dev` that its filesystem uses.
///
/// LVM PVs are not handled here: their map depends on the volume group
/// (see [`crate::layout::lvm`]).
pub fn used_map(dev: &dyn ReadAt, info: &FsInfo) -> Result<UsedMap> {
    let size = dev.size();
    let mut note = None;
    let (mut map, method) = match info.kind {
        FsKind::Ext2 | FsKind::Ext3 | FsKind::Ext4 => (ext::used(dev)?, UsedMethod::Allocation),
        FsKind::Xfs | FsKind::Ntfs => {
            let checked = if info.kind == FsKind::Xfs {
                xfs::used_checked(dev)?
            } else {
                ntfs::used_checked(dev)?
            };
            match checked {
                (map, None) => (map, UsedMethod::Allocation),
                (map, Some(why)) => {
                    let hint = match info.kind {
                        FsKind::Xfs => " (after a clean mount and unmount ferry can copy less)",
                        _ => "",
                    };
                    note = Some(format!(
                        "{}: {why}; the whole volume counts as used{hint}",
                        info.kind.name()
                    ));
                    (map, UsedMethod::All)
                }
            }
        }
        FsKind::Vfat => (vfat::used(dev)?, UsedMethod::Allocation),
        FsKind::Swap => (simple::swap_used(dev)?, UsedMethod::Header),
        FsKind::Btrfs | FsKind::Luks | FsKind::RaidMember | FsKind::LvmPv | FsKind::Unknown => {
            (RangeSet::full(size), UsedMethod::All)
        }
    };
    map.clip(size);
    Ok(UsedMap {
        ranges: map,
        method,
        note,
    })
}
