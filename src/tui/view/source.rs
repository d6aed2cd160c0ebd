//! Drawing the source's screens: the disk tree with its details, the
//! selection and resize list, the receiver fields, the preflight, the
//! transfer and the report.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Sparkline, Wrap};

use super::{
    ASCII_BARS, bar, block, duration, focused, fs_name, grouped, mbit, pct, scroll, short,
};
use crate::inventory::{Content, Inventory};
use crate::tui::app::{App, FIELDS, TreeKind, pass_name};
use crate::units::human;

fn content_line(c: Option<&Content>) -> String {
    match c {
        None => "-".into(),
        Some(c) => {
            let mut s = c.fs.clone();
            if let Some(l) = &c.label {
                s.push_str(&format!(" \"{l}\""));
            }
            s
        }
    }
}

pub(super) fn draw_disks(f: &mut Frame, app: &App, area: Rect) {
    let Some(inv) = &app.inv else {
        let msg = match &app.inv_error {
            Some(e) => format!("Reading the disks failed: {e}\n\nr tries again."),
            None => "Reading the disks...".into(),
        };
        f.render_widget(
            Paragraph::new(msg)
                .wrap(Wrap { trim: false })
                .block(block(app, " Disks ")),
            area,
        );
        return;
    };
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let inner_w = left.width.saturating_sub(2) as usize;
    let barw = if inner_w >= 90 { 16 } else { 8 };
    let namew = inner_w.saturating_sub(barw + 2 + 10 + 10 + 3).max(8);
    let lines: Vec<Line> = app
        .tree
        .iter()
        .enumerate()
        .skip(scroll(
            app.tree_cursor,
            left.height.saturating_sub(2) as usize,
        ))
        .map(|(i, r)| {
            let (size, used, fs) = figures(inv, &r.name, r.kind);
            let indent = "  ".repeat(r.depth);
            let label = match r.kind {
                TreeKind::Disk | TreeKind::Vg => r.name.clone(),
                TreeKind::Partition => {
                    format!("part {}", r.name.rsplit(':').next().unwrap_or(&r.name))
                }
                TreeKind::Lv => r.name.rsplit('/').next().unwrap_or(&r.name).to_string(),
            };
            let name = format!(
                "{indent}{}",
                short(&label, namew.saturating_sub(indent.len()))
            );
            let text = format!(
                "{name:<namew$} {:>9} {:<9} {}",
                human(size),
                short(&fs, 9),
                bar(app, used, size, barw)
            );
            if i == app.tree_cursor {
                Line::styled(text, Style::default().add_modifier(Modifier::REVERSED))
            } else {
                Line::from(text)
            }
        })
        .collect();
    f.render_widget(
        Paragraph::new(lines).block(focused(block(app, " Disks "), !app.second_pane)),
        left,
    );
    let details = app
        .tree
        .get(app.tree_cursor)
        .map(|r| details(inv, &r.name, r.kind))
        .unwrap_or_default();
    f.render_widget(
        Paragraph::new(details)
            .wrap(Wrap { trim: false })
            .scroll((if app.second_pane { app.pane_scroll } else { 0 }, 0))
            .block(focused(block(app, " Details "), app.second_pane)),
        right,
    );
}

/// Size, used bytes and content of a tree row.
fn figures(inv: &Inventory, name: &str, kind: TreeKind) -> (u64, u64, String) {
    match kind {
        TreeKind::Disk => inv
            .disks
            .iter()
            .find(|d| d.path == name)
            .map(|d| {
                let t = match &d.table {
                    Some(crate::inventory::Table::Gpt { .. }) => "gpt".to_string(),
                    Some(crate::inventory::Table::Mbr { .. }) => "mbr".to_string(),
                    None => content_line(d.content.as_ref()),
                };
                (d.size, d.used_bytes, t)
            })
            .unwrap_or_default(),
        TreeKind::Partition => inv
            .disks
            .iter()
            .flat_map(|d| &d.partitions)
            .find(|p| p.volume == name)
            .map(|p| {
                (
                    p.size,
                    p.content.as_ref().map_or(0, |c| c.used_bytes),
                    p.content
                        .as_ref()
                        .map_or_else(|| p.type_name.clone(), |c| fs_name(&c.fs).to_string()),
                )
            })
            .unwrap_or_default(),
        TreeKind::Vg => inv
            .volume_groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| {
                let size = g.extent_count * g.extent_size;
                (size, size - g.free_extents * g.extent_size, "VG".into())
            })
            .unwrap_or_default(),
        TreeKind::Lv => inv
            .volume_groups
            .iter()
            .flat_map(|g| &g.lvs)
            .find(|l| l.volume == name)
            .map(|l| {
                (
                    l.size,
                    l.content.as_ref().map_or(0, |c| c.used_bytes),
                    l.content.as_ref().map_or("-".into(), |c| c.fs.clone()),
                )
            })
            .unwrap_or_default(),
    }
}

fn details(inv: &Inventory, name: &str, kind: TreeKind) -> Vec<Line<'static>> {
    let mut v: Vec<String> = Vec::new();
    match kind {
        TreeKind::Disk => {
            if let Some(d) = inv.disks.iter().find(|d| d.path == name) {
                v.push(d.path.clone());
                v.push(format!("size     {} ({} bytes)", human(d.size), d.size));
                v.push(format!("model    {}", d.model.as_deref().unwrap_or("-")));
                v.push(format!("serial   {}", d.serial.as_deref().unwrap_or("-")));
                v.push(format!(
                    "sectors  {} logical, {} physical",
                    d.logical_sector_size, d.physical_sector_size
                ));
                match &d.table {
                    Some(crate::inventory::Table::Gpt {
                        disk_guid, entries, ..
                    }) => v.push(format!("table    GPT, {entries} entries, {disk_guid}")),
                    Some(crate::inventory::Table::Mbr { disk_signature }) => {
                        v.push(format!("table    MBR, signature {disk_signature}"))
                    }
                    None => v.push(format!("content  {}", content_line(d.content.as_ref()))),
                }
                v.push(format!(
                    "used     {} ({}%)",
                    human(d.used_bytes),
                    d.used_percent
                ));
                v.push(if d.in_use.is_empty() {
                    "in use   no".into()
                } else {
                    format!("in use   {}", d.in_use.join("; "))
                });
            }
        }
        TreeKind::Partition => {
            if let Some(p) = inv
                .disks
                .iter()
                .flat_map(|d| &d.partitions)
                .find(|p| p.volume == name)
            {
                v.push(p.volume.clone());
                v.push(format!("type     {}", p.type_name));
                if let Some(n) = &p.name {
                    v.push(format!("name     {n}"));
                }
                v.push(format!("start    {} (LBA {})", human(p.start), p.start_lba));
                v.push(format!("size     {} ({} bytes)", human(p.size), p.size));
                content_details(&mut v, p.content.as_ref());
            }
        }
        TreeKind::Vg => {
            if let Some(g) = inv.volume_groups.iter().find(|g| g.name == name) {
                v.push(format!("volume group {}", g.name));
                v.push(format!("extent   {}", human(g.extent_size)));
                v.push(format!(
                    "size     {} ({} extents, {} free)",
                    human(g.extent_count * g.extent_size),
                    g.extent_count,
                    g.free_extents
                ));
                for p in &g.pvs {
                    v.push(format!(
                        "PV       {}",
                        p.volume.as_deref().unwrap_or("MISSING")
                    ));
                }
            }
        }
        TreeKind::Lv => {
            if let Some(l) = inv
                .volume_groups
                .iter()
                .flat_map(|g| &g.lvs)
                .find(|l| l.volume == name)
            {
                v.push(l.volume.clone());
                v.push(format!("size     {} ({} bytes)", human(l.size), l.size));
                v.push(format!(
                    "segments {} ({})",
                    l.segments.len(),
                    l.segments
                        .iter()
                        .map(|s| s.kind.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                content_details(&mut v, l.content.as_ref());
            }
        }
    }
    v.into_iter().map(Line::from).collect()
}

fn content_details(v: &mut Vec<String>, c: Option<&Content>) {
    let Some(c) = c else {
        v.push("content  -".into());
        return;
    };
    v.push(format!("fs       {}", c.fs));
    if let Some(l) = &c.label {
        v.push(format!("label    {l}"));
    }
    if let Some(u) = &c.uuid {
        v.push(format!("uuid     {u}"));
    }
    v.push(format!(
        "used     {} ({}%)",
        human(c.used_bytes),
        c.used_percent
    ));
    if let Some(e) = &c.error {
        v.push(format!("error    {e}"));
    }
}

pub(super) fn draw_plan(f: &mut Frame, app: &App, area: Rect) {
    let [list, preview] =
        Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(area);
    let w = list.width.saturating_sub(2) as usize;
    let longest = app
        .plan_rows
        .iter()
        .map(|r| r.volume.chars().count())
        .max()
        .unwrap_or(8);
    let namew = longest.min(w.saturating_sub(35 + 20)).clamp(8, 40);
    let mut lines = vec![Line::styled(
        format!(
            "    {:<namew$} {:<7} {:>9}  {:>10}  action",
            "volume", "fs", "size", "new size"
        ),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    let rows = plan_figures(app);
    let h = list.height.saturating_sub(3) as usize;
    for (i, (sel, vol, fs, size, new, action)) in
        rows.iter().enumerate().skip(scroll(app.plan_cursor, h))
    {
        let mark = if *sel { "[x]" } else { "[ ]" };
        let text = format!(
            "{mark} {:<namew$} {:<7} {:>9}  {:>10}  {}",
            short(vol, namew),
            short(fs_name(fs), 7),
            human(*size),
            if *sel { human(*new) } else { "-".into() },
            action
        );
        lines.push(if i == app.plan_cursor {
            Line::styled(text, Style::default().add_modifier(Modifier::REVERSED))
        } else {
            Line::from(text)
        });
    }
    let title = format!(
        " Select and grow (all volume groups: {}) ",
        if app.spec.all_vgs() { "on" } else { "off" }
    );
    f.render_widget(
        Paragraph::new(lines).block(focused(block(app, &title), !app.second_pane)),
        list,
    );
    let text: Vec<Line> = match &app.planned {
        Err(e) => vec![Line::from(format!("The plan cannot be made: {e}"))],
        Ok(p) => {
            let mut v = Vec::new();
            for d in &p.disks {
                v.push(Line::styled(
                    format!(
                        "{} ({}, {}) -> target {} ({})",
                        d.source,
                        d.table,
                        human(d.source_size),
                        d.target,
                        human(d.target_size)
                    ),
                    Style::default().add_modifier(Modifier::BOLD),
                ));
                for r in &d.rows {
                    v.push(Line::from(format!(
                        "  {:>2} {:<7} {:>9} @{:>9} -> {:>9} @{:>9}  {}",
                        r.number.map_or("-".into(), |n| n.to_string()),
                        short(fs_name(&r.fs), 7),
                        human(r.size),
                        human(r.start),
                        human(r.new_size),
                        human(r.new_start),
                        r.action
                    )));
                }
            }
            for g in &p.vgs {
                v.push(Line::from(format!(
                    "VG {}: free {} -> {}{}",
                    g.name,
                    human(g.free_before),
                    human(g.free_after),
                    if g.sent { "" } else { " (not sent)" }
                )));
            }
            let bytes: u64 = p.volumes().map(|v| v.used.total()).sum();
            v.push(Line::from(format!("to read and send: {}", human(bytes))));
            v
        }
    };
    f.render_widget(
        Paragraph::new(text)
            .scroll((if app.second_pane { app.pane_scroll } else { 0 }, 0))
            .block(focused(block(app, " Before -> after "), app.second_pane)),
        preview,
    );
}

/// Per selection row: selected, volume, fs, size, new size, action.
fn plan_figures(app: &App) -> Vec<(bool, String, String, u64, u64, String)> {
    let Ok(p) = &app.planned else {
        return app
            .plan_rows
            .iter()
            .map(|r| (false, r.volume.clone(), "-".into(), 0, 0, String::new()))
            .collect();
    };
    app.plan_rows
        .iter()
        .map(|r| {
            if let Some(x) = p
                .disks
                .iter()
                .flat_map(|d| &d.rows)
                .find(|x| x.volume == r.volume)
            {
                (
                    x.selected,
                    r.volume.clone(),
                    x.fs.clone(),
                    x.size,
                    x.new_size,
                    x.action.clone(),
                )
            } else if let Some(l) = p
                .vgs
                .iter()
                .flat_map(|g| &g.lvs)
                .find(|l| l.volume == r.volume)
            {
                (
                    l.selected,
                    r.volume.clone(),
                    l.fs.clone(),
                    l.size,
                    l.new_size,
                    l.action.clone(),
                )
            } else {
                (
                    false,
                    r.volume.clone(),
                    "-".into(),
                    0,
                    0,
                    "not on a planned disk".into(),
                )
            }
        })
        .collect()
}

pub(super) fn draw_receiver(f: &mut Frame, app: &App, area: Rect) {
    let mut lines = vec![
        Line::from("The receiver's console shows its address, fingerprint and pairing code."),
        Line::from(""),
    ];
    for (i, name) in FIELDS.iter().enumerate() {
        let cursor = if i == app.field { "_" } else { "" };
        let text = format!(" {:<12} {}{cursor}", name, app.fields[i]);
        lines.push(if i == app.field {
            Line::styled(text, Style::default().add_modifier(Modifier::REVERSED))
        } else {
            Line::from(text)
        });
    }
    lines.push(Line::from(""));
    lines.push(Line::from(
        "Compare with the fingerprint on the receiver's screen, group by group:",
    ));
    let g = grouped(&app.fields[1]);
    let groups: Vec<&str> = g.split(' ').filter(|x| !x.is_empty()).collect();
    for half in groups.chunks(8) {
        lines.push(Line::from(format!("    {}", half.join(" "))));
    }
    lines.push(Line::from(""));
    match (&app.net_stage, &app.conn_test) {
        (Some(s), _) => lines.push(Line::from(format!("connection test: {s}"))),
        (None, Some(Ok(s))) => lines.push(Line::from(format!("connection test: OK, {s}"))),
        (None, Some(Err(e))) => lines.push(Line::from(format!("connection test FAILED: {e}"))),
        (None, None) => lines.push(Line::from(
            "F5 tests the connection (TLS, fingerprint, pairing code).",
        )),
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(app, " Receiver ")),
        area,
    );
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.1} ms"))
}

pub(super) fn draw_preflight(f: &mut Frame, app: &App, area: Rect) {
    let [net, rate] = Layout::vertical([Constraint::Min(8), Constraint::Length(6)]).areas(area);
    let mut lines = Vec::new();
    match (&app.net_stage, &app.net) {
        (Some(s), _) => lines.push(Line::from(format!("measuring: {s}"))),
        (None, None) => lines.push(Line::from("no measurement yet (c measures)")),
        (None, Some(Err(e))) => lines.push(Line::from(format!("the check FAILED: {e}"))),
        (None, Some(Ok(n))) => {
            lines.push(Line::from(format!(
                "receiver   {} ({})",
                n.receiver, n.receiver_name
            )));
            lines.push(Line::from(format!(
                "latency    min {} avg {} max {}   jitter {}",
                opt_ms(n.latency_min_ms),
                opt_ms(n.latency_avg_ms),
                opt_ms(n.latency_max_ms),
                opt_ms(n.jitter_ms)
            )));
            lines.push(Line::from(format!(
                "loss       {:.1}% ({} of {} probes answered)",
                n.loss_percent, n.probes_received, n.probes_sent
            )));
            lines.push(Line::from(format!(
                "bandwidth  {:.0} Mbit/s",
                n.bandwidth_mbit_s
            )));
            lines.push(Line::from(format!(
                "disk read  {}   compression {} (ratio {})",
                n.disk_read_mb_s
                    .map_or("-".into(), |x| format!("{x:.0} MB/s")),
                n.compression_mb_s
                    .map_or("-".into(), |x| format!("{x:.0} MB/s")),
                n.compression_ratio
                    .map_or("-".into(), |x| format!("{x:.2}"))
            )));
            lines.push(Line::from(format!(
                "to send    {} used{}",
                n.used_bytes.map_or("-".into(), human),
                n.estimated_wire_bytes.map_or(String::new(), |w| format!(
                    ", about {} on the wire",
                    human(w)
                ))
            )));
            lines.push(Line::from(format!(
                "ETA        {}{}",
                n.eta_seconds.map_or("-".into(), duration),
                n.bottleneck
                    .map_or(String::new(), |b| format!(" (bound by {})", bottleneck(b)))
            )));
            for w in &n.warnings {
                lines.push(Line::from(format!("warning: {w}")));
            }
        }
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(app, " Preflight ")),
        net,
    );
    let mut r = vec![Line::from(format!(
        "pass: {}   task: {}",
        pass_name(app.pass),
        app.task
    ))];
    r.push(Line::from(format!(
        "default limit: {}",
        mbit(app.schedule.mbit)
    )));
    for w in &app.schedule.windows {
        r.push(Line::from(format!("window: {w}  ({})", mbit(w.mbit))));
    }
    f.render_widget(
        Paragraph::new(r).block(block(app, " Rate limit schedule ")),
        rate,
    );
}

fn bottleneck(b: crate::source::netcheck::Bottleneck) -> &'static str {
    use crate::source::netcheck::Bottleneck::*;
    match b {
        Network => "the network",
        Disk => "the disk",
        Compression => "compression",
        RateLimit => "the rate limit",
    }
}

pub(super) fn draw_transfer(f: &mut Frame, app: &App, area: Rect) {
    let snap = app.snapshot().unwrap_or_default();
    let n = snap.volumes.len() as u16;
    let [vols, total, spark] = Layout::vertical([
        Constraint::Min(3.min(n + 2)),
        Constraint::Length(5),
        Constraint::Length(5),
    ])
    .areas(area);
    let w = vols.width.saturating_sub(2) as usize;
    let barw = w.saturating_sub(36).clamp(10, 60);
    let namew = w.saturating_sub(barw + 3 + 20).max(8);
    let lines: Vec<Line> = snap
        .volumes
        .iter()
        .map(|v| {
            let done = v.bytes_sent + v.bytes_skipped;
            Line::from(format!(
                "{:<namew$} {} {:>4} {:>9}",
                short(&v.name, namew),
                bar(app, done, v.used_bytes, barw),
                pct(done, v.used_bytes),
                human(v.used_bytes)
            ))
        })
        .collect();
    f.render_widget(Paragraph::new(lines).block(block(app, " Volumes ")), vols);
    let used = snap.used_bytes();
    let done = snap.done_bytes();
    let secs = snap.started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    let avg = if secs > 0.0 {
        snap.bytes_sent as f64 / secs
    } else {
        0.0
    };
    let now = app.speed.last().copied().unwrap_or(0);
    let eta = if avg > 0.0 && used > done {
        duration((used - done) as f64 / avg)
    } else {
        "-".into()
    };
    let ratio = if snap.wire_bytes > 0 {
        format!("{:.2}", snap.bytes_sent as f64 / snap.wire_bytes as f64)
    } else {
        "-".into()
    };
    let skipped: u64 = snap.volumes.iter().map(|v| v.bytes_skipped).sum();
    let stage = if app.sent.is_some() {
        "Done".to_string()
    } else {
        snap.stage.name().to_string()
    };
    let tl = vec![
        Line::from(format!(
            "{} {} {} of {}",
            bar(app, done, used, w.saturating_sub(30).max(10)),
            pct(done, used),
            human(done),
            human(used)
        )),
        Line::from(format!(
            "state {stage}   now {}/s   avg {}/s   ETA {eta}",
            human(now),
            human(avg as u64)
        )),
        Line::from(format!(
            "wire {}   compression {ratio}   skipped {}   limit {}",
            human(snap.wire_bytes),
            human(skipped),
            mbit(app.rate.get())
        )),
    ];
    let title = format!(" {} pass, task {} ", pass_name(app.pass), app.task);
    f.render_widget(Paragraph::new(tl).block(block(app, &title)), total);
    let data: Vec<u64> = app
        .speed
        .iter()
        .rev()
        .take(spark.width.saturating_sub(2) as usize)
        .rev()
        .copied()
        .collect();
    let mut s = Sparkline::default()
        .block(block(app, " Throughput "))
        .data(&data);
    if app.ascii {
        s = s.bar_set(ASCII_BARS);
    }
    f.render_widget(s, spark);
}

pub(super) fn draw_report(f: &mut Frame, app: &App, area: Rect) {
    let mut lines = Vec::new();
    match &app.sent {
        None => lines.push(Line::from("no pass has ended yet")),
        Some(Err(e)) => {
            lines.push(Line::styled(
                format!("The {} pass FAILED", pass_name(app.pass)),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            lines.push(Line::from(e.clone()));
            lines.push(Line::from(""));
            lines.push(Line::from(
                "Start it again (i, or back to the preflight): the same task resumes.",
            ));
        }
        Some(Ok(r)) => {
            let pace = r.used_rate().map_or(String::new(), |b| {
                format!(" ({}/s of used data)", human(b as u64))
            });
            lines.push(Line::styled(
                format!(
                    "The {} pass of task {} FINISHED in {}{pace}",
                    pass_name(app.pass),
                    r.task,
                    duration(r.seconds)
                ),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            let middle = (r.seconds - r.seconds_connecting - r.seconds_finishing).max(0.0);
            lines.push(Line::from(format!(
                "took: connecting {}, {} {}, receiver sync and read-back {}",
                fine(r.seconds_connecting),
                if r.compared > 0 {
                    "comparing"
                } else {
                    "sending"
                },
                fine(middle),
                fine(r.seconds_finishing)
            )));
            lines.push(Line::from(format!(
                "{}{}",
                r.sent_line(),
                if r.mismatches.is_empty() {
                    String::new()
                } else {
                    format!(", {} chunk(s) DIFFER", r.mismatches.len())
                }
            )));
            lines.push(Line::from(""));
            let w = area.width.saturating_sub(2) as usize;
            let namew = w.saturating_sub(48).clamp(8, 40);
            lines.push(Line::styled(
                format!(
                    "{:<namew$} {:>10} {:>10} {:>10}  digest",
                    "volume", "used", "sent", "skipped"
                ),
                Style::default().add_modifier(Modifier::BOLD),
            ));
            for v in &r.volumes {
                lines.push(Line::from(format!(
                    "{:<namew$} {:>10} {:>10} {:>10}  {}",
                    short(&v.name, namew),
                    human(v.used_bytes),
                    human(v.bytes_sent),
                    human(v.bytes_skipped),
                    v.digest
                        .as_deref()
                        .map_or("-".to_string(), |d| d[..12.min(d.len())].to_string())
                )));
            }
            for m in r.mismatches.iter().take(5) {
                lines.push(Line::from(format!(
                    "differs: {} at byte {} ({} bytes)",
                    m.volume, m.offset, m.len
                )));
            }
        }
    }
    lines.push(Line::from(""));
    match &app.state_dir {
        Some(d) => lines.push(Line::from(format!(
            "reports: {}/reports/{}_source_report.json; the receiver keeps its own (its API, /v1/tasks/{}/report)",
            d.display(),
            app.task,
            app.task
        ))),
        None => lines.push(Line::from(format!(
            "the receiver keeps the task report: its API, /v1/tasks/{}/report",
            app.task
        ))),
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(app, " Report ")),
        area,
    );
}

/// Seconds to a tenth under 10 s, else as [`duration`] gives them.
fn fine(s: f64) -> String {
    if s < 10.0 {
        format!("{:.1}s", s.max(0.0))
    } else {
        duration(s)
    }
}
