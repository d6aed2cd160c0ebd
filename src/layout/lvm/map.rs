//! Mapping logical volumes onto physical volumes: reading an LV through its
//! segments, and translating an LV's used map into PV byte ranges.

use std::io;
use std::sync::Arc;

use super::meta::{LvMeta, Segment, VgMeta};
use crate::disk::{ReadAt, SharedReader};
use crate::layout::ranges::RangeSet;

/// Where segment `seg`'s stripe `i` starts on its PV, in PV bytes.
fn stripe_base(vg: &VgMeta, seg: &Segment, i: usize) -> Option<(usize, u64)> {
    let st = &seg.stripes[i];
    let pv = vg.pvs.iter().position(|p| p.key == st.pv)?;
    let base = vg.pvs[pv]
        .pe_start
        .checked_add(st.start_extent.checked_mul(vg.extent_size)?)?;
    Some((pv, base))
}

/// One mapped piece of an LV: LV bytes `[start, start+len)` on PV `pv` at `pv_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub pv: usize,
    pub pv_offset: u64,
    pub len: u64,
}

/// Map the LV byte at `offset` to a contiguous piece on a PV (as long as possible,
/// at most `max` bytes). `None` if the offset is past the LV or its segment is
/// of a type ferry does not map.
pub fn locate(vg: &VgMeta, lv: &LvMeta, offset: u64, max: u64) -> Option<Piece> {
    let ext = vg.extent_size;
    let seg = lv.segments.iter().find(|s| {
        let start = s.start_extent * ext;
        offset >= start && offset < start + s.extent_count * ext
    })?;
    if !seg.is_mapped() {
        return None;
    }
    let local = offset - seg.start_extent * ext;
    let seg_len = seg.extent_count * ext;
    if seg.kind == "linear" {
        let (pv, base) = stripe_base(vg, seg, 0)?;
        return Some(Piece {
            pv,
            pv_offset: base + local,
            len: (seg_len - local).min(max),
        });
    }
    let n = seg.stripes.len() as u64;
    let size = seg.stripe_size?;
    let chunk = local / size;
    let (pv, base) = stripe_base(vg, seg, (chunk % n) as usize)?;
    let row = chunk / n;
    let within = local % size;
    Some(Piece {
        pv,
        pv_offset: base + row * size + within,
        len: (size - within).min(max).min(seg_len - local),
    })
}

/// Translate an LV's used map (LV byte ranges) into PV byte ranges, added to
/// `out[pv index]`. Striped segments map whole stripe rows (a superset by at
/// most one stripe per end). Returns `false` if some segment is unmapped.
pub fn used_on_pvs(vg: &VgMeta, lv: &LvMeta, used: &RangeSet, out: &mut [RangeSet]) -> bool {
    let ext = vg.extent_size;
    let mut ok = true;
    for seg in &lv.segments {
        let start = seg.start_extent * ext;
        let end = start + seg.extent_count * ext;
        if !seg.is_mapped() {
            ok = false;
            continue;
        }
        for (a, b) in used.intersect(start, end) {
            let (la, lb) = (a - start, b - start);
            if seg.kind == "linear" {
                if let Some((pv, base)) = stripe_base(vg, seg, 0) {
                    out[pv].insert(base + la, lb - la);
                }
                continue;
            }
            let n = seg.stripes.len() as u64;
            let Some(size) = seg.stripe_size else {
                continue;
            };
            let row_a = la / size / n;
            let row_b = (lb - 1) / size / n;
            for i in 0..seg.stripes.len() {
                if let Some((pv, base)) = stripe_base(vg, seg, i) {
                    out[pv].insert(base + row_a * size, (row_b - row_a + 1) * size);
                }
            }
        }
    }
    ok
}

/// Every PV extent an LV's segments occupy (for LVs whose contents ferry
/// cannot parse), added to `out[pv index]`. Returns `false` if some segment
/// names no stripes (thin pools, RAID images): then the caller must treat the
/// PVs as wholly used.
pub fn allocated_on_pvs(vg: &VgMeta, lv: &LvMeta, out: &mut [RangeSet]) -> bool {
    let mut ok = true;
    for seg in &lv.segments {
        if seg.stripes.is_empty() {
            ok = false;
            continue;
        }
        let per = seg.extent_count / seg.stripes.len() as u64;
        for i in 0..seg.stripes.len() {
            if let Some((pv, base)) = stripe_base(vg, seg, i) {
                out[pv].insert(base, per * vg.extent_size);
            }
        }
    }
    ok
}

/// Read LV bytes at `offset` through the segment map; `pv(i)` gives the device
/// of `vg.pvs[i]`, `None` when it is missing.
fn read_lv<'d>(
    vg: &VgMeta,
    lv: &LvMeta,
    pv: impl Fn(usize) -> Option<&'d dyn ReadAt>,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<()> {
    let size = lv.extents().saturating_mul(vg.extent_size);
    crate::disk::check_bounds(offset, buf.len(), size)?;
    let mut done = 0usize;
    while done < buf.len() {
        let pos = offset + done as u64;
        let piece = locate(vg, lv, pos, (buf.len() - done) as u64).ok_or_else(|| {
            io::Error::other(format!(
                "LV {}: byte {pos} lies in a segment ferry does not map",
                lv.name
            ))
        })?;
        let dev = pv(piece.pv).ok_or_else(|| {
            io::Error::other(format!(
                "LV {}: needs missing PV {}",
                lv.name, vg.pvs[piece.pv].key
            ))
        })?;
        let n = piece.len as usize;
        dev.read_exact_at(&mut buf[done..done + n], piece.pv_offset)?;
        done += n;
    }
    Ok(())
}

/// An LV readable as a volume while its VG is being scanned (borrowed PVs).
pub struct LvView<'a> {
    vg: &'a VgMeta,
    lv: &'a LvMeta,
    pvs: Vec<Option<&'a dyn ReadAt>>,
}

impl<'a> LvView<'a> {
    /// `pvs[i]` is the device of `vg.pvs[i]`, or `None` when it is missing.
    pub fn new(vg: &'a VgMeta, lv: &'a LvMeta, pvs: Vec<Option<&'a dyn ReadAt>>) -> Self {
        LvView { vg, lv, pvs }
    }
}

impl ReadAt for LvView<'_> {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_lv(
            self.vg,
            self.lv,
            |i| self.pvs.get(i).copied().flatten(),
            buf,
            offset,
        )
    }
    fn size(&self) -> u64 {
        self.lv.extents().saturating_mul(self.vg.extent_size)
    }
}

/// An LV readable from worker threads: owns its VG metadata and PV readers.
pub struct SharedLv {
    vg: Arc<VgMeta>,
    lv: usize,
    pvs: Vec<Option<SharedReader>>,
}

impl SharedLv {
    /// LV `lv` of `vg`; `pvs[i]` reads `vg.pvs[i]`. Fails if `lv` is out of range.
    pub fn new(vg: Arc<VgMeta>, lv: usize, pvs: Vec<Option<SharedReader>>) -> io::Result<Self> {
        if lv >= vg.lvs.len() || pvs.len() != vg.pvs.len() {
            return Err(io::Error::other("LV or PV list does not match its VG"));
        }
        Ok(SharedLv { vg, lv, pvs })
    }
}

impl ReadAt for SharedLv {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let pv = |i: usize| {
            self.pvs
                .get(i)
                .and_then(|p| p.as_deref())
                .map(|p| p as &dyn ReadAt)
        };
        read_lv(&self.vg, &self.vg.lvs[self.lv], pv, buf, offset)
    }
    fn size(&self) -> u64 {
        self.vg.lvs[self.lv]
            .extents()
            .saturating_mul(self.vg.extent_size)
    }
}

#[cfg(test)]
mod tests {
    use super::super::meta::vg_from_text;
    use super::super::text::parse;
    use super::*;
    use crate::disk::MemDisk;

    fn vg() -> VgMeta {
        // Small extents (8 sectors = 4 KiB) to keep the disks small.
        let t = super::super::meta::tests_sample()
            .replace("extent_size = 8192", "extent_size = 8")
            .replace("stripe_size = 128", "stripe_size = 2");
        vg_from_text(&parse(t.as_bytes()).unwrap()).unwrap()
    }

    /// Two PVs whose every byte says (pv, offset/4096, offset%4096 /256).
    fn disks() -> (MemDisk, MemDisk) {
        let mk = |id: u8| {
            MemDisk(
                (0..(2u32 << 20))
                    .map(|i| id.wrapping_mul(100).wrapping_add((i >> 12) as u8))
                    .collect(),
            )
        };
        (mk(1), mk(2))
    }

    #[test]
    fn linear_read_crosses_segments() {
        let vg = vg();
        let (a, b) = disks();
        let lv = &vg.lvs[0]; // 10 extents on pv0 @0, 5 on pv1 @0
        let view = LvView::new(&vg, lv, vec![Some(&a as &dyn ReadAt), Some(&b)]);
        assert_eq!(view.size(), 15 * 4096);
        let mut buf = vec![0u8; 8192];
        view.read_exact_at(&mut buf, 9 * 4096).unwrap();
        // pe_start = 1 MiB = block 256 on each PV
        assert_eq!(buf[0], 100u8.wrapping_add((256 + 9) as u8));
        assert_eq!(buf[4096], 200u8.wrapping_add(256u32 as u8));
    }

    #[test]
    fn striped_read_alternates() {
        let vg = vg();
        let (a, b) = disks();
        let lv = &vg.lvs[1]; // 8 extents, 2 stripes of 1 KiB, pv0@20 and pv1@20
        let view = LvView::new(&vg, lv, vec![Some(&a as &dyn ReadAt), Some(&b)]);
        let mut buf = vec![0u8; 4096];
        view.read_exact_at(&mut buf, 0).unwrap();
        let block = (256 + 20) as u8;
        assert_eq!(buf[0], 100u8.wrapping_add(block));
        assert_eq!(buf[1024], 200u8.wrapping_add(block));
        assert_eq!(buf[2048], 100u8.wrapping_add(block));
        let missing = LvView::new(&vg, lv, vec![Some(&a as &dyn ReadAt), None]);
        assert!(
            missing
                .read_exact_at(&mut buf, 0)
                .unwrap_err()
                .to_string()
                .contains("missing PV pv1")
        );
    }

    #[test]
    fn shared_lv_reads_like_the_borrowed_view() {
        let vg = vg();
        let (a, b) = disks();
        let mut want = vec![0u8; 15 * 4096];
        LvView::new(&vg, &vg.lvs[0], vec![Some(&a as &dyn ReadAt), Some(&b)])
            .read_exact_at(&mut want, 0)
            .unwrap();
        let shared: Vec<Option<SharedReader>> = vec![Some(Arc::new(a)), Some(Arc::new(b))];
        let lv = SharedLv::new(Arc::new(vg), 0, shared).unwrap();
        let mut got = vec![0u8; 15 * 4096];
        lv.read_exact_at(&mut got, 0).unwrap();
        assert_eq!(got, want);
        assert_eq!(lv.size(), 15 * 4096);
        assert!(lv.read_exact_at(&mut [0u8; 2], 15 * 4096 - 1).is_err());
    }

    #[test]
    fn used_maps_through_segments() {
        let vg = vg();
        let mut out = vec![RangeSet::new(), RangeSet::new()];
        let mut used = RangeSet::new();
        used.insert(0, 100);
        used.insert(10 * 4096, 10);
        assert!(used_on_pvs(&vg, &vg.lvs[0], &used, &mut out));
        assert_eq!(
            out[0].iter().collect::<Vec<_>>(),
            vec![(1 << 20, (1 << 20) + 100)]
        );
        assert_eq!(
            out[1].iter().collect::<Vec<_>>(),
            vec![(1 << 20, (1 << 20) + 10)]
        );

        let mut out = vec![RangeSet::new(), RangeSet::new()];
        let mut used = RangeSet::new();
        used.insert(3000, 10); // chunk 2 -> stripe 0, row 1
        assert!(used_on_pvs(&vg, &vg.lvs[1], &used, &mut out));
        let base = (1 << 20) + 20 * 4096;
        assert_eq!(
            out[0].iter().collect::<Vec<_>>(),
            vec![(base + 1024, base + 2048)]
        );
        assert_eq!(
            out[1].iter().collect::<Vec<_>>(),
            vec![(base + 1024, base + 2048)]
        );
    }
}
