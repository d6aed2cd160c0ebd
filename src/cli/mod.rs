//! Command line: clap derive, one file per subcommand.

mod api;
mod boot;
mod inventory;
mod netcheck;
mod plan;
mod receive;
mod send;
mod tui;

use clap::{Parser, Subcommand};

/// ferry: bootable live migration for bare-metal block cloning.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    /// Log level filter (error, warn, info, debug, trace); FERRY_LOG overrides.
    #[arg(long, global = true, default_value = "warn")]
    pub log: String,
    /// Without a command: the TUI on every disk (`ferry tui`).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List disks, partition tables, LVM volumes, filesystems and used space.
    Inventory(inventory::InventoryArgs),
    /// Work out a migration plan (selection, target disks, growth) and write
    /// it as a job file for `ferry send --job`.
    Plan(plan::PlanArgs),
    /// Receive volumes into target disks or image files (data on port 8703).
    Receive(receive::ReceiveArgs),
    /// Send volumes' used blocks to a receiver.
    Send(send::SendArgs),
    /// Before a transfer: latency, jitter, loss and bandwidth to a receiver,
    /// disk-read and compression speed, and an ETA for the volumes.
    Netcheck(netcheck::NetcheckArgs),
    /// One request to a receiver's control API (port 8080): status, a task,
    /// its report, events, metrics; stop, start, rate limit.
    Api(api::ApiArgs),
    /// The technician's console app: disks, selection and growth, receiver,
    /// preflight, transfer, report.
    Tui(tui::TuiArgs),
    /// Run what the `ferry.*` kernel arguments say (the boot image's /init
    /// runs this).
    Boot(boot::BootArgs),
}

/// Run the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command.unwrap_or(Command::Tui(tui::TuiArgs {
        state_dir: "/var/lib/ferry".into(),
        ..Default::default()
    })) {
        Command::Tui(a) => tui::run(a),
        Command::Inventory(a) => inventory::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Receive(a) => receive::run(a),
        Command::Send(a) => send::run(a),
        Command::Netcheck(a) => netcheck::run(a),
        Command::Api(a) => api::run(a),
        Command::Boot(a) => boot::run(a),
    }
}

/// Set up logging to stderr.
pub fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
