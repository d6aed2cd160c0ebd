//! Binding a receiver's ports: data (TCP, and UDP for netcheck's probes on
//! the same number) and the control API. `ferry receive` and the TUI's
//! receiver role both start here.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::net::TcpListener;

use super::server::{Receiver, console};
use super::{api, echo};

/// Where a receiver listens.
#[derive(Debug, Clone, Copy)]
pub struct Listening {
    pub data: SocketAddr,
    pub api: SocketAddr,
}

/// Bind the data and API ports (0 picks a free one), start the UDP echo
/// and the API; the data listener is returned for [`Receiver::serve`].
pub async fn bind(
    rx: &Arc<Receiver>,
    listen: IpAddr,
    data_port: u16,
    api_port: u16,
) -> anyhow::Result<(TcpListener, Listening)> {
    let listener = TcpListener::bind(SocketAddr::new(listen, data_port))
        .await
        .map_err(|e| anyhow::anyhow!("data port {data_port}: {e}"))?;
    let data = listener.local_addr()?;
    let api_listener = TcpListener::bind(SocketAddr::new(listen, api_port))
        .await
        .map_err(|e| anyhow::anyhow!("control API port {api_port}: {e}"))?;
    let api_addr = api_listener.local_addr()?;
    // Netcheck's UDP probes share the data port's number.
    match tokio::net::UdpSocket::bind(data).await {
        Ok(sock) => {
            tokio::spawn(echo::serve(rx.clone(), sock));
        }
        Err(e) => console(format_args!(
            "ferry receive: warning: no UDP echo on {data} ({e}); netcheck will see 100% loss"
        )),
    }
    tokio::spawn(api::serve(
        rx.clone(),
        api_listener,
        data,
        std::future::pending(),
    ));
    Ok((
        listener,
        Listening {
            data,
            api: api_addr,
        },
    ))
}
