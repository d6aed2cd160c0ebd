//! `ferry plan --explain`: before and after, per disk and per volume group.

use std::fmt::Write;

use super::layout::Planned;
use crate::units::human;

/// The plan as text tables, one per disk and volume group, then the steps.
pub fn explain(p: &Planned) -> String {
    let mut s = String::new();
    for d in &p.disks {
        let _ = writeln!(
            s,
            "{} ({}, {}) -> target {} ({}{})",
            d.source,
            d.table,
            human(d.source_size),
            d.target,
            human(d.target_size),
            if d.needed < d.target_size {
                format!(", partitions need {}", human(d.needed))
            } else {
                String::new()
            }
        );
        let mut rows = vec![[
            "#".to_string(),
            "name".into(),
            "fs".into(),
            "start".into(),
            "size".into(),
            "used".into(),
            "new start".into(),
            "new size".into(),
            "action".into(),
        ]];
        for r in &d.rows {
            rows.push([
                r.number.map_or("-".into(), |n| n.to_string()),
                if r.name.is_empty() {
                    "-".into()
                } else {
                    r.name.clone()
                },
                r.fs.clone(),
                human(r.start),
                human(r.size),
                if r.selected {
                    human(r.used)
                } else {
                    "-".into()
                },
                human(r.new_start),
                human(r.new_size),
                r.action.clone(),
            ]);
        }
        table(&mut s, &rows);
        s.push('\n');
    }
    for vg in &p.vgs {
        let _ = writeln!(
            s,
            "volume group {}{}: extent {}, free {} -> {}",
            vg.name,
            if vg.sent { "" } else { " (not migrated)" },
            human(vg.extent_size),
            human(vg.free_before),
            human(vg.free_after)
        );
        let mut rows = vec![[
            "lv".to_string(),
            "fs".into(),
            "size".into(),
            "used".into(),
            "new size".into(),
            "action".into(),
        ]];
        for l in &vg.lvs {
            rows.push([
                l.volume.clone(),
                l.fs.clone(),
                human(l.size),
                if l.selected {
                    human(l.used)
                } else {
                    "-".into()
                },
                human(l.new_size),
                l.action.clone(),
            ]);
        }
        table(&mut s, &rows);
        s.push('\n');
    }
    let steps: Vec<String> = p
        .disks
        .iter()
        .flat_map(|d| {
            d.target_disk
                .steps
                .iter()
                .map(move |st| format!("target {}: {}", d.target, st.describe()))
        })
        .collect();
    let _ = writeln!(s, "after the data: write the partition tables, then");
    if steps.is_empty() {
        let _ = writeln!(s, "  nothing to grow");
    }
    for st in steps {
        let _ = writeln!(s, "  {st}");
    }
    let bytes: u64 = p.volumes().map(|v| v.used.total()).sum();
    let _ = writeln!(s, "to read and send: {} ({bytes} bytes)", human(bytes));
    for n in &p.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

fn table<const N: usize>(s: &mut String, rows: &[[String; N]]) {
    let mut w = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    for r in rows {
        let mut line = String::from("  ");
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<width$}  ", width = w[i]);
            }
        }
        let _ = writeln!(s, "{}", line.trim_end());
    }
}
