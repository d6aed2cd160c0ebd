//! What the receiver makes of a target disk once a pass's data is durable:
//! the partition table to write (last), and the steps that grow what the
//! plan grew. The source computes it from the plan ([`super::layout`]) and
//! sends it as JSON in a TargetPlan message; [`super::apply`] carries it
//! out (on the receiver, and in tests on image files over loop devices).
//!
//! Every field is checked by [`TargetDisk::validate`] before anything is
//! written: the receiver trusts the authenticated source to describe its own
//! migration, not to describe a table that does not fit.

use serde::{Deserialize, Serialize};

/// Bytes of boot code at the start of sector 0 (in front of the disk
/// signature and the four MBR entries).
pub const BOOT_CODE_LEN: usize = 440;

/// The plan for every target disk of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetPlan {
    pub disks: Vec<TargetDisk>,
}

/// One target disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetDisk {
    /// The receiver's target index (the order of `ferry receive --target`).
    pub target: u32,
    /// The source disk it is made from (for messages and reports).
    pub source: String,
    /// The least size the target must have, in bytes. A larger target is
    /// fine: a GPT's backup header goes at its real end.
    pub min_size: u64,
    /// Logical sector size the table's LBAs count in (the source's).
    pub sector_size: u32,
    pub table: TargetTable,
    /// In order, after the table is written and re-read.
    pub steps: Vec<Step>,
}

/// The partition table to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetTable {
    /// No table: the disk is one volume (a whole-disk filesystem or PV).
    None,
    Gpt {
        /// Disk GUID, text form.
        disk_guid: String,
        /// Number of entries in the array (usually 128).
        entries: u32,
        /// The source's sector 0 boot code (hex, 440 bytes): GRUB's BIOS
        /// stage on a GPT disk lives there.
        boot_code: String,
        partitions: Vec<GptEntry>,
    },
    Mbr {
        /// The source's boot code (hex, 440 bytes).
        boot_code: String,
        /// Disk signature (the 4 bytes at offset 440).
        disk_signature: u32,
        partitions: Vec<MbrEntry>,
    },
}

/// A GPT partition on the target; everything but its place is the source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptEntry {
    /// Partition number (1-based entry index), kept from the source.
    pub number: u32,
    pub start_lba: u64,
    /// Inclusive.
    pub end_lba: u64,
    /// Type GUID, text form.
    pub type_guid: String,
    pub unique_guid: String,
    pub name: String,
    pub attributes: u64,
}

/// An MBR partition on the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MbrEntry {
    /// 1-4 for primary and extended, 5.. for logical, kept from the source.
    pub number: u32,
    pub kind: crate::layout::mbr::MbrKind,
    pub start_lba: u64,
    pub sectors: u64,
    pub type_byte: u8,
    pub bootable: bool,
    /// Logical partitions: the sector of the EBR describing it (in front of
    /// `start_lba`, inside the extended partition).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ebr_lba: Option<u64>,
}

/// Where a step works: a partition of the target disk, the whole disk (no
/// table), or a logical volume on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "on", rename_all = "snake_case", deny_unknown_fields)]
pub enum Place {
    Partition { number: u32 },
    Disk,
    Lv { vg: String, lv: String },
}

/// One post-step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// `e2fsck -fy` then `resize2fs` to fill the place.
    GrowExt { place: Place },
    /// Mount, `xfs_growfs`, unmount.
    GrowXfs { place: Place },
    /// `ntfsresize` to fill the place, when the image has it.
    GrowNtfs { place: Place },
    /// `mkswap` over the whole place keeping the UUID and label.
    Mkswap {
        place: Place,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        uuid: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// `pvresize` on a grown PV.
    PvResize { place: Place, vg: String },
    /// `lvextend` to `size` bytes (a whole number of extents).
    LvExtend { vg: String, lv: String, size: u64 },
}

impl Step {
    /// One line for events, reports and `ferry plan --explain`.
    pub fn describe(&self) -> String {
        match self {
            Step::GrowExt { place } => {
                format!("grow ext filesystem on {place} (e2fsck -fy, resize2fs)")
            }
            Step::GrowXfs { place } => format!("grow xfs on {place} (mount, xfs_growfs)"),
            Step::GrowNtfs { place } => format!("grow ntfs on {place} (ntfsresize)"),
            Step::Mkswap { place, .. } => {
                format!("re-create swap on {place} (mkswap, same UUID and label)")
            }
            Step::PvResize { place, vg } => format!("grow PV of {vg} on {place} (pvresize)"),
            Step::LvExtend { vg, lv, size } => {
                format!(
                    "extend {vg}/{lv} to {} (lvextend)",
                    crate::units::human(*size)
                )
            }
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Partition { number } => write!(f, "partition {number}"),
            Place::Disk => write!(f, "the whole disk"),
            Place::Lv { vg, lv } => write!(f, "{vg}/{lv}"),
        }
    }
}
