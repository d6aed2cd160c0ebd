//! The on-disk PV label, metadata area header and metadata text ring buffer.
//!
//! Layout (LVM2 `format_text/layout.h`): a 512-byte label in one of the first
//! four sectors (`LABELONE`, type `LVM2 001`), followed by the PV header (UUID,
//! device size, lists of data and metadata areas). Each metadata area starts
//! with a 512-byte header (checksum, magic, raw locations); the newest VG text
//! lives at `raw_locn[0]`, inside a ring that wraps back to byte 512 of the area.

use crate::disk::ReadAt;
use crate::layout::bytes::{le32, le64};
use crate::layout::crc::crc32_raw;
use crate::layout::{Result, corrupt, read_vec};

/// LVM2's CRC seed (`INITIAL_CRC` in `lib/misc/crc.h`).
pub const INITIAL_CRC: u32 = 0xf597_a6cf;
const MDA_MAGIC: &[u8; 16] = b"\x20\x4c\x56\x4d\x32\x20\x78\x5b\x35\x41\x25\x72\x30\x4e\x2a\x3e";
const MDA_HEADER_SIZE: u64 = 512;
const RAW_LOCN_IGNORED: u32 = 1;
/// Metadata text larger than this is refused (LVM's own default area is 1 MiB).
pub const MAX_METADATA: u64 = 64 << 20;

/// LVM's checksum: reflected CRC-32 from `INITIAL_CRC`, no final inversion.
pub fn lvm_crc(data: &[u8]) -> u32 {
    crc32_raw(INITIAL_CRC, data)
}

/// A PV label and header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvLabel {
    /// Byte offset of the label sector.
    pub label_offset: u64,
    /// 32 characters, no dashes.
    pub uuid: String,
    pub device_size: u64,
    /// `(offset, size)` of data areas; size 0 means "to the end".
    pub data_areas: Vec<(u64, u64)>,
    /// `(offset, size)` of metadata areas.
    pub metadata_areas: Vec<(u64, u64)>,
}

/// The newest metadata text of one metadata area.
#[derive(Debug, Clone)]
pub struct MdaText {
    pub mda_offset: u64,
    pub text: Vec<u8>,
}

/// Find and check the PV label in the first four sectors; `Ok(None)` if absent.
pub fn read_label(dev: &dyn ReadAt) -> Result<Option<PvLabel>> {
    if dev.size() < 2048 {
        return Ok(None);
    }
    let head = read_vec(dev, 0, 2048)?;
    for (i, s) in head.chunks_exact(512).enumerate() {
        if &s[0..8] != b"LABELONE" {
            continue;
        }
        let at = i as u64 * 512;
        if &s[24..32] != b"LVM2 001" {
            return Err(corrupt(at + 24, "LVM label type is not \"LVM2 001\""));
        }
        let stored = le32(s, 16);
        let want = lvm_crc(&s[20..512]);
        if stored != want {
            return Err(corrupt(
                at + 16,
                format!("LVM label checksum {stored:#010x} does not match {want:#010x}"),
            ));
        }
        let hdr = le32(s, 20) as usize;
        if !(32..=512 - 40).contains(&hdr) {
            return Err(corrupt(
                at + 20,
                format!("LVM label: PV header offset {hdr} is out of range"),
            ));
        }
        let uuid_raw = &s[hdr..hdr + 32];
        if !uuid_raw.iter().all(|c| c.is_ascii_alphanumeric()) {
            return Err(corrupt(
                at + hdr as u64,
                "LVM PV UUID is not 32 alphanumeric characters",
            ));
        }
        let device_size = le64(s, hdr + 32);
        let mut pos = hdr + 40;
        let mut lists = [Vec::new(), Vec::new()];
        for list in &mut lists {
            loop {
                if pos + 16 > 512 {
                    return Err(corrupt(
                        at + pos as u64,
                        "LVM PV header: area list runs past the label sector",
                    ));
                }
                let (off, size) = (le64(s, pos), le64(s, pos + 8));
                pos += 16;
                if off == 0 {
                    break;
                }
                list.push((off, size));
            }
        }
        let [data_areas, metadata_areas] = lists;
        return Ok(Some(PvLabel {
            label_offset: at,
            uuid: String::from_utf8_lossy(uuid_raw).into_owned(),
            device_size,
            data_areas,
            metadata_areas,
        }));
    }
    Ok(None)
}

/// Read the committed metadata text of the metadata area at `(offset, size)`.
/// `Ok(None)` when the area is marked ignored or holds no metadata yet.
pub fn read_mda(dev: &dyn ReadAt, offset: u64, size: u64) -> Result<Option<MdaText>> {
    if size < MDA_HEADER_SIZE * 2 || offset.checked_add(size).is_none_or(|e| e > dev.size()) {
        return Err(corrupt(
            offset,
            format!("LVM metadata area of {size} bytes does not fit the volume"),
        ));
    }
    let h = read_vec(dev, offset, MDA_HEADER_SIZE as usize)?;
    if &h[4..20] != MDA_MAGIC {
        return Err(corrupt(offset + 4, "LVM metadata area header: bad magic"));
    }
    let stored = le32(&h, 0);
    let want = lvm_crc(&h[4..512]);
    if stored != want {
        return Err(corrupt(
            offset,
            format!("LVM metadata area header checksum {stored:#010x} does not match {want:#010x}"),
        ));
    }
    if le64(&h, 24) != offset {
        return Err(corrupt(
            offset + 24,
            "LVM metadata area header: start does not match its location",
        ));
    }
    let mda_size = le64(&h, 32);
    if mda_size != size {
        return Err(corrupt(
            offset + 32,
            "LVM metadata area header: size disagrees with the PV header",
        ));
    }
    let (loff, lsize, lcrc, lflags) = (le64(&h, 40), le64(&h, 48), le32(&h, 56), le32(&h, 60));
    if lflags & RAW_LOCN_IGNORED != 0 || lsize == 0 {
        return Ok(None);
    }
    let ring = mda_size - MDA_HEADER_SIZE;
    if loff < MDA_HEADER_SIZE || loff >= mda_size || lsize > ring || lsize > MAX_METADATA {
        return Err(corrupt(
            offset + 40,
            format!(
                "LVM metadata location (offset {loff}, {lsize} bytes) is outside its area ({mda_size} bytes)"
            ),
        ));
    }
    let first = lsize.min(mda_size - loff);
    let mut text = read_vec(dev, offset + loff, first as usize)?;
    if first < lsize {
        // The text wraps to the start of the ring, just after the header.
        text.extend(read_vec(
            dev,
            offset + MDA_HEADER_SIZE,
            (lsize - first) as usize,
        )?);
    }
    let want = lvm_crc(&text);
    if want != lcrc {
        return Err(corrupt(
            offset + loff,
            format!("LVM metadata text checksum {lcrc:#010x} does not match {want:#010x}"),
        ));
    }
    while text.last() == Some(&0) {
        text.pop();
    }
    Ok(Some(MdaText {
        mda_offset: offset,
        text,
    }))
}

/// The label and the newest readable metadata text on a PV. A damaged area is
/// an error only when no other area has readable metadata.
pub fn read_pv(dev: &dyn ReadAt) -> Result<Option<(PvLabel, Option<MdaText>)>> {
    let Some(label) = read_label(dev)? else {
        return Ok(None);
    };
    let mut first_err = None;
    for &(off, size) in &label.metadata_areas {
        match read_mda(dev, off, size) {
            Ok(Some(t)) => return Ok(Some((label, Some(t)))),
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(Some((label, None))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::disk::MemDisk;

    /// A synthetic PV: label in sector 1, one metadata area at 4096 of `mda` bytes
    /// with `text` placed at ring offset `at` (wrapping if needed).
    pub(crate) fn make_pv(size: usize, mda: u64, text: &[u8], at: u64) -> Vec<u8> {
        let mut d = vec![0u8; size];
        let l = 512;
        d[l..l + 8].copy_from_slice(b"LABELONE");
        d[l + 8..l + 16].copy_from_slice(&1u64.to_le_bytes());
        d[l + 20..l + 24].copy_from_slice(&32u32.to_le_bytes());
        d[l + 24..l + 32].copy_from_slice(b"LVM2 001");
        d[l + 32..l + 64].copy_from_slice(b"AAAAAAbbbbccccddddeeeeffffGGGGGG");
        d[l + 64..l + 72].copy_from_slice(&(size as u64).to_le_bytes());
        // data area (1 MiB, to the end), terminator, metadata area, terminator
        d[l + 72..l + 80].copy_from_slice(&(1u64 << 20).to_le_bytes());
        d[l + 104..l + 112].copy_from_slice(&4096u64.to_le_bytes());
        d[l + 112..l + 120].copy_from_slice(&mda.to_le_bytes());
        let crc = lvm_crc(&d[l + 20..l + 512]);
        d[l + 16..l + 20].copy_from_slice(&crc.to_le_bytes());

        let m = 4096usize;
        d[m + 4..m + 20].copy_from_slice(MDA_MAGIC);
        d[m + 20..m + 24].copy_from_slice(&1u32.to_le_bytes());
        d[m + 24..m + 32].copy_from_slice(&4096u64.to_le_bytes());
        d[m + 32..m + 40].copy_from_slice(&mda.to_le_bytes());
        d[m + 40..m + 48].copy_from_slice(&at.to_le_bytes());
        d[m + 48..m + 56].copy_from_slice(&(text.len() as u64).to_le_bytes());
        d[m + 56..m + 60].copy_from_slice(&lvm_crc(text).to_le_bytes());
        let crc = lvm_crc(&d[m + 4..m + 512]);
        d[m..m + 4].copy_from_slice(&crc.to_le_bytes());
        for (i, &b) in text.iter().enumerate() {
            let mut pos = at + i as u64;
            if pos >= mda {
                pos = pos - mda + 512;
            }
            d[m + pos as usize] = b;
        }
        d
    }

    #[test]
    fn reads_label_and_text() {
        let d = make_pv(2 << 20, 1 << 16, b"vg0 { seqno = 1 }", 512);
        let (label, text) = read_pv(&MemDisk(d)).unwrap().unwrap();
        assert_eq!(label.label_offset, 512);
        assert_eq!(label.uuid, "AAAAAAbbbbccccddddeeeeffffGGGGGG");
        assert_eq!(label.metadata_areas, vec![(4096, 1 << 16)]);
        assert_eq!(label.data_areas, vec![(1 << 20, 0)]);
        assert_eq!(text.unwrap().text, b"vg0 { seqno = 1 }");
    }

    #[test]
    fn reads_wrapped_text() {
        let text = b"vg0 { seqno = 42 description = \"wrapped around the ring\" }";
        let mda = 4096u64;
        let d = make_pv(1 << 20, mda, text, mda - 20);
        let (_, t) = read_pv(&MemDisk(d)).unwrap().unwrap();
        assert_eq!(t.unwrap().text, text);
    }

    #[test]
    fn bad_checksums_are_errors() {
        let mut d = make_pv(1 << 20, 1 << 16, b"vg0 { seqno = 1 }", 512);
        d[4096 + 512] ^= 1; // metadata text
        let e = read_pv(&MemDisk(d)).unwrap_err().to_string();
        assert!(
            e.contains("metadata text checksum") && e.contains("at byte 4608"),
            "{e}"
        );

        let mut d = make_pv(1 << 20, 1 << 16, b"x", 512);
        d[512 + 100] ^= 1; // label
        assert!(
            read_label(&MemDisk(d))
                .unwrap_err()
                .to_string()
                .contains("label checksum")
        );

        let mut d = make_pv(1 << 20, 1 << 16, b"x", 512);
        d[4096 + 100] ^= 1; // area header
        assert!(
            read_pv(&MemDisk(d))
                .unwrap_err()
                .to_string()
                .contains("area header checksum")
        );
    }

    #[test]
    fn no_label() {
        assert!(read_pv(&MemDisk(vec![0; 8192])).unwrap().is_none());
    }
}
