//! `ferry tui`: the technician's console app (also `ferry` with no
//! arguments).

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args, Default)]
pub struct TuiArgs {
    /// Disks or image files to migrate (default: every disk of the machine).
    pub disks: Vec<PathBuf>,
    /// Load a job file's choices (receiver, rate schedule, plan).
    #[arg(long)]
    pub job: Option<PathBuf>,
    /// Plain ASCII borders and bars (default: when TERM is vt100/vt220/dumb).
    #[arg(long)]
    pub ascii: bool,
    /// Screen columns when the terminal cannot say (a serial console).
    #[arg(long)]
    pub cols: Option<u16>,
    /// Screen rows when the terminal cannot say.
    #[arg(long)]
    pub rows: Option<u16>,
    /// Where the source keeps its events log and reports (as `ferry send`;
    /// `none` keeps no records).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/ferry")]
    pub state_dir: PathBuf,
    /// Where the TUI's log goes, never onto the screen (default:
    /// STATE_DIR/tui.log, or /tmp/ferry-tui.log without a state dir).
    #[arg(long)]
    pub log_file: Option<PathBuf>,
}

pub fn run(a: TuiArgs) -> anyhow::Result<i32> {
    let size = match (a.cols, a.rows) {
        (None, None) => None,
        (c, r) => Some((c.unwrap_or(80), r.unwrap_or(24))),
    };
    let state_dir = (a.state_dir.as_os_str() != "none").then_some(a.state_dir);
    if let Some(d) = &state_dir {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("creating the state directory {}: {e}", d.display()))?;
    }
    let log_file = a.log_file.unwrap_or_else(|| match &state_dir {
        Some(d) => d.join("tui.log"),
        None => PathBuf::from("/tmp/ferry-tui.log"),
    });
    crate::tui::run(crate::tui::Options {
        paths: a.disks,
        job: a.job,
        ascii: a.ascii.then_some(true),
        size,
        state_dir,
        log_file,
        preset: Default::default(),
    })
}
