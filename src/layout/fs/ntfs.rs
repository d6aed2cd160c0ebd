//! NTFS: identity from the boot sector and `$Volume`, used map from `$Bitmap`.
//!
//! The boot sector gives the sector and cluster sizes, the sector count and the
//! MFT's first cluster. The system files (MFT records 0..16) always lie in the
//! MFT's first extent, so record `n` sits at `mft_lcn * cluster + n * record`.
//! Records are protected by update-sequence fixups: the last two bytes of every
//! 512-byte stride hold the sequence number, the real bytes wait in the update
//! sequence array. Attributes follow the record header; a non-resident
//! attribute's data is a runlist of (length, signed LCN delta) pairs, no delta
//! meaning a sparse run. `$Bitmap` (record 6) holds one bit per cluster. The
//! backup boot sector sits in the last sector, after the counted sectors.

use super::{FsInfo, FsKind};
use crate::disk::ReadAt;
use crate::layout::bytes::{le16, le32, le64, utf16le};
use crate::layout::ranges::RangeSet;
use crate::layout::{Result, corrupt, read_opt, read_vec};

/// `return Err(corrupt(offset, format!(...)))`.
macro_rules! bail {
    ($off:expr, $($fmt:tt)+) => {
        return Err(corrupt($off, format!($($fmt)+)))
    };
}

const RECORD_VOLUME: u64 = 3;
const RECORD_BITMAP: u64 = 6;
const ATTR_LIST: u32 = 0x20;
const ATTR_VOLUME_NAME: u32 = 0x60;
const ATTR_DATA: u32 = 0x80;
const ATTR_END: u32 = 0xFFFF_FFFF;
/// Fixup stride, whatever the sector size.
const STRIDE: usize = 512;
/// Bitmap bytes read at a time.
const CHUNK: u64 = 1 << 20;
/// Largest cluster Windows creates (2 MiB).
const MAX_CLUSTER: u64 = 2 << 20;
const WHAT: &str = "ntfs $Bitmap record";

/// Boot-sector geometry, in bytes unless named otherwise.
#[derive(Debug, Clone)]
struct Boot {
    sector: u64,
    cluster: u64,
    sectors: u64,
    clusters: u64,
    /// Byte offset of MFT record 0.
    mft: u64,
    record: u64,
    serial: u64,
}

/// Parse and sanity-check the boot sector; `Err` names the offending field.
fn parse(b: &[u8]) -> std::result::Result<Boot, (u64, String)> {
    let bad = |off: u64, what: &str| Err((off, format!("ntfs boot sector: {what}")));
    if b.len() < 512 || b.get(3..11) != Some(b"NTFS    ") {
        return bad(3, "no NTFS signature");
    }
    let sector = le16(b, 0x0B) as u64;
    if !(256..=4096).contains(&sector) || !sector.is_power_of_two() {
        return bad(0x0B, &format!("{sector} bytes per sector"));
    }
    // Above 0x80 the byte is a negative power of two (clusters over 64 KiB).
    let raw = b[0x0D] as u32;
    let spc = if raw <= 0x80 {
        raw as u64
    } else {
        1u64 << (256 - raw).min(40)
    };
    let cluster = spc * sector;
    if !spc.is_power_of_two() || cluster > MAX_CLUSTER {
        return bad(0x0D, &format!("sectors-per-cluster byte {raw:#04x}"));
    }
    let fat_fields = le16(b, 0x0E) | le16(b, 0x11) | le16(b, 0x13) | le16(b, 0x16);
    if fat_fields != 0 || b[0x10] != 0 || le32(b, 0x20) != 0 {
        return bad(0x0E, "FAT fields of the BPB are not zero");
    }
    let sectors = le64(b, 0x28);
    let clusters = sectors / spc;
    if clusters == 0 || sectors.checked_mul(sector).is_none() {
        return bad(0x28, &format!("{sectors} sectors"));
    }
    let mft_lcn = le64(b, 0x30);
    if mft_lcn >= clusters || le64(b, 0x38) >= clusters {
        return bad(0x30, "MFT or MFT mirror lies past the end");
    }
    let cpr = b[0x40] as i8;
    let record = match cpr {
        1..=127 => cpr as u64 * cluster,
        -16..=-9 => 1 << -(cpr as i32),
        _ => 0,
    };
    if !(STRIDE as u64..=65536).contains(&record) || !record.is_power_of_two() {
        return bad(0x40, &format!("clusters-per-record byte {cpr}"));
    }
    Ok(Boot {
        sector,
        cluster,
        sectors,
        clusters,
        mft: mft_lcn * cluster,
        record,
        serial: le64(b, 0x48),
    })
}

impl Boot {
    /// Byte offset of system-file record `n`.
    fn at(&self, n: u64) -> u64 {
        self.mft.saturating_add(n * self.record)
    }
}

/// Check the "FILE" magic and undo the update-sequence fixups in place.
fn fixup(rec: &mut [u8], off: u64, what: &str) -> Result<()> {
    if rec.get(..4) != Some(b"FILE") {
        bail!(off, "{what}: no FILE magic");
    }
    let (usa, count) = (le16(rec, 4) as usize, le16(rec, 6) as usize);
    let Some(arr) = rec.get(usa..usa + 2 * count).map(<[u8]>::to_vec) else {
        bail!(off + 4, "{what}: update sequence array out of bounds");
    };
    if usa % 2 != 0 || count != rec.len() / STRIDE + 1 {
        bail!(off + 4, "{what}: bad update sequence array {usa}/{count}");
    }
    for i in 1..count {
        let at = i * STRIDE - 2;
        match rec.get_mut(at..at + 2) {
            Some(tail) if *tail == arr[..2] => tail.copy_from_slice(&arr[2 * i..2 * i + 2]),
            _ => bail!(off + at as u64, "{what}: bad fixup at byte {at}"),
        }
    }
    Ok(())
}

/// Read MFT record `n` (one of the system files) and apply its fixups.
fn read_record(dev: &dyn ReadAt, boot: &Boot, n: u64, what: &str) -> Result<(u64, Vec<u8>)> {
    let off = boot.at(n);
    let mut rec = read_vec(dev, off, boot.record as usize)?;
    fixup(&mut rec, off, what)?;
    Ok((off, rec))
}

/// What [`find_attr`] found: the attribute and its offset in the record, and
/// whether the record has an `$ATTRIBUTE_LIST` (attributes in other records).
type Found<'a> = (Option<(usize, &'a [u8])>, bool);

/// The first unnamed attribute of type `ty`.
fn find_attr<'a>(rec: &'a [u8], off: u64, ty: u32, what: &str) -> Result<Found<'a>> {
    let in_use = le32(rec, 0x18) as usize;
    if in_use > rec.len() {
        bail!(off + 0x18, "{what}: {in_use} bytes in use");
    }
    let (mut pos, mut list) = (le16(rec, 0x14) as usize, false);
    // Every attribute takes at least 24 bytes, so this bounds the walk.
    for _ in 0..rec.len() / 24 {
        if pos + 4 > in_use {
            break;
        }
        let t = le32(rec, pos);
        if t == ATTR_END {
            return Ok((None, list));
        }
        let len = le32(rec, pos + 4) as usize;
        let ok = len >= 24 && len.is_multiple_of(8) && pos + len <= in_use;
        let Some(a) = rec.get(pos..pos + len).filter(|_| ok) else {
            bail!(off + pos as u64, "{what}: bad attribute length {len}");
        };
        list |= t == ATTR_LIST;
        if t == ty && a[9] == 0 {
            return Ok((Some((pos, a)), list));
        }
        pos += len;
    }
    bail!(off + pos as u64, "{what}: attributes run past the end")
}

/// A resident attribute's value.
fn resident_value(a: &[u8]) -> Option<&[u8]> {
    let (len, off) = (le32(a, 0x10) as usize, le16(a, 0x14) as usize);
    a.get(off..off.checked_add(len)?)
}

/// One runlist entry: `(vcn, length, lcn)`, the LCN `None` for a sparse run.
type Run = (u64, u64, Option<u64>);

/// Little-endian integer of 0..=8 bytes, sign-extended when `signed`.
fn le_var(b: &[u8], signed: bool) -> i64 {
    let neg = signed && b.last().is_some_and(|&x| x & 0x80 != 0);
    let mut a = [if neg { 0xFF } else { 0 }; 8];
    a[..b.len()].copy_from_slice(b);
    i64::from_le_bytes(a)
}

/// Decode a non-resident attribute's runlist; every run must lie inside the
/// volume's `clusters`. `at` is the attribute's byte offset, for errors.
fn runlist(a: &[u8], at: u64, clusters: u64) -> Result<Vec<Run>> {
    let (mut pos, mut vcn, mut lcn) = (le16(a, 0x20) as usize, le64(a, 0x10), 0i64);
    let mut runs = Vec::new();
    // Each run takes at least two bytes: bounded by the attribute length.
    loop {
        let here = at + pos as u64;
        let Some(&h) = a.get(pos) else {
            bail!(here, "ntfs $Bitmap runlist runs past the attribute");
        };
        if h == 0 {
            return Ok(runs);
        }
        let (nl, no) = ((h & 0xF) as usize, (h >> 4) as usize);
        if !(1..=8).contains(&nl) || no > 8 {
            bail!(here, "ntfs $Bitmap runlist: bad run header {h:#04x}");
        }
        let Some(f) = a.get(pos + 1..pos + 1 + nl + no) else {
            bail!(here, "ntfs $Bitmap runlist runs past the attribute");
        };
        let len = le_var(&f[..nl], false) as u64;
        if len == 0 || len > clusters {
            bail!(here, "ntfs $Bitmap runlist: run of {len} clusters");
        }
        let mut start = None;
        if no > 0 {
            lcn = lcn.saturating_add(le_var(&f[nl..], true));
            if lcn < 0 || (lcn as u64).checked_add(len).is_none_or(|e| e > clusters) {
                bail!(here, "ntfs $Bitmap run {lcn}+{len} is outside the volume");
            }
            start = Some(lcn as u64);
        }
        runs.push((vcn, len, start));
        vcn = vcn.saturating_add(len);
        pos += 1 + nl + no;
    }
}

/// Mark the clusters whose bits are set; `first` is the byte index of `bits`.
fn mark(map: &mut RangeSet, boot: &Boot, first: u64, bits: &[u8]) {
    for (i, &byte) in bits.iter().enumerate() {
        let c0 = (first + i as u64) * 8;
        match byte {
            0 => continue,
            0xFF if c0 + 8 <= boot.clusters => {
                map.insert(c0 * boot.cluster, 8 * boot.cluster);
                continue;
            }
            _ => {}
        }
        for bit in (0..8).filter(|b| byte >> b & 1 == 1) {
            if c0 + bit < boot.clusters {
                map.insert((c0 + bit) * boot.cluster, boot.cluster);
            }
        }
    }
}

pub fn probe(dev: &dyn ReadAt) -> Result<Option<FsInfo>> {
    let Some(Ok(boot)) = read_opt(dev, 0, 512)?.map(|b| parse(&b)) else {
        return Ok(None);
    };
    // Like blkid: the MFT's first record and $Volume must look like records.
    let mut rec = Vec::new();
    for n in [0, RECORD_VOLUME] {
        match read_opt(dev, boot.at(n), boot.record as usize)? {
            Some(r) if r.starts_with(b"FILE") => rec = r,
            _ => return Ok(None),
        }
    }
    let mut info = FsInfo::new(FsKind::Ntfs);
    let off = boot.at(RECORD_VOLUME);
    if fixup(&mut rec, off, "ntfs $Volume record").is_ok()
        && let Ok((Some((_, a)), _)) = find_attr(&rec, off, ATTR_VOLUME_NAME, "ntfs $Volume record")
    {
        info.label = (a[8] == 0)
            .then(|| resident_value(a).and_then(utf16le))
            .flatten();
    }
    info.uuid = Some(format!("{:016X}", boot.serial));
    // The counted sectors plus the backup boot sector after them.
    info.size = Some((boot.sectors + 1).saturating_mul(boot.sector));
    info.block_size = u32::try_from(boot.cluster).ok();
    Ok(Some(info))
}

/// Used map: the boot sector, every cluster set in `$Bitmap`, and the backup
/// boot sector (both after the counted sectors and in the volume's last sector).
pub fn used(dev: &dyn ReadAt) -> Result<RangeSet> {
    Ok(used_checked(dev)?.0)
}

/// Like [`used`], and when `$Bitmap` cannot be read whole (it continues in
/// extension records) also why: the map is then the whole volume.
pub fn used_checked(dev: &dyn ReadAt) -> Result<(RangeSet, Option<String>)> {
    let bs = read_vec(dev, 0, 512)?;
    let boot = parse(&bs).map_err(|(off, what)| corrupt(off, what))?;
    let vol = boot.sectors * boot.sector;
    if vol > dev.size() {
        bail!(0x28, "ntfs boot sector: {vol} bytes, more than the volume");
    }
    let (off, rec) = read_record(dev, &boot, RECORD_BITMAP, WHAT)?;
    if le16(&rec, 0x16) & 1 == 0 {
        bail!(off + 0x16, "{WHAT}: record not in use");
    }
    let needed = boot.clusters.div_ceil(8);
    let (found, list) = find_attr(&rec, off, ATTR_DATA, WHAT)?;
    // An attribute list may hold (the rest of) $DATA in extension records,
    // which are not followed: count the whole volume as used.
    let whole = found.is_none_or(|(_, a)| {
        a[8] != 0
            && (le64(a, 0x10) != 0
                || le64(a, 0x18).saturating_add(1).saturating_mul(boot.cluster) < needed)
    });
    if list && whole {
        let why = "$Bitmap continues in MFT extension records, which ferry does not follow";
        return Ok((RangeSet::full(dev.size()), Some(why.to_string())));
    }
    let Some((a_pos, a)) = found else {
        bail!(off, "{WHAT}: no unnamed $DATA attribute");
    };
    let at = off + a_pos as u64;
    let mut map = RangeSet::new();
    map.insert(0, boot.sector);
    if a[8] == 0 {
        let Some(v) = resident_value(a).and_then(|v| v.get(..needed as usize)) else {
            bail!(at, "{WHAT}: resident $DATA shorter than {needed} bytes");
        };
        mark(&mut map, &boot, 0, v);
    } else {
        let (size, init) = (le64(a, 0x30), le64(a, 0x38));
        if a.len() < 0x48 || le64(a, 0x10) != 0 || le16(a, 0x0C) & 0x40FF != 0 {
            bail!(at, "{WHAT}: $DATA short, compressed or not at VCN 0");
        }
        if size < needed {
            bail!(at + 0x30, "{WHAT}: $DATA is {size} bytes, {needed} needed");
        }
        let runs = runlist(a, at, boot.clusters)?;
        let end = runs.last().map_or(0, |r| r.0.saturating_add(r.1));
        if end != le64(a, 0x18).wrapping_add(1) {
            bail!(at + 0x10, "{WHAT}: runlist disagrees with the VCN range");
        }
        if end.saturating_mul(boot.cluster) < needed {
            bail!(at, "{WHAT}: runlist maps fewer than {needed} bytes");
        }
        for (vcn, len, lcn) in runs {
            let lo = vcn.saturating_mul(boot.cluster);
            let hi = vcn
                .saturating_add(len)
                .saturating_mul(boot.cluster)
                .min(needed);
            let mut pos = lo;
            while pos < hi {
                let n = (hi - pos).min(CHUNK);
                // Sparse runs and bytes past the initialized size read as
                // zeros; count them as used, as nothing should be there.
                let mut buf = match lcn {
                    Some(l) => read_vec(dev, l * boot.cluster + (pos - lo), n as usize)?,
                    None => vec![0xFF; n as usize],
                };
                let skip = init.saturating_sub(pos).min(n) as usize;
                buf[skip..].fill(0xFF);
                mark(&mut map, &boot, pos, &buf);
                pos += n;
            }
        }
    }
    if vol + boot.sector <= dev.size() {
        map.insert(vol, boot.sector);
    }
    let last = dev.size() / boot.sector * boot.sector;
    map.insert(last.saturating_sub(boot.sector), last.min(boot.sector));
    Ok((map, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::MemDisk;

    const CLUSTERS: usize = 8192; // 512-byte clusters: a 4 MiB volume
    const MFT: usize = 16 * 512; // LCN 16; 1 KiB records
    const BM: usize = MFT + 6 * 1024; // the $Bitmap record
    const RL: usize = BM + 0x38 + 0x40; // its runlist
    /// Two one-cluster runs: LCNs 40, 41; and 50, 44 (a negative delta).
    const PLAIN: &[u8] = &[0x11, 1, 40, 0x11, 1, 1, 0];
    const BACKWARDS: &[u8] = &[0x11, 1, 50, 0x11, 1, 0xFA, 0];

    /// An in-use MFT record with one attribute (non-resident when `runlist`
    /// is given, else holding `value`), with fixups applied.
    fn record(ty: u32, runlist: Option<&[u8]>, value: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 1024];
        r[..8].copy_from_slice(b"FILE\x30\0\x03\0");
        (r[0x14], r[0x16]) = (0x38, 1);
        let a = &mut r[0x38..];
        a[..4].copy_from_slice(&ty.to_le_bytes());
        let len = if let Some(rl) = runlist {
            let vcns = rl.chunks(3).take_while(|c| c[0] != 0).count() as u64;
            (a[8], a[0x20]) = (1, 0x40);
            a[0x18..0x20].copy_from_slice(&(vcns - 1).to_le_bytes());
            for f in [0x28, 0x30, 0x38] {
                a[f..f + 8].copy_from_slice(&(CLUSTERS as u64 / 8).to_le_bytes());
            }
            a[0x40..0x40 + rl.len()].copy_from_slice(rl);
            (0x40 + rl.len()).div_ceil(8) * 8
        } else {
            (a[0x10], a[0x14]) = (value.len() as u8, 0x18);
            a[0x18..0x18 + value.len()].copy_from_slice(value);
            (0x18 + value.len()).div_ceil(8) * 8
        };
        a[4] = len as u8;
        a[len..len + 4].fill(0xFF);
        (r[0x18], r[0x30]) = ((0x38 + len + 8) as u8, 7);
        for i in 1..3 {
            r.copy_within(i * 512 - 2..i * 512, 0x30 + 2 * i);
            r[i * 512 - 2] = 7;
        }
        r
    }

    /// A volume whose $Bitmap has `runlist` (one-cluster runs, each three
    /// bytes), bitmap cluster `vcn` copied to `lcn` for each `(vcn, lcn)` of
    /// `place`, and the bits of `used` set.
    fn image(runlist: &[u8], place: &[(usize, usize)], used: &[usize]) -> Vec<u8> {
        let mut d = vec![0u8; (CLUSTERS + 1) * 512];
        d[3..14].copy_from_slice(b"NTFS    \0\x02\x01");
        d[0x28..0x30].copy_from_slice(&(CLUSTERS as u64).to_le_bytes());
        (d[0x30], d[0x38], d[0x40]) = (16, 2, 0xF6);
        d[0x48..0x50].copy_from_slice(&0x0123_4567_89AB_CDEFu64.to_le_bytes());
        let label: Vec<u8> = "Test Vol"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let recs = [
            (0, record(0x10, None, &[])),
            (3, record(ATTR_VOLUME_NAME, None, &label)),
            (6, record(ATTR_DATA, Some(runlist), &[])),
        ];
        for (n, r) in recs {
            d[MFT + n * 1024..MFT + (n + 1) * 1024].copy_from_slice(&r);
        }
        let mut bits = vec![0u8; CLUSTERS / 8];
        for &c in used {
            bits[c / 8] |= 1 << (c % 8);
        }
        for &(vcn, lcn) in place {
            d[lcn * 512..(lcn + 1) * 512].copy_from_slice(&bits[vcn * 512..(vcn + 1) * 512]);
        }
        let n = d.len();
        d.copy_within(..512, n - 512);
        d
    }

    fn plain() -> Vec<u8> {
        image(PLAIN, &[(0, 40), (1, 41)], &[0, 8191])
    }

    fn total(d: Vec<u8>) -> Result<u64> {
        used(&MemDisk(d)).map(|m| m.total())
    }

    #[test]
    fn identity_and_used_map() {
        let bits: Vec<usize> = (0..48).chain([8000, 8191]).collect();
        let d = image(PLAIN, &[(0, 40), (1, 41)], &bits);
        let info = probe(&MemDisk(d.clone())).unwrap().unwrap();
        assert_eq!(info.label.as_deref(), Some("Test Vol"));
        assert_eq!(info.uuid.as_deref(), Some("0123456789ABCDEF"));
        assert_eq!(
            (info.size, info.block_size),
            (Some(d.len() as u64), Some(512))
        );
        // 50 clusters plus the backup boot sector.
        assert_eq!(total(d).unwrap(), (48 + 2 + 1) * 512);
    }

    #[test]
    fn negative_delta_and_sparse_runs() {
        // The bitmap's second cluster at LCN 44, before its first at LCN 50.
        let d = image(BACKWARDS, &[(0, 50), (1, 44)], &[0, 4100]);
        assert_eq!(total(d).unwrap(), 3 * 512);
        // A sparse second half counts as used.
        let d = image(&[0x11, 1, 40, 0x01, 1, 0], &[(0, 40)], &[0]);
        assert_eq!(total(d).unwrap(), (1 + 4096 + 1) * 512);
    }

    #[test]
    fn corruption_is_an_error() {
        for (at, byte, want) in [
            (BM + 510, 6, "bad fixup at byte 510"),
            (BM, b'X', "no FILE magic"),
            (BM + 6, 9, "update sequence array"),
            (BM + 0x16, 0, "not in use"),
            (BM + 0x3C, 3, "bad attribute length 3"),
            (BM + 0x38 + 0x31, 0, "1024 needed"),
            (BM + 0x38 + 0x20, 0x48, "runs past the attribute"),
            (RL, 0x19, "bad run header"),
            (RL + 2, 0x80, "outside the volume"),
            (RL + 2, 0xFF, "outside the volume"),
            (0x2E, 1, "more than the volume"),
            (0x40, 0x7F, "clusters-per-record"),
        ] {
            let mut d = plain();
            d[at] = byte;
            let e = total(d).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        let mut d = plain();
        d[RL..RL + 4].copy_from_slice(&[0x21, 1, 0x20, 0x20]);
        let e = total(d).unwrap_err().to_string();
        assert!(e.contains("outside the volume"), "{e}");
        assert!(total(plain()[..20000].to_vec()).is_err());
    }

    #[test]
    fn attribute_list_means_all_used() {
        let mut d = plain();
        d[BM + 0x38] = ATTR_LIST as u8;
        assert_eq!(total(d.clone()).unwrap(), d.len() as u64);
    }

    #[test]
    fn not_ntfs() {
        let mut d = plain();
        assert!(probe(&MemDisk(d[..300].to_vec())).unwrap().is_none());
        d[MFT] = 0;
        assert!(probe(&MemDisk(d.clone())).unwrap().is_none());
        d[3] = b'M';
        assert!(probe(&MemDisk(d)).unwrap().is_none());
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let base = image(BACKWARDS, &[(0, 50), (1, 44)], &[0, 1]);
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..3000 {
            let mut d = base.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let r = (seed >> 8) as usize;
                let at = [r % 0x50, BM + r % 0xA0][(seed & 1) as usize];
                d[at] = (seed >> 40) as u8;
            }
            let dev = MemDisk(d);
            let _ = probe(&dev);
            let _ = used(&dev);
        }
    }
}
