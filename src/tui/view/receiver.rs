//! Drawing the role screen (network interfaces) and the receiver's
//! screens: the target disks, then the address, fingerprint, pairing
//! code and the sessions while it receives.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

use super::{bar, block, pct, short};
use crate::tui::app::App;
use crate::units::human;

pub(super) fn draw_role(f: &mut Frame, app: &App, area: Rect) {
    let [role, net] = Layout::vertical([Constraint::Length(8), Constraint::Min(4)]).areas(area);
    let text = vec![
        Line::from("  What is this machine?"),
        Line::from(""),
        Line::from("  s  Source: read this server's disks and send them to a receiver"),
        Line::from("  r  Receiver: write the disks a source sends"),
        Line::from("  !  A shell (exit it to come back here)"),
    ];
    f.render_widget(
        Paragraph::new(text).block(block(app, " ferry: bootable block migration ")),
        role,
    );
    let mut lines = Vec::new();
    if app.ifaces.is_empty() {
        lines.push(Line::from("no network interfaces"));
    }
    for (i, n) in app.ifaces.iter().enumerate() {
        let text = format!(
            "{:<10} {:<8} {:<10} {:<17} {}",
            short(&n.name, 10),
            n.state,
            if n.carrier { "carrier" } else { "no carrier" },
            n.mac,
            if n.addrs.is_empty() {
                "no address".to_string()
            } else {
                n.addrs.join(", ")
            }
        );
        lines.push(if i == app.iface_cursor {
            Line::styled(text, Style::default().add_modifier(Modifier::REVERSED))
        } else {
            Line::from(text)
        });
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(app, " Network (d: DHCP, i: static address) ")),
        net,
    );
}

pub(super) fn draw_targets(f: &mut Frame, app: &App, area: Rect) {
    let mut lines = vec![
        Line::from("Choose the disks this receiver may overwrite (Space), in target order."),
        Line::from(""),
    ];
    let cands = app.target_candidates();
    if cands.is_empty() {
        lines.push(Line::from(match &app.inv_error {
            Some(e) => format!("Reading the disks failed: {e}"),
            None => "Reading the disks...".into(),
        }));
    }
    for (i, d) in cands.iter().enumerate() {
        let order = app.chosen.iter().position(|c| *c == d.path);
        let mark = match order {
            Some(n) => format!("[{n}]"),
            None => "[ ]".into(),
        };
        let text = format!(
            "{mark} {} {} model {} serial {}{}",
            d.path,
            human(d.size),
            d.model.as_deref().unwrap_or("-"),
            d.serial.as_deref().unwrap_or("-"),
            crate::tui::app::disk_state(d)
        );
        lines.push(if i == app.target_cursor {
            Line::styled(text, Style::default().add_modifier(Modifier::REVERSED))
        } else {
            Line::from(text)
        });
    }
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block(app, " Target disks ")),
        area,
    );
}

pub(super) fn draw_receiving(f: &mut Frame, app: &App, area: Rect) {
    let Some(rx) = &app.rx else {
        f.render_widget(
            Paragraph::new("starting...").block(block(app, " Receiver ")),
            area,
        );
        return;
    };
    let [top, tasks] = Layout::vertical([Constraint::Length(12), Constraint::Min(4)]).areas(area);
    let mut lines = Vec::new();
    let addrs = if app.addresses.is_empty() {
        rx.data.ip().to_string()
    } else {
        app.addresses.join(", ")
    };
    lines.push(Line::from(format!(
        "address  {addrs}   data port {}   control API {}",
        rx.data.port(),
        rx.api.port()
    )));
    let fp = crate::proto::tls::fingerprint_grouped(&rx.fingerprint);
    let groups: Vec<&str> = fp.split(' ').collect();
    lines.push(Line::from(format!(
        "fingerprint  {}",
        groups[..8.min(groups.len())].join(" ")
    )));
    if groups.len() > 8 {
        lines.push(Line::from(format!(
            "             {}",
            groups[8..].join(" ")
        )));
    }
    for row in crate::tui::big::big(&rx.code) {
        lines.push(Line::from(format!("  {row}")));
    }
    lines.push(Line::from(format!("pairing code {}", rx.code)));
    lines.push(Line::from(format!(
        "targets      {}",
        app.chosen
            .iter()
            .enumerate()
            .map(|(i, t)| format!("{i}: {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    )));
    f.render_widget(Paragraph::new(lines).block(block(app, " Receiver ")), top);
    let w = tasks.width.saturating_sub(2) as usize;
    let mut tl = Vec::new();
    if app.rx_tasks.is_empty() {
        tl.push(Line::from("No source has connected yet."));
    }
    for t in &app.rx_tasks {
        let barw = w.saturating_sub(58).clamp(10, 60);
        tl.push(Line::from(format!(
            "{:<12} {:<10} {:<11} {} {:>4} {:>12}",
            short(&t.task, 12),
            format!("{:?}", t.state),
            t.pass,
            bar(app, t.bytes_done, t.bytes_total, barw),
            pct(t.bytes_done, t.bytes_total),
            if t.running {
                format!("{}/s", human(t.throughput as u64))
            } else {
                String::new()
            },
        )));
        let mut more = format!(
            "  from {} ({}), {} of {}",
            t.source,
            t.peer,
            human(t.bytes_done),
            human(t.bytes_total)
        );
        if !t.running
            && let Some(d) = &app.state_dir
        {
            more.push_str(&format!(
                "; report {}/reports/{}_report.json",
                d.display(),
                t.task
            ));
        }
        tl.push(Line::from(more));
        if let Some((_, line)) = app.rx_reports.get(&t.task) {
            tl.push(Line::from(format!("  {line}")));
        }
        for e in t.errors.iter().take(2) {
            tl.push(Line::from(format!("  error: {e}")));
        }
    }
    f.render_widget(
        Paragraph::new(tl)
            .wrap(Wrap { trim: false })
            .block(block(app, " Sessions and tasks ")),
        tasks,
    );
}
