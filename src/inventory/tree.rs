//! The human-readable inventory: one tree per disk, then the volume groups.

use std::fmt::Write;

use super::{Content, Disk, DiskKind, Inventory, Table};
use crate::layout::gpt::{HeaderSource, ProtectiveMbr};
use crate::units::human;

fn content_line(c: &Content, volume_size: u64) -> String {
    let mut s = c.fs.clone();
    if let Some(l) = &c.label {
        let _ = write!(s, " \"{l}\"");
    }
    if let Some(vg) = &c.vg {
        let _ = write!(s, " of {vg}");
    }
    if let Some(u) = &c.uuid {
        let _ = write!(s, " {u}");
    }
    let _ = write!(
        s,
        "  used {} of {} ({:.1}%)",
        human(c.used_bytes),
        human(volume_size),
        c.used_percent
    );
    if let Some(e) = &c.error {
        let _ = write!(s, "  ERROR: {e}");
    }
    s
}

fn disk_header(d: &Disk) -> String {
    let mut s = format!(
        "{}  {}  used {} ({:.1}%)",
        d.path,
        human(d.size),
        human(d.used_bytes),
        d.used_percent
    );
    let kind = match d.kind {
        DiskKind::Block => "block device",
        DiskKind::File => "image file",
    };
    let _ = write!(
        s,
        "  {kind}, {}/{}-byte sectors",
        d.logical_sector_size, d.physical_sector_size
    );
    if let Some(m) = &d.model {
        let _ = write!(s, ", model {m}");
    }
    if let Some(sn) = &d.serial {
        let _ = write!(s, ", serial {sn}");
    }
    let flags: Vec<&str> = [
        (d.rotational == Some(true), "rotational"),
        (d.removable == Some(true), "removable"),
        (d.read_only == Some(true), "read-only"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, n)| *n)
    .collect();
    if !flags.is_empty() {
        let _ = write!(s, ", {}", flags.join(", "));
    }
    if d.in_use.is_empty() {
        s.push_str(", not in use");
    } else {
        let _ = write!(s, ", IN USE: {}", d.in_use.join("; "));
    }
    s
}

/// Render the inventory as text trees.
pub fn render_tree(inv: &Inventory) -> String {
    let mut out = String::new();
    for d in &inv.disks {
        let _ = writeln!(out, "{}", disk_header(d));
        match &d.table {
            Some(Table::Gpt {
                disk_guid,
                first_usable_lba,
                last_usable_lba,
                header,
                protective_mbr,
                ..
            }) => {
                let header = match header {
                    HeaderSource::Primary => "primary header",
                    HeaderSource::Backup => "BACKUP header (primary damaged)",
                };
                let mbr = match protective_mbr {
                    ProtectiveMbr::Protective => "protective MBR",
                    ProtectiveMbr::Hybrid => "HYBRID MBR",
                    ProtectiveMbr::Missing => "no protective MBR",
                };
                let _ = writeln!(
                    out,
                    "└─ GPT {disk_guid}, usable LBA {first_usable_lba}..{last_usable_lba}, {header}, {mbr}"
                );
            }
            Some(Table::Mbr { disk_signature }) => {
                let _ = writeln!(out, "└─ MBR, disk signature {disk_signature}");
            }
            None => {
                if let Some(c) = &d.content {
                    let _ = writeln!(out, "└─ no partition table: {}", content_line(c, d.size));
                } else {
                    let _ = writeln!(out, "└─ (not readable)");
                }
            }
        }
        let n = d.partitions.len();
        for (i, p) in d.partitions.iter().enumerate() {
            let last = i + 1 == n;
            let (branch, cont) = if last {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            let mut line = format!(
                "   {branch} {}  {}  at {}, {}",
                p.volume,
                p.type_name,
                human(p.start),
                human(p.size)
            );
            if let Some(name) = &p.name {
                let _ = write!(line, "  \"{name}\"");
            }
            if p.bootable == Some(true) {
                line.push_str("  boot");
            }
            if !p.attribute_names.is_empty() {
                let _ = write!(line, "  [{}]", p.attribute_names.join(","));
            }
            let _ = writeln!(out, "{line}");
            if let Some(c) = &p.content {
                let _ = writeln!(out, "   {cont}  {}", content_line(c, p.size));
            }
        }
        out.push('\n');
    }
    for vg in &inv.volume_groups {
        let _ = writeln!(
            out,
            "VG {}  {}  seqno {}, {} extents of {}, {} free",
            vg.name,
            vg.uuid,
            vg.seqno,
            vg.extent_count,
            human(vg.extent_size),
            vg.free_extents
        );
        for pv in &vg.pvs {
            let at = pv.volume.as_deref().unwrap_or("MISSING");
            let _ = writeln!(
                out,
                "├─ PV {} on {at}  {} extents from byte {}",
                pv.key, pv.pe_count, pv.pe_start
            );
        }
        let n = vg.lvs.len();
        for (i, lv) in vg.lvs.iter().enumerate() {
            let (branch, cont) = if i + 1 == n {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            let kinds: Vec<&str> = lv.segments.iter().map(|s| s.kind.as_str()).collect();
            let hidden = if lv.visible { "" } else { ", hidden" };
            let incomplete = if lv.complete { "" } else { ", INCOMPLETE" };
            let _ = writeln!(
                out,
                "{branch} {}  {}  {} segment(s): {}{hidden}{incomplete}",
                lv.volume,
                human(lv.size),
                lv.segments.len(),
                kinds.join(",")
            );
            if let Some(c) = &lv.content {
                let _ = writeln!(out, "{cont}  {}", content_line(c, lv.size));
            }
        }
        out.push('\n');
    }
    out
}
