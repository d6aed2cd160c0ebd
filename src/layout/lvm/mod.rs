//! LVM2 (being written)

/// LVM's PV/VG/LV UUID text form: 32 characters grouped 6-4-4-4-4-4-6.
pub fn format_uuid(raw: &[u8]) -> String {
    let s: String = raw
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    let groups = [6, 4, 4, 4, 4, 4, 6];
    let mut out = String::new();
    let mut rest: &str = &s;
    for (i, g) in groups.iter().enumerate() {
        let n = (*g).min(rest.len());
        if i > 0 {
            out.push('-');
        }
        out.push_str(&rest[..n]);
        rest = &rest[n..];
    }
    out
}
