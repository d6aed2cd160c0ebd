//! The source's side of a session's start, shared by `ferry send` and
//! `ferry netcheck`: connect (with a deadline), TLS with the pinned
//! fingerprint, Hello with the pairing proof, Welcome.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use tokio::net::TcpStream;

use crate::proto::codec::{FrameReader, MAX_FRAME, write_message};
use crate::proto::message::{ErrorMsg, Hello, Message};
use crate::proto::{pairing, tls, version};

/// Default port of the data protocol.
pub const DATA_PORT: u16 = 8703;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;
pub type TlsRead = FrameReader<tokio::io::ReadHalf<Tls>>;
pub type TlsWrite = tokio::io::WriteHalf<Tls>;

/// An accepted session.
pub struct Link {
    pub addr: SocketAddr,
    /// The receiver's name for itself.
    pub receiver: String,
    /// The receiver's session number (extra streams join it).
    pub session: u64,
    pub r: TlsRead,
    pub w: TlsWrite,
}

/// `IP` or `IP:PORT` (names are not resolved in the boot image).
pub fn addr(receiver: &str) -> anyhow::Result<SocketAddr> {
    if let Ok(a) = receiver.parse() {
        return Ok(a);
    }
    let ip: std::net::IpAddr = receiver
        .parse()
        .with_context(|| format!("receiver {receiver:?} is not IP[:PORT]"))?;
    Ok((ip, DATA_PORT).into())
}

/// The receiver's Error as the source reports it.
pub fn refusal(e: &ErrorMsg) -> anyhow::Error {
    anyhow!("the receiver refused: {} ({:?})", e.message, e.code)
}

/// This machine's name, sent in Hello.
pub fn hostname() -> String {
    host_name("source")
}

/// The kernel's hostname, or `fallback` when it has none (the boot image's
/// kernel says "(none)" until something sets one).
pub fn host_name(fallback: &str) -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty() && s != "(none)")
        .unwrap_or_else(|| fallback.to_string())
}

/// Connect to `receiver`, pin `fingerprint`, prove `code` and name `task`.
pub async fn connect(
    receiver: &str,
    fingerprint: [u8; 32],
    code: &str,
    task: &str,
) -> anyhow::Result<Link> {
    let addr = addr(receiver)?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| {
            anyhow!(
                "connecting to the receiver at {addr}: no answer within {} s",
                CONNECT_TIMEOUT.as_secs()
            )
        })?
        .with_context(|| format!("connecting to the receiver at {addr}"))?;
    tcp.set_nodelay(true)?;
    let connector = tokio_rustls::TlsConnector::from(tls::client_config(fingerprint)?);
    let tls = connector
        .connect(tls::server_name(), tcp)
        .await
        .with_context(|| format!("TLS with the receiver at {addr}"))?;
    let (r, mut w) = tokio::io::split(tls);
    let mut r = FrameReader::new(r, MAX_FRAME);

    let nonce = pairing::nonce();
    let hello = Hello {
        min_version: version::MIN,
        max_version: version::MAX,
        nonce,
        proof: pairing::proof(code, &fingerprint, &nonce),
        source: hostname(),
        task: task.to_string(),
    };
    write_message(&mut w, &Message::Hello(hello), MAX_FRAME).await?;
    let reply = tokio::time::timeout(Duration::from_secs(30), r.next())
        .await
        .map_err(|_| anyhow!("the receiver at {addr} did not answer Hello within 30 s"))?
        .with_context(|| format!("reading from the receiver at {addr}"))?;
    let (receiver, session) = match reply {
        Some(Message::Welcome(w)) => (w.receiver, w.session),
        Some(Message::VersionMismatch(v)) => bail!(
            "the receiver speaks protocol {}..{}, this source {}..{}: use matching ferry versions",
            v.min_version,
            v.max_version,
            version::MIN,
            version::MAX
        ),
        Some(Message::Error(e)) => return Err(refusal(&e)),
        Some(other) => bail!("unexpected reply to Hello: message kind {}", other.kind()),
        None => bail!("the receiver at {addr} closed the connection"),
    };
    Ok(Link {
        addr,
        receiver,
        session,
        r,
        w,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_the_data_port() {
        assert_eq!(addr("10.0.0.5").unwrap().to_string(), "10.0.0.5:8703");
        assert_eq!(addr("10.0.0.5:9000").unwrap().to_string(), "10.0.0.5:9000");
        assert_eq!(addr("[::1]:9000").unwrap().to_string(), "[::1]:9000");
        assert!(addr("receiver.example").is_err());
    }
}
