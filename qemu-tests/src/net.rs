//! Guest networking, all on 127.0.0.1: nothing leaves the machine.
//!
//! The guests share one link-local segment, 169.254.87.0/24, carried by a
//! QEMU socket netdev (the receiver's QEMU listens on a free loopback port,
//! the source's connects). The receiver's one NIC sits on a QEMU hub that
//! also holds a user-mode (slirp) netdev on the same subnet with
//! `restrict=on` and a host forward of a free loopback port to the
//! receiver's control API (8080): the host reaches the API without the
//! guest needing a second address (the boot image's /init puts a static
//! `ferry.ip` on the first link only). slirp answers ARP only for its own
//! addresses and drops, in restricted mode, every packet not addressed to
//! it, so the guests' own traffic passes it by.

use std::net::TcpListener;

/// The receiver guest's address on the shared segment.
pub const RECEIVER_IP: &str = "169.254.87.1";
/// The source guest's address.
pub const SOURCE_IP: &str = "169.254.87.2";
/// The prefix length of both.
pub const PREFIX: u8 = 24;
/// MTU of the guests' link: large frames make TCG guests several times
/// faster (docs/testing.md).
pub const MTU: u32 = 65000;
/// slirp's own addresses on the segment (its gateway and DNS, unused).
const SLIRP_HOST: &str = "169.254.87.254";
const SLIRP_DNS: &str = "169.254.87.253";

/// A free TCP port on 127.0.0.1 (bound and released: another process could
/// take it in between, which is unlikely on a test machine and fails loudly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// One NIC of a guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// A socket netdev listening on 127.0.0.1:port (start this guest first).
    Listen { port: u16 },
    /// A socket netdev connecting to 127.0.0.1:port.
    Connect { port: u16 },
    /// The receiver's NIC: a hub of a listening socket netdev and a
    /// restricted slirp forwarding 127.0.0.1:api_port to `guest_ip`:8080.
    ListenWithApi { port: u16, api_port: u16, guest_ip: String },
    /// Plain user-mode networking with QEMU's TFTP server (PXE boots).
    Tftp { dir: String, bootfile: String },
}

impl Nic {
    /// The QEMU arguments of NIC number `i` with MAC `52:54:00:00:87:<mac>`;
    /// its netdev (the one `set_link` takes) is `n<i>`.
    pub fn args(&self, i: usize, mac: u8, bootindex: Option<u32>) -> Vec<String> {
        let id = format!("n{i}");
        let mut a = Vec::new();
        let mut dev_netdev = id.clone();
        match self {
            Nic::Listen { port } => {
                a.push("-netdev".into());
                a.push(format!("socket,id={id},listen=127.0.0.1:{port}"));
            }
            Nic::Connect { port } => {
                a.push("-netdev".into());
                a.push(format!("socket,id={id},connect=127.0.0.1:{port}"));
            }
            Nic::ListenWithApi {
                port,
                api_port,
                guest_ip,
            } => {
                a.extend([
                    "-netdev".into(),
                    format!("socket,id={id}s,listen=127.0.0.1:{port}"),
                    "-netdev".into(),
                    format!(
                        "user,id={id}u,net=169.254.87.0/24,host={SLIRP_HOST},dns={SLIRP_DNS},\
                         restrict=on,hostfwd=tcp:127.0.0.1:{api_port}-{guest_ip}:8080"
                    ),
                    "-netdev".into(),
                    format!("hubport,id={id}hs,hubid={i},netdev={id}s"),
                    "-netdev".into(),
                    format!("hubport,id={id}hu,hubid={i},netdev={id}u"),
                    "-netdev".into(),
                    format!("hubport,id={id},hubid={i}"),
                ]);
            }
            Nic::Tftp { dir, bootfile } => {
                a.push("-netdev".into());
                a.push(format!(
                    "user,id={id},net=169.254.100.0/24,host=169.254.100.2,restrict=on,\
                     tftp={dir},bootfile={bootfile}"
                ));
                dev_netdev = id.clone();
            }
        }
        // PXE needs the NIC's option ROM; every other boot skips it (about
        // 3 s under SeaBIOS).
        let rom = if matches!(self, Nic::Tftp { .. }) {
            ""
        } else {
            ",romfile="
        };
        let boot = bootindex.map_or(String::new(), |b| format!(",bootindex={b}"));
        a.push("-device".into());
        a.push(format!(
            "virtio-net-pci,netdev={dev_netdev},mac=52:54:00:00:87:{mac:02x}{rom}{boot}"
        ));
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receiver_nic_is_a_hub_of_socket_and_restricted_slirp() {
        let a = Nic::ListenWithApi {
            port: 1000,
            api_port: 2000,
            guest_ip: RECEIVER_IP.into(),
        }
        .args(0, 1, None)
        .join(" ");
        assert!(a.contains("socket,id=n0s,listen=127.0.0.1:1000"), "{a}");
        assert!(a.contains("restrict=on,hostfwd=tcp:127.0.0.1:2000-169.254.87.1:8080"), "{a}");
        assert!(a.contains("hubport,id=n0hs,hubid=0,netdev=n0s"), "{a}");
        assert!(a.contains("hubport,id=n0,hubid=0 "), "{a}");
        assert!(a.ends_with("virtio-net-pci,netdev=n0,mac=52:54:00:00:87:01,romfile="), "{a}");
    }

    #[test]
    fn sockets_use_loopback_only_and_pxe_keeps_its_rom() {
        let c = Nic::Connect { port: 7 }.args(1, 2, None).join(" ");
        assert!(c.contains("socket,id=n1,connect=127.0.0.1:7"), "{c}");
        let p = Nic::Tftp {
            dir: "/x".into(),
            bootfile: "ferry.ipxe".into(),
        }
        .args(0, 3, Some(0))
        .join(" ");
        assert!(p.contains("tftp=/x,bootfile=ferry.ipxe"), "{p}");
        assert!(!p.contains("romfile") && p.ends_with("bootindex=0"), "{p}");
    }

    #[test]
    fn free_ports_differ() {
        assert_ne!(free_port(), 0);
    }
}
