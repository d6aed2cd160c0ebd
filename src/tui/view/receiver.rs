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
    let room = tasks.height.saturating_sub(2) as usize;
    // Running tasks first, then the most recently updated.
    let mut order: Vec<&crate::report::task::TaskStatus> = app.rx_tasks.iter().collect();
    order.sort_by(|a, b| b.running.cmp(&a.running).then(b.updated.cmp(&a.updated)));
    let mut tl = Vec::new();
    if order.is_empty() {
        tl.push(Line::from("No source has connected yet."));
    }
    // Every task gets its progress line, and its first error cut to a row;
    // the rows left go, task by task in that order, to the whole error,
    // the source and report, and the report's result line.
    let rows = |l: &Line| -> usize { l.width().max(1).div_ceil(w.max(1)) };
    let parts: Vec<TaskLines> = order.iter().map(|t| task_lines(app, t, w)).collect();
    let needed: usize = parts.iter().map(|p| 1 + p.error.is_some() as usize).sum();
    if needed > room {
        let mut left = room.saturating_sub(1);
        let mut shown = 0;
        for p in parts {
            let n = 1 + p.error.is_some() as usize;
            if n > left {
                break;
            }
            left -= n;
            shown += 1;
            tl.push(p.head);
            tl.extend(p.error.map(|e| e.cut));
        }
        tl.push(Line::from(format!(
            "... {} more task(s): the control API lists them all (GET /v1/tasks)",
            order.len() - shown
        )));
    } else {
        let mut left = room - needed;
        for p in parts {
            tl.push(p.head);
            if let Some(e) = p.error {
                let extra = rows(&e.whole) - 1;
                if extra <= left {
                    left -= extra;
                    tl.push(e.whole);
                } else {
                    tl.push(e.cut);
                }
            }
            for l in p.details {
                let n = rows(&l);
                if n > left {
                    // The last row left gets the line's start.
                    if left > 0 {
                        left -= 1;
                        let cut: String = l.to_string().chars().take(w).collect();
                        tl.push(Line::from(cut));
                    }
                    break;
                }
                left -= n;
                tl.push(l);
            }
        }
    }
    let title = format!(" Sessions and tasks ({}) ", app.rx_tasks.len());
    f.render_widget(
        Paragraph::new(tl)
            .wrap(Wrap { trim: false })
            .block(block(app, &title)),
        tasks,
    );
}

/// A task's first error, whole and cut to one row.
struct ErrorLine<'a> {
    whole: Line<'a>,
    cut: Line<'a>,
}

/// One task on the receiver's screen: its progress line, its first error,
/// and the rest in the order they are worth rows (a second error, where it
/// comes from and its report file, the report's result line).
struct TaskLines<'a> {
    head: Line<'a>,
    error: Option<ErrorLine<'a>>,
    details: Vec<Line<'a>>,
}

fn task_lines<'a>(app: &App, t: &crate::report::task::TaskStatus, w: usize) -> TaskLines<'a> {
    let barw = w.saturating_sub(58).clamp(10, 60);
    let head = Line::from(format!(
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
    ));
    let error = t.errors.first().map(|e| {
        let whole = format!("  error: {e}");
        let cut: String = whole.chars().take(w).collect();
        ErrorLine {
            whole: Line::from(whole),
            cut: Line::from(cut),
        }
    });
    let mut details = Vec::new();
    for e in t.errors.iter().skip(1).take(1) {
        details.push(Line::from(format!("  error: {e}")));
    }
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
    details.push(Line::from(more));
    if let Some((_, line)) = app.rx_reports.get(&t.task) {
        details.push(Line::from(format!("  {line}")));
    }
    TaskLines {
        head,
        error,
        details,
    }
}
