//! `ferry inventory`: every disk, its partition table, LVM volume groups,
//! filesystems and used maps, as one serialisable structure.
//!
//! The JSON form of [`Inventory`] is a documented, versioned schema
//! (docs/inventory-json.md) read by the TUI, the planner and tests.

mod build;
mod tables;
mod tree;

use std::path::PathBuf;

use serde::Serialize;

pub use build::inventory;
pub use tree::render_tree;

use crate::disk::sysfs::Roots;
use crate::layout::fs::{FsInfo, UsedMethod};
use crate::layout::lvm::{LvMeta, PvMeta, VgMeta};
use crate::layout::ranges::RangeSet;

/// Version of the JSON schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What to inventory.
#[derive(Debug, Clone)]
pub struct InventoryConfig {
    /// Devices or image files; empty means every block device in /sys/block.
    pub paths: Vec<PathBuf>,
    /// Include each volume's used ranges (can be long) in the result.
    pub with_ranges: bool,
    pub roots: Roots,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            paths: Vec::new(),
            with_ranges: false,
            roots: Roots::system(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub schema: u32,
    pub disks: Vec<Disk>,
    pub volume_groups: Vec<VolumeGroup>,
    /// Damaged or unreadable structures: each names the volume and byte offset.
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

/// A problem found while reading a volume.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// The disk or volume name (`disk.img`, `disk.img:2`, `vg0/root`).
    pub volume: String,
    /// One line, with the byte offset where one applies.
    pub message: String,
    /// True when the disk could not be opened at all (environment, not data).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unavailable: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.volume, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskKind {
    Block,
    File,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    pub path: String,
    pub kind: DiskKind,
    pub size: u64,
    pub logical_sector_size: u32,
    pub physical_sector_size: u32,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub rotational: Option<bool>,
    pub removable: Option<bool>,
    pub read_only: Option<bool>,
    /// Why the disk is busy (mounted partitions, swap, holders, loop devices); empty when free.
    pub in_use: Vec<String>,
    pub table: Option<Table>,
    pub partitions: Vec<Partition>,
    /// What the whole disk holds when it has no partition table.
    pub content: Option<Content>,
    /// Bytes a whole-disk copy reads: table areas and every partition's used map.
    pub used_bytes: u64,
    pub used_percent: f64,
    /// With `--ranges`: the whole-disk used map in disk bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_ranges: Option<RangeSet>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Table {
    Gpt {
        disk_guid: String,
        first_usable_lba: u64,
        last_usable_lba: u64,
        entries: u32,
        header: crate::layout::gpt::HeaderSource,
        protective_mbr: crate::layout::gpt::ProtectiveMbr,
    },
    Mbr {
        disk_signature: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct Partition {
    pub number: u32,
    /// `DISK:N`, the name plan, send and the TUI use.
    pub volume: String,
    /// Byte offset on the disk.
    pub start: u64,
    /// Bytes.
    pub size: u64,
    pub start_lba: u64,
    pub end_lba: u64,
    /// GPT type GUID or MBR type byte (`0x83`).
    pub type_id: String,
    pub type_name: String,
    /// GPT partition name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_guid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attribute_names: Vec<&'static str>,
    /// MBR: primary, extended or logical.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mbr_kind: Option<crate::layout::mbr::MbrKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootable: Option<bool>,
    /// MBR logical partitions: the LBA of the EBR describing it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebr_lba: Option<u64>,
    /// None for an MBR extended partition (a container of logicals).
    pub content: Option<Content>,
}

impl Partition {
    /// A partition of `disk` at `start_lba` spanning `sectors` sectors of `ss`
    /// bytes, with the table-specific fields empty.
    fn new(
        disk: &str,
        number: u32,
        start_lba: u64,
        sectors: u64,
        ss: u64,
        type_id: String,
        type_name: &str,
    ) -> Self {
        Partition {
            number,
            volume: format!("{disk}:{number}"),
            start: start_lba * ss,
            size: sectors * ss,
            start_lba,
            end_lba: start_lba + sectors - 1,
            type_id,
            type_name: type_name.to_string(),
            name: None,
            unique_guid: None,
            attributes: None,
            attribute_names: Vec::new(),
            mbr_kind: None,
            bootable: None,
            ebr_lba: None,
            content: None,
        }
    }
}

/// What a volume holds and which of its bytes are used.
#[derive(Debug, Clone, Serialize)]
pub struct Content {
    /// blkid's type name: ext4, xfs, vfat, swap, LVM2_member, unknown, ...
    pub fs: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// Bytes the filesystem spans.
    pub fs_size: Option<u64>,
    pub block_size: Option<u32>,
    /// Bytes of the volume that will be read (the used map's total).
    pub used_bytes: u64,
    /// `used_bytes` as a percentage of the volume size, one decimal.
    pub used_percent: f64,
    pub used_method: UsedMethod,
    /// For an LVM PV: the VG it belongs to (absent for an orphan PV).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vg: Option<String>,
    /// The used map, with `--ranges`: `[[start, end], ...]` in volume bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_ranges: Option<RangeSet>,
    /// Set when the volume could not be parsed; the used map is then the whole volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Content {
    fn new(
        info: &FsInfo,
        used: &RangeSet,
        method: UsedMethod,
        volume_size: u64,
        with_ranges: bool,
    ) -> Self {
        let used_bytes = used.total();
        Content {
            fs: info.kind.name().to_string(),
            label: info.label.clone(),
            uuid: info.uuid.clone(),
            fs_size: info.size,
            block_size: info.block_size,
            used_bytes,
            used_percent: percent(used_bytes, volume_size),
            used_method: method,
            vg: None,
            used_ranges: with_ranges.then(|| used.clone()),
            error: None,
        }
    }
}

pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    (part as f64 * 1000.0 / whole as f64).round() / 10.0
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeGroup {
    pub name: String,
    pub uuid: String,
    pub seqno: u64,
    pub extent_size: u64,
    pub extent_count: u64,
    pub free_extents: u64,
    pub pvs: Vec<VgPv>,
    pub lvs: Vec<LogicalVolume>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VgPv {
    /// Key in the VG metadata (`pv0`).
    pub key: String,
    pub uuid: String,
    /// The volume it was found on; None when missing.
    pub volume: Option<String>,
    pub device_hint: Option<String>,
    pub pe_start: u64,
    pub pe_count: u64,
    pub missing: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LogicalVolume {
    pub name: String,
    /// `VG/LV`.
    pub volume: String,
    pub uuid: String,
    pub visible: bool,
    pub size: u64,
    /// False when a segment is on a missing PV or of a type ferry does not map.
    pub complete: bool,
    pub segments: Vec<crate::layout::lvm::Segment>,
    pub content: Option<Content>,
}

impl VolumeGroup {
    /// The VG metadata back from its inventory form (what LV reads need).
    pub fn meta(&self) -> VgMeta {
        VgMeta {
            name: self.name.clone(),
            uuid: self.uuid.clone(),
            seqno: self.seqno,
            extent_size: self.extent_size,
            pvs: self
                .pvs
                .iter()
                .map(|p| PvMeta {
                    key: p.key.clone(),
                    uuid: p.uuid.clone(),
                    device_hint: p.device_hint.clone(),
                    pe_start: p.pe_start,
                    pe_count: p.pe_count,
                })
                .collect(),
            lvs: self
                .lvs
                .iter()
                .map(|l| LvMeta {
                    name: l.name.clone(),
                    uuid: l.uuid.clone(),
                    visible: l.visible,
                    segments: l.segments.clone(),
                })
                .collect(),
        }
    }
}

impl Inventory {
    /// Exit status for the CLI: 0 clean (warnings allowed), 1 when a named disk
    /// could not be opened, 2 when some disk's contents are damaged.
    pub fn exit_code(&self) -> i32 {
        if self.errors.iter().any(|e| !e.unavailable) {
            2
        } else if !self.errors.is_empty() {
            1
        } else {
            0
        }
    }
}
