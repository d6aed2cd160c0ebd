//! The `ferry` binary: parse the command line and dispatch.

use clap::Parser;

fn main() {
    let cli = ferry::cli::Cli::parse();
    ferry::cli::init_logging(&cli.log);
    let code = match ferry::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferry: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
