//! The UDP echo on the data port that netcheck measures latency, jitter and
//! loss with. Only probes tagged with this receiver's pairing code are
//! echoed (see `proto::udp`); anything else is dropped silently.

use std::sync::Arc;

use tokio::net::UdpSocket;

use super::server::Receiver;
use crate::proto::udp;

/// Echo probes arriving on `sock` until the task is dropped.
pub async fn serve(rx: Arc<Receiver>, sock: UdpSocket) {
    let mut buf = [0u8; 2048];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!("udp echo: {e}");
                continue;
            }
        };
        if udp::decode(&rx.code, &rx.fingerprint, &buf[..n]).is_some() {
            let _ = sock.send_to(&buf[..n], peer).await;
        }
    }
}
