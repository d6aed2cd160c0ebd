//! A receiver running in the test process on 127.0.0.1 (its own tokio
//! runtime on a thread), stopped when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry::disk::sysfs::Roots;
use ferry::receiver::{ReceiveConfig, Receiver, echo};

pub const CODE: &str = "TEST-CODE";

pub struct Running {
    pub rx: Arc<Receiver>,
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.take().unwrap().send(());
        let _ = self.thread.take().unwrap().join();
    }
}

/// A receiver writing `targets`, with state in `dir/state` and pairing code
/// [`CODE`]; with the UDP echo on the data port's number when `udp`.
pub fn start(dir: &Path, targets: Vec<PathBuf>, udp: bool) -> Running {
    let cfg = ReceiveConfig {
        targets,
        state_dir: dir.join("state"),
        code: Some(CODE.into()),
        name: "test-receiver".into(),
        force: false,
        max_sessions: 4,
        roots: Roots::system(),
    };
    let rx = Receiver::new(&cfg).unwrap();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let rx2 = rx.clone();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            if udp {
                let sock = tokio::net::UdpSocket::bind(addr).await.unwrap();
                tokio::spawn(echo::serve(rx2.clone(), sock));
            }
            addr_tx.send(addr).unwrap();
            rx2.serve(l, async {
                let _ = stop_rx.await;
            })
            .await;
        });
    });
    let addr = addr_rx.recv().unwrap();
    Running {
        rx,
        addr,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}
