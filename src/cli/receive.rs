//! `ferry receive --target DISK|FILE ... [--state-dir DIR] [--listen ADDR] [--data-port N] [--api-port N]`

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use crate::disk::sysfs::Roots;
use crate::proto::tls::{fingerprint_grouped, fingerprint_hex};
use crate::receiver::{ReceiveConfig, Receiver};

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// A target disk or image file (created if missing); repeat for more.
    /// Volume N of a plan is written to target N.
    #[arg(long = "target", required = true)]
    pub targets: Vec<PathBuf>,
    /// Where the certificate, key, journals and events log live.
    #[arg(long, default_value = "/var/lib/ferry")]
    pub state_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub listen: IpAddr,
    /// Data port (0: any free port, printed on start).
    #[arg(long, default_value_t = crate::source::send::DATA_PORT)]
    pub data_port: u16,
    /// Control API port, HTTPS (0: any free port, printed on start).
    #[arg(long, default_value_t = crate::receiver::api::API_PORT)]
    pub api_port: u16,
    /// Use this pairing code instead of a new random one (unattended setups).
    #[arg(long)]
    pub code: Option<String>,
    /// Write targets even when they look in use (mounted, held, attached).
    #[arg(long)]
    pub force: bool,
}

pub fn run(a: ReceiveArgs) -> anyhow::Result<i32> {
    let cfg = ReceiveConfig {
        targets: a.targets,
        state_dir: a.state_dir,
        code: a.code,
        name: crate::source::link::host_name("receiver"),
        force: a.force,
        max_sessions: 8,
        roots: Roots::system(),
    };
    let rx = Receiver::new(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (listener, at) =
            crate::receiver::listen::bind(&rx, a.listen, a.data_port, a.api_port).await?;
        let (local, api_addr) = (at.data, at.api);
        // One fact per line, stable for scripts. A reader that stops reading
        // (a closed pipe) must not stop the receiver: write errors are ignored.
        let targets: Vec<String> = cfg.targets.iter().map(|t| t.display().to_string()).collect();
        let banner = format!(
            "listening: {local}\napi: https://{api_addr}\nfingerprint: {}\nfingerprint (grouped): {}\npairing code: {}\napi token: {}\ntargets: {}\n",
            fingerprint_hex(&rx.fingerprint),
            fingerprint_grouped(&rx.fingerprint),
            rx.code,
            crate::proto::pairing::api_token(&rx.code, &rx.fingerprint),
            targets.join(", ")
        );
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
        }

        rx.serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
        anyhow::Ok(())
    })?;
    Ok(0)
}
