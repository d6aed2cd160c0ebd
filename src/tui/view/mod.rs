//! Drawing the TUI: a header with the steps, the screen, a status line and
//! the current screen's keys. Everything fits 80x24; larger terminals get
//! wider panes. With `ascii`, borders and bars use plain ASCII (serial
//! consoles, TERM=vt100).
//!
//! This file holds the frame and the helpers every screen uses; the
//! screens are in `source` (the source's steps) and `receiver` (the role
//! screen and the receiver's), the dialogs in `dialogs`.

mod dialogs;
mod receiver;
mod source;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style};
use ratatui::symbols;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};

use super::app::{App, Screen};
use dialogs::draw_modal;
use receiver::{draw_receiving, draw_role, draw_targets};
use source::{draw_disks, draw_plan, draw_preflight, draw_receiver, draw_report, draw_transfer};

const ASCII_BORDER: symbols::border::Set = symbols::border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

const ASCII_BARS: symbols::bar::Set = symbols::bar::Set {
    full: "#",
    seven_eighths: "#",
    three_quarters: "#",
    five_eighths: "=",
    half: "=",
    three_eighths: "-",
    one_quarter: "-",
    one_eighth: ".",
    empty: " ",
};

fn block<'a>(app: &App, title: &'a str) -> Block<'a> {
    let b = Block::default().borders(Borders::ALL).title(title);
    if app.ascii {
        b.border_set(ASCII_BORDER)
    } else {
        b
    }
}

/// The pane that has the keys: a bold title (and border).
pub(super) fn focused(b: Block<'_>, on: bool) -> Block<'_> {
    if on {
        b.border_style(Style::default().add_modifier(Modifier::BOLD))
            .title_style(Style::default().add_modifier(Modifier::BOLD))
    } else {
        b
    }
}

/// A text bar `[####......]` of `width` cells.
fn bar(app: &App, part: u64, whole: u64, width: usize) -> String {
    let w = width.max(1);
    let filled = if whole == 0 {
        0
    } else {
        ((part as u128 * w as u128) / whole as u128).min(w as u128) as usize
    };
    let (on, off) = if app.ascii {
        ('#', '.')
    } else {
        ('█', '░')
    };
    format!(
        "[{}{}]",
        on.to_string().repeat(filled),
        off.to_string().repeat(w - filled)
    )
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    // A long refusal wraps onto a second line.
    let status_rows = if app.status.chars().count() > area.width as usize {
        2
    } else {
        1
    };
    let [head, body, status, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(status_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    f.render_widget(Paragraph::new(header(app)), head);
    let body = if app.show_log && matches!(app.screen, Screen::Transfer | Screen::Report) {
        let [top, log] = Layout::vertical([Constraint::Min(5), Constraint::Length(7)]).areas(body);
        draw_log(f, app, log);
        top
    } else {
        body
    };
    match app.screen {
        Screen::Role => draw_role(f, app, body),
        Screen::Disks => draw_disks(f, app, body),
        Screen::Plan => draw_plan(f, app, body),
        Screen::Receiver => draw_receiver(f, app, body),
        Screen::Preflight => draw_preflight(f, app, body),
        Screen::Transfer => draw_transfer(f, app, body),
        Screen::Report => draw_report(f, app, body),
        Screen::Targets => draw_targets(f, app, body),
        Screen::Receiving => draw_receiving(f, app, body),
    }
    f.render_widget(
        Paragraph::new(app.status.as_str())
            .wrap(Wrap { trim: false })
            .style(Style::default().add_modifier(Modifier::BOLD)),
        status,
    );
    f.render_widget(
        Paragraph::new(app.keys()).style(Style::default().add_modifier(Modifier::REVERSED)),
        keys,
    );
    if let Some(m) = &app.modal {
        draw_modal(f, app, m, area);
    }
}

fn header(app: &App) -> Line<'static> {
    let mut spans = vec![Span::styled(
        "ferry ",
        Style::default().add_modifier(Modifier::BOLD),
    )];
    match app.screen {
        Screen::Role => {
            spans.push(Span::raw("- choose a role"));
            return Line::from(spans);
        }
        Screen::Targets | Screen::Receiving => {
            spans.push(Span::raw(format!("- receiver - {}", app.screen.title())));
            return Line::from(spans);
        }
        _ => {}
    }
    for (i, s) in Screen::STEPS.iter().enumerate() {
        let name = match s {
            Screen::Plan => "Select",
            other => other.title(),
        };
        let text = format!(" {}.{} ", i + 1, name);
        if *s == app.screen {
            spans.push(Span::styled(
                text,
                Style::default().add_modifier(Modifier::REVERSED),
            ));
        } else {
            spans.push(Span::raw(text));
        }
    }
    Line::from(spans)
}

/// First row to show so that `cursor` stays in a window of `h` rows.
fn scroll(cursor: usize, h: usize) -> usize {
    if h == 0 || cursor < h {
        0
    } else {
        cursor + 1 - h
    }
}

fn short(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        s.to_string()
    } else if w <= 1 {
        s.chars().take(w).collect()
    } else {
        // Keep the end: it names the partition or LV.
        let tail: String = s.chars().skip(n - (w - 1)).collect();
        format!("~{tail}")
    }
}

/// Short names for the long blkid types.
fn fs_name(fs: &str) -> &str {
    match fs {
        "LVM2_member" => "LVM PV",
        "crypto_LUKS" => "LUKS",
        "linux_raid_member" => "RAID",
        other => other,
    }
}

fn grouped(fp: &str) -> String {
    let hex: String = fp.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    hex.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn mbit(m: u64) -> String {
    if m == 0 {
        "none".into()
    } else {
        format!("{m} Mbit/s")
    }
}

pub fn duration(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn draw_log(f: &mut Frame, app: &App, area: Rect) {
    let h = area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = app
        .log
        .iter()
        .skip(app.log.len().saturating_sub(h))
        .map(|l| Line::from(l.clone()))
        .collect();
    f.render_widget(Paragraph::new(lines).block(block(app, " Log ")), area);
}
