//! VG metadata: from the parsed text to volume group, PVs, LVs and segments.

use serde::Serialize;

use super::text::{Section, Value};

/// LVM counts metadata sizes in 512-byte sectors whatever the device's sector size.
pub const LVM_SECTOR: u64 = 512;

#[derive(Debug, Clone, Serialize)]
pub struct VgMeta {
    pub name: String,
    pub uuid: String,
    pub seqno: u64,
    /// Bytes per physical extent.
    pub extent_size: u64,
    pub pvs: Vec<PvMeta>,
    pub lvs: Vec<LvMeta>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PvMeta {
    /// The key in the metadata (`pv0`), used by segments.
    pub key: String,
    pub uuid: String,
    /// The device path LVM last saw (a hint only).
    pub device_hint: Option<String>,
    /// Byte offset of the first extent on the PV.
    pub pe_start: u64,
    pub pe_count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LvMeta {
    pub name: String,
    pub uuid: String,
    pub visible: bool,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Segment {
    pub start_extent: u64,
    pub extent_count: u64,
    /// `linear`, `striped` or the LVM segment type ferry does not map (raid1, thin, ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// Stripe size in bytes (striped only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_size: Option<u64>,
    /// `(PV key, first extent on that PV)` per stripe.
    pub stripes: Vec<Stripe>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stripe {
    pub pv: String,
    pub start_extent: u64,
}

impl Segment {
    /// Whether ferry can map this segment's bytes onto PVs.
    pub fn is_mapped(&self) -> bool {
        matches!(self.kind.as_str(), "linear" | "striped") && !self.stripes.is_empty()
    }
}

impl LvMeta {
    pub fn extents(&self) -> u64 {
        self.segments.iter().map(|s| s.extent_count).sum()
    }
}

fn need_u64(s: &Section, key: &str, ctx: &str) -> Result<u64, String> {
    match s.int(key) {
        Some(v) if v >= 0 => Ok(v as u64),
        Some(v) => Err(format!("{ctx}: {key} = {v} is negative")),
        None => Err(format!("{ctx}: missing {key}")),
    }
}

fn need_str(s: &Section, key: &str, ctx: &str) -> Result<String, String> {
    s.str(key)
        .map(str::to_string)
        .ok_or_else(|| format!("{ctx}: missing {key}"))
}

fn has_flag(s: &Section, key: &str, flag: &str) -> bool {
    s.list(key)
        .is_some_and(|l| l.iter().any(|v| matches!(v, Value::Str(f) if f == flag)))
}

/// Extract the volume group from a parsed metadata text.
pub fn vg_from_text(top: &Section) -> Result<VgMeta, String> {
    let (name, vg) = top
        .sections()
        .next()
        .ok_or_else(|| "no volume group section in metadata".to_string())?;
    let ctx = format!("VG {name}");
    let extent_sectors = need_u64(vg, "extent_size", &ctx)?;
    if extent_sectors == 0 || extent_sectors > (1 << 32) {
        return Err(format!("{ctx}: extent_size {extent_sectors} is invalid"));
    }
    let extent_size = extent_sectors * LVM_SECTOR;
    let mut pvs = Vec::new();
    if let Some(list) = vg.section("physical_volumes") {
        for (key, pv) in list.sections() {
            let c = format!("{ctx} PV {key}");
            let pe_start = need_u64(pv, "pe_start", &c)?
                .checked_mul(LVM_SECTOR)
                .ok_or_else(|| format!("{c}: pe_start overflows"))?;
            let pe_count = need_u64(pv, "pe_count", &c)?;
            if pe_count
                .checked_mul(extent_size)
                .and_then(|n| n.checked_add(pe_start))
                .is_none()
            {
                return Err(format!(
                    "{c}: {pe_count} extents do not fit a 64-bit byte offset"
                ));
            }
            pvs.push(PvMeta {
                key: key.to_string(),
                uuid: need_str(pv, "id", &c)?,
                device_hint: pv.str("device").map(str::to_string),
                pe_start,
                pe_count,
            });
        }
    }
    let mut lvs = Vec::new();
    if let Some(list) = vg.section("logical_volumes") {
        for (lv_name, lv) in list.sections() {
            let c = format!("{ctx} LV {lv_name}");
            let mut segments = Vec::new();
            for (seg_name, seg) in lv.sections() {
                let sc = format!("{c} {seg_name}");
                let kind = need_str(seg, "type", &sc)?;
                let mut stripes = Vec::new();
                if let Some(list) = seg.list("stripes") {
                    if list.len() % 2 != 0 {
                        return Err(format!("{sc}: stripes list has an odd length"));
                    }
                    for pair in list.chunks(2) {
                        match pair {
                            [Value::Str(pv), Value::Int(pe)] if *pe >= 0 => stripes.push(Stripe {
                                pv: pv.clone(),
                                start_extent: *pe as u64,
                            }),
                            _ => {
                                return Err(format!("{sc}: stripes entry is not (\"pv\", extent)"));
                            }
                        }
                    }
                }
                let stripe_count = seg.int("stripe_count").unwrap_or(stripes.len() as i64);
                let kind = match kind.as_str() {
                    "striped" if stripe_count == 1 => "linear".to_string(),
                    _ => kind,
                };
                let stripe_size = if kind == "striped" {
                    let s = need_u64(seg, "stripe_size", &sc)?;
                    if s == 0 || s > (1 << 24) {
                        return Err(format!("{sc}: stripe_size {s} is invalid"));
                    }
                    Some(s * LVM_SECTOR)
                } else {
                    None
                };
                let segment = Segment {
                    start_extent: need_u64(seg, "start_extent", &sc)?,
                    extent_count: need_u64(seg, "extent_count", &sc)?,
                    kind,
                    stripe_size,
                    stripes,
                };
                if segment.kind == "striped"
                    && !segment
                        .extent_count
                        .is_multiple_of(segment.stripes.len() as u64)
                {
                    return Err(format!(
                        "{sc}: {} extents do not divide into {} stripes",
                        segment.extent_count,
                        segment.stripes.len()
                    ));
                }
                let per_stripe = match segment.stripes.len() as u64 {
                    0 => 0,
                    n => segment.extent_count / n,
                };
                for st in &segment.stripes {
                    let Some(pv) = pvs.iter().find(|p| p.key == st.pv) else {
                        return Err(format!("{sc}: names unknown PV {:?}", st.pv));
                    };
                    if st
                        .start_extent
                        .checked_add(per_stripe)
                        .is_none_or(|e| e > pv.pe_count)
                    {
                        return Err(format!(
                            "{sc}: extents {}..{} on {} lie past its {} extents",
                            st.start_extent,
                            st.start_extent.saturating_add(per_stripe),
                            st.pv,
                            pv.pe_count
                        ));
                    }
                }
                segments.push(segment);
            }
            segments.sort_by_key(|s| s.start_extent);
            let mut next = 0;
            for s in &segments {
                if s.start_extent != next {
                    return Err(format!("{c}: segments are not contiguous at extent {next}"));
                }
                next = s
                    .start_extent
                    .checked_add(s.extent_count)
                    .ok_or_else(|| format!("{c}: extent count overflows"))?;
            }
            if next.checked_mul(extent_size).is_none() {
                return Err(format!("{c}: {next} extents do not fit a 64-bit size"));
            }
            lvs.push(LvMeta {
                name: lv_name.to_string(),
                uuid: need_str(lv, "id", &c)?,
                visible: has_flag(lv, "status", "VISIBLE"),
                segments,
            });
        }
    }
    Ok(VgMeta {
        name: name.to_string(),
        uuid: need_str(vg, "id", &ctx)?,
        seqno: need_u64(vg, "seqno", &ctx)?,
        extent_size,
        pvs,
        lvs,
    })
}

/// The sample metadata text of the unit tests, shared with `map`.
#[cfg(test)]
pub(crate) fn tests_sample() -> String {
    tests::SAMPLE.to_string()
}

#[cfg(test)]
mod tests {
    use super::super::text::parse;
    use super::*;

    pub(super) const SAMPLE: &str = r#"vg0 {
id = "Vg0Uuid-aaaa-bbbb-cccc-dddd-eeee-ffffff"
seqno = 7
format = "lvm2"
status = ["RESIZEABLE", "READ", "WRITE"]
extent_size = 8192
physical_volumes {
pv0 {
id = "AAAAAA-bbbb-cccc-dddd-eeee-ffff-GGGGGG"
device = "/dev/sda5"
pe_start = 2048
pe_count = 100
}
pv1 {
id = "HHHHHH-bbbb-cccc-dddd-eeee-ffff-GGGGGG"
pe_start = 2048
pe_count = 100
}
}
logical_volumes {
root {
id = "lvroot"
status = ["READ", "WRITE", "VISIBLE"]
segment_count = 2
segment2 {
start_extent = 10
extent_count = 5
type = "striped"
stripe_count = 1
stripes = ["pv1", 0]
}
segment1 {
start_extent = 0
extent_count = 10
type = "striped"
stripe_count = 1
stripes = ["pv0", 0]
}
}
wide {
id = "lvwide"
status = ["READ", "WRITE", "VISIBLE"]
segment1 {
start_extent = 0
extent_count = 8
type = "striped"
stripe_count = 2
stripe_size = 128
stripes = ["pv0", 20, "pv1", 20]
}
}
}
}
"#;

    #[test]
    fn vg_lv_segments() {
        let vg = vg_from_text(&parse(SAMPLE.as_bytes()).unwrap()).unwrap();
        assert_eq!(vg.name, "vg0");
        assert_eq!(vg.seqno, 7);
        assert_eq!(vg.extent_size, 4 << 20);
        assert_eq!(vg.pvs[0].pe_start, 1 << 20);
        assert_eq!(vg.pvs[0].device_hint.as_deref(), Some("/dev/sda5"));
        let root = &vg.lvs[0];
        assert_eq!(root.extents(), 15);
        assert_eq!(root.segments[0].kind, "linear");
        assert_eq!(root.segments[1].stripes[0].pv, "pv1");
        let wide = &vg.lvs[1];
        assert_eq!(wide.segments[0].kind, "striped");
        assert_eq!(wide.segments[0].stripe_size, Some(64 * 1024));
    }

    #[test]
    fn refuses_inconsistent_metadata() {
        let bad = SAMPLE.replace("start_extent = 10", "start_extent = 11");
        assert!(
            vg_from_text(&parse(bad.as_bytes()).unwrap())
                .unwrap_err()
                .contains("not contiguous")
        );
        let bad = SAMPLE.replace("stripes = [\"pv1\", 0]", "stripes = [\"pv9\", 0]");
        assert!(
            vg_from_text(&parse(bad.as_bytes()).unwrap())
                .unwrap_err()
                .contains("unknown PV")
        );
        let bad = SAMPLE.replace("stripes = [\"pv1\", 0]", "stripes = [\"pv1\", 96]");
        assert!(
            vg_from_text(&parse(bad.as_bytes()).unwrap())
                .unwrap_err()
                .contains("lie past")
        );
        let bad = SAMPLE.replace("extent_size = 8192", "extent_size = 0");
        assert!(vg_from_text(&parse(bad.as_bytes()).unwrap()).is_err());
    }
}
