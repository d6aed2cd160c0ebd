//! `ferry inventory [--json] [--ranges] [PATH ...]`

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::inventory::{InventoryConfig, inventory, render_tree};

#[derive(Debug, Args)]
pub struct InventoryArgs {
    /// Print the inventory as JSON (schema: docs/inventory-json.md).
    #[arg(long)]
    pub json: bool,
    /// Include every volume's used byte ranges in the JSON output.
    #[arg(long, requires = "json")]
    pub ranges: bool,
    /// Block devices or image files; default: every disk in /sys/block
    /// (loop, ram, zram and dm devices only when named).
    pub paths: Vec<PathBuf>,
}

pub fn run(a: InventoryArgs) -> anyhow::Result<i32> {
    let cfg = InventoryConfig {
        paths: a.paths,
        with_ranges: a.ranges,
        ..Default::default()
    };
    let inv = inventory(&cfg)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &inv)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render_tree(&inv))?;
    }
    out.flush()?;
    for w in &inv.warnings {
        eprintln!("ferry: warning: {w}");
    }
    for e in &inv.errors {
        eprintln!("ferry: error: {e}");
    }
    Ok(inv.exit_code())
}
