//! Drawing the dialogs over a screen: help, the confirmations (which
//! restate what is overwritten) and the input line.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::block;
use crate::tui::app::{App, Modal};

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

pub(super) fn draw_modal(f: &mut Frame, app: &App, m: &Modal, area: Rect) {
    let (title, lines): (&str, Vec<String>) = match m {
        Modal::Help => (
            " Help ",
            vec![
                "Arrows or j/k move; Tab next field; Space toggles;".into(),
                "Enter goes on; Esc goes back; F1 or ? this help;".into(),
                "q quits (asks first).".into(),
                String::new(),
                "Steps: 1 disks, 2 select and grow, 3 receiver,".into(),
                "4 preflight (network, rate schedule), 5 transfer,".into(),
                "6 report. Logs: the log pane (l) and the log file.".into(),
                "Everything here can be saved as a job file (w on".into(),
                "step 2) and loaded with `ferry tui --job FILE`.".into(),
            ],
        ),
        Modal::ConfirmQuit => (
            " Quit ",
            vec![if app.running() {
                "A transfer is running: quit stops it after a checkpoint (it resumes later). Quit? (y/n)".into()
            } else {
                "Quit ferry? (y/n)".into()
            }],
        ),
        Modal::ConfirmStop => (
            " Stop ",
            vec![
                "Stop the transfer after the next checkpoint? The same task resumes later. (y/n)"
                    .into(),
            ],
        ),
        Modal::ConfirmReceive(v) => {
            let mut l = v.clone();
            l.push(String::new());
            l.push("Start receiving? (y/n)".into());
            (" Start the receiver ", l)
        }
        Modal::ConfirmStart(v) => {
            let mut l = v.clone();
            l.push(String::new());
            l.push("Start writing the receiver's targets? (y/n)".into());
            (" Start the transfer ", l)
        }
        Modal::Input { prompt, text, .. } => (
            " Input ",
            vec![prompt.clone(), String::new(), format!("> {text}_")],
        ),
    };
    let w = area.width.saturating_sub(4).min(76);
    let inner = w.saturating_sub(2).max(1) as usize;
    let rows: u16 = lines
        .iter()
        .map(|l| (l.chars().count().max(1)).div_ceil(inner) as u16)
        .sum();
    let r = centered(area, w, rows + 2);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
            .wrap(Wrap { trim: false })
            .block(block(app, title)),
        r,
    );
}
