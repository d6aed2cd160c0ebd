//! `ferry api --receiver IP[:PORT] --fingerprint SHA256 --code CODE [--method M] PATH [--data JSON]`:
//! one request to a receiver's control API, for consoles and scripts with
//! no curl (the boot image) and for the QEMU harness.

use std::net::SocketAddr;

use clap::Args;

use crate::proto::pairing;
use crate::proto::tls::parse_fingerprint;
use crate::receiver::api::{API_PORT, request};

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The receiver's control API (IP or IP:PORT; port 8080 by default).
    #[arg(long, value_name = "IP[:PORT]")]
    pub receiver: String,
    /// The receiver's certificate fingerprint (SHA-256, 64 hex digits).
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: String,
    /// The pairing code (the API token is derived from it).
    #[arg(long, required_unless_present = "token")]
    pub code: Option<String>,
    /// The API token the receiver printed, instead of the code.
    #[arg(long, conflicts_with = "code")]
    pub token: Option<String>,
    /// HTTP method.
    #[arg(long, default_value = "GET", value_parser = ["GET", "POST", "PUT"])]
    pub method: String,
    /// JSON body (for PUT .../rate-limit: '{"mbit": 100}').
    #[arg(long)]
    pub data: Option<String>,
    /// The path, e.g. /v1/status, /v1/tasks/web01, /metrics.
    pub path: String,
}

fn api_addr(s: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = s
        .parse()
        .map_err(|_| anyhow::anyhow!("receiver {s:?} is not IP[:PORT]"))?;
    Ok((ip, API_PORT).into())
}

pub fn run(a: ApiArgs) -> anyhow::Result<i32> {
    let fp = parse_fingerprint(&a.fingerprint)?;
    let addr = api_addr(&a.receiver)?;
    anyhow::ensure!(
        a.path.starts_with('/'),
        "the path must start with /: {:?}",
        a.path
    );
    let token = match (&a.token, &a.code) {
        (Some(t), _) => t.clone(),
        (None, Some(c)) => pairing::api_token(c, &fp),
        (None, None) => anyhow::bail!("give --code or --token"),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = rt.block_on(request(
        addr,
        fp,
        &token,
        &a.method,
        &a.path,
        a.data.as_deref(),
    ))?;
    if (200..300).contains(&status) {
        print!("{body}");
        if !body.ends_with('\n') {
            println!();
        }
        Ok(0)
    } else {
        eprintln!(
            "ferry: error: {} {}: HTTP {status}: {}",
            a.method,
            a.path,
            body.trim()
        );
        Ok(1)
    }
}
