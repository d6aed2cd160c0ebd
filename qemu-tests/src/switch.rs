//! A learning Ethernet switch on 127.0.0.1 for QEMU socket netdevs
//! (`-netdev socket,connect=127.0.0.1:PORT`: each frame travels as a
//! 4-byte big-endian length and the frame). Guests and the slirp appliance
//! (the host's way to the receiver's control API) plug into it.
//!
//! Why a switch and not a QEMU hub: a hub hands every frame to every port,
//! and slirp answers TCP segments that are not its own with resets, which
//! killed the guests' connections. The switch learns which port each MAC
//! address is behind and sends unicast frames there only; broadcasts (ARP)
//! and frames to unknown addresses go everywhere, as on real Ethernet.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Ports = Arc<Mutex<Vec<(usize, Arc<Mutex<TcpStream>>)>>>;

/// A running switch; stops (closing every port) when dropped.
pub struct Switch {
    pub port: u16,
    stop: Arc<AtomicBool>,
    ports: Ports,
}

/// The largest frame accepted (QEMU's own limit is 69632 bytes).
const MAX_FRAME: usize = 70_000;

impl Switch {
    /// Listen on a free port of 127.0.0.1; every connection is a port.
    pub fn start() -> Switch {
        let l = TcpListener::bind("127.0.0.1:0").expect("binding the switch");
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let ports: Ports = Arc::new(Mutex::new(Vec::new()));
        let table: Arc<Mutex<HashMap<[u8; 6], usize>>> = Arc::default();
        let (stop2, ports2) = (stop.clone(), ports.clone());
        std::thread::spawn(move || {
            for (id, conn) in l.incoming().enumerate() {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let _ = conn.set_nodelay(true);
                let w = conn.try_clone().unwrap();
                ports2.lock().unwrap().push((id, Arc::new(Mutex::new(w))));
                let (ports3, table3) = (ports2.clone(), table.clone());
                std::thread::spawn(move || serve(id, conn, ports3, table3));
            }
        });
        Switch { port, stop, ports }
    }
}

/// Read frames from port `id` and forward each.
fn serve(id: usize, mut conn: TcpStream, ports: Ports, table: Arc<Mutex<HashMap<[u8; 6], usize>>>) {
    let mut frame = vec![0u8; MAX_FRAME];
    loop {
        let mut len = [0u8; 4];
        if conn.read_exact(&mut len).is_err() {
            break;
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_FRAME || conn.read_exact(&mut frame[..n]).is_err() {
            break;
        }
        let f = &frame[..n];
        if n < 14 {
            continue;
        }
        let dst: [u8; 6] = f[..6].try_into().unwrap();
        let src: [u8; 6] = f[6..12].try_into().unwrap();
        let to = {
            let mut t = table.lock().unwrap();
            if src[0] & 1 == 0 {
                t.insert(src, id);
            }
            if dst[0] & 1 == 0 {
                t.get(&dst).copied()
            } else {
                None
            }
        };
        // Write without holding the port list: a slow reader on one port
        // must not stall the others.
        let outs: Vec<(usize, Arc<Mutex<TcpStream>>)> = ports
            .lock()
            .unwrap()
            .iter()
            .filter(|(pid, _)| *pid != id && to.is_none_or(|t| t == *pid))
            .cloned()
            .collect();
        for (pid, w) in outs {
            let mut w = w.lock().unwrap();
            if w.write_all(&len).and_then(|_| w.write_all(f)).is_err() {
                // A port whose peer went away is dropped.
                drop(w);
                ports.lock().unwrap().retain(|(p, _)| *p != pid);
            }
        }
    }
    ports.lock().unwrap().retain(|(pid, _)| *pid != id);
}

impl Drop for Switch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for (_, w) in self.ports.lock().unwrap().drain(..) {
            let _ = w.lock().unwrap().shutdown(Shutdown::Both);
        }
        // Wake the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(dst: u8, src: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![
            0x52, 0x54, 0, 0, 0x87, dst, 0x52, 0x54, 0, 0, 0x87, src, 0x08, 0x00,
        ];
        if dst == 0xff {
            f[..6].copy_from_slice(&[0xff; 6]);
        }
        f.extend_from_slice(body);
        let mut out = (f.len() as u32).to_be_bytes().to_vec();
        out.extend(f);
        out
    }

    fn recv(s: &mut TcpStream) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).ok()?;
        let mut f = vec![0u8; u32::from_be_bytes(len) as usize];
        s.read_exact(&mut f).ok()?;
        Some(f[14..].to_vec())
    }

    #[test]
    fn unicast_goes_only_where_the_address_was_seen() {
        let sw = Switch::start();
        let mut p: Vec<TcpStream> = (0..3)
            .map(|_| {
                let s = TcpStream::connect(("127.0.0.1", sw.port)).unwrap();
                s.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // Port 0 broadcasts (everyone hears it, the switch learns MAC 1).
        p[0].write_all(&frame(0xff, 1, b"who")).unwrap();
        assert_eq!(recv(&mut p[1]).unwrap(), b"who");
        assert_eq!(recv(&mut p[2]).unwrap(), b"who");
        // Port 1 answers MAC 1: only port 0 gets it.
        p[1].write_all(&frame(1, 2, b"me")).unwrap();
        assert_eq!(recv(&mut p[0]).unwrap(), b"me");
        assert!(
            recv(&mut p[2]).is_none(),
            "port 2 must not see unicast to MAC 1"
        );
        // Now MAC 2 is known too: a large frame from 0 to 2 reaches port 1 only.
        let big = vec![7u8; 65000];
        p[0].write_all(&frame(2, 1, &big)).unwrap();
        assert_eq!(recv(&mut p[1]).unwrap(), big);
        assert!(recv(&mut p[2]).is_none());
    }
}
