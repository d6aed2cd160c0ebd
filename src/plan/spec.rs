//! The `[plan]` section of a job file: what the technician chose. The layout
//! ([`super::layout::compute`]) is worked out from it and the inventory each
//! time, so a job file stays a template and never holds stale offsets.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What to migrate and how the targets grow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSpec {
    /// Source disks, in target order: the first goes to the receiver's
    /// target 0, and so on. Empty: every disk holding a selected volume, in
    /// inventory order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disks: Vec<String>,
    /// Explicit mapping of a source disk to a receiver target index; beats
    /// the order of `disks`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, u32>,
    /// Migrate every volume group (all their LVs). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_vgs: Option<bool>,
    /// Volumes to add to the default selection (partitions, whole disks,
    /// `VG/LV`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub select: Vec<String>,
    /// Volumes to leave out: not read, their space stays empty on the target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deselect: Vec<String>,
    /// Target disk sizes by source disk; default: the source disk's size.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub target_size: BTreeMap<String, Size>,
    /// Volumes to grow: a size or `max` (all the space the target leaves).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub grow: BTreeMap<String, Grow>,
}

impl PlanSpec {
    pub fn all_vgs(&self) -> bool {
        self.all_vgs.unwrap_or(true)
    }
}

/// A byte count, written with a unit: `512MiB`, `1.5TiB`, `100GB`, or plain
/// bytes. Binary units are `K`/`KiB`, `M`/`MiB`, ...; decimal ones `KB`,
/// `MB`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

/// How far a volume grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grow {
    /// To this size in bytes (rounded up to whole sectors or extents).
    To(u64),
    /// All the space the target disk (or the volume group) leaves.
    Max,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Size, String> {
        parse_size(s).map(Size)
    }
}

impl std::str::FromStr for Grow {
    type Err = String;
    fn from_str(s: &str) -> Result<Grow, String> {
        if s.trim().eq_ignore_ascii_case("max") {
            Ok(Grow::Max)
        } else {
            parse_size(s).map(Grow::To)
        }
    }
}

/// Parse `20GiB`, `1.5T`, `100GB`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || format!("{s:?} is not a size (such as 512MiB, 1.5TiB or 100GB)");
    if num.is_empty() {
        return Err(bad());
    }
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "p" | "pib" => 1 << 50,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "pb" => 1_000_000_000_000_000,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use B, KiB, MiB, GiB, TiB, or KB, MB, GB, TB)"
            ));
        }
    };
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("{s:?} is too large"));
    }
    let f: f64 = num.parse().map_err(|_| bad())?;
    let v = f * mult as f64;
    if !v.is_finite() || v >= u64::MAX as f64 {
        return Err(format!("{s:?} is too large"));
    }
    Ok(v.round() as u64)
}

/// The shortest exact spelling: `20GiB`, `1536MiB`, or bytes.
pub fn format_size(n: u64) -> String {
    for (shift, unit) in [
        (50, "PiB"),
        (40, "TiB"),
        (30, "GiB"),
        (20, "MiB"),
        (10, "KiB"),
    ] {
        if n != 0 && n.is_multiple_of(1u64 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl std::fmt::Display for Grow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grow::Max => f.write_str("max"),
            Grow::To(n) => f.write_str(&format_size(*n)),
        }
    }
}

/// A TOML value that is a string with a unit or an integer of bytes.
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(u64),
    Str(String),
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Size(n)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Grow {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Grow, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(Grow::To(n)),
            Raw::Str(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Serialize for Grow {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// `KEY=VALUE` from the command line (`--grow vg0/root=max`).
pub fn parse_pair<T: std::str::FromStr<Err = String>>(s: &str) -> Result<(String, T), String> {
    let (k, v) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("{s:?}: the name before = is empty"));
    }
    Ok((k.to_string(), v.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("20GiB").unwrap(), 20 << 30);
        assert_eq!(parse_size("20G").unwrap(), 20 << 30);
        assert_eq!(parse_size("1.5TiB").unwrap(), 3 << 39);
        assert_eq!(parse_size("100GB").unwrap(), 100_000_000_000);
        assert_eq!(parse_size(" 512 MiB ").unwrap(), 512 << 20);
        for bad in ["", "GiB", "12XB", "1.2.3G", "99999999999999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(20 << 30), "20GiB");
        assert_eq!(format_size(1536 << 20), "1536MiB");
        assert_eq!(format_size(1000), "1000");
        assert_eq!("max".parse::<Grow>().unwrap(), Grow::Max);
        assert_eq!("2G".parse::<Grow>().unwrap(), Grow::To(2 << 30));
    }

    #[test]
    fn toml_round_trip_and_unknown_keys() {
        let text = r#"
disks = ["a.img", "b.img"]
all_vgs = false
select = ["vg0/root"]
deselect = ["a.img:4"]
[targets]
"b.img" = 0
[target_size]
"a.img" = "1536MiB"
"b.img" = 1073741824
[grow]
"a.img:2" = "max"
"vg0/root" = "1GiB"
"#;
        let p: PlanSpec = toml::from_str(text).unwrap();
        assert_eq!(p.target_size["b.img"], Size(1 << 30));
        assert_eq!(p.grow["a.img:2"], Grow::Max);
        assert!(!p.all_vgs());
        let back: PlanSpec = toml::from_str(&toml::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let e = toml::from_str::<PlanSpec>("grown = {}")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `grown`"), "{e}");
        let e = toml::from_str::<PlanSpec>("[grow]\n\"x:1\" = \"lots\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a size"), "{e}");
    }
}
