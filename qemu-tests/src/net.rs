//! Guest networking, all on 127.0.0.1: nothing leaves the machine.
//!
//! The guests share one link-local segment, 169.254.87.0/24: each guest's
//! NIC is a QEMU socket netdev connected to the harness's learning
//! [`Switch`] on a free loopback port. The host reaches the receiver's
//! control API (8080) through a slirp "gateway": a QEMU process without a
//! machine (`-M none`) whose restricted user-mode netdev sits on the same
//! switch, with a host forward of a free loopback port to the receiver's
//! address. So the receiver needs one NIC and one static address (the
//! boot image's /init puts `ferry.ip` on the first link only).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use crate::switch::Switch;

/// The receiver guest's address on the shared segment.
pub const RECEIVER_IP: &str = "169.254.87.1";
/// The source guest's address.
pub const SOURCE_IP: &str = "169.254.87.2";
/// The prefix length of both.
pub const PREFIX: u8 = 24;
/// MTU of the guests' link: large frames make TCG guests several times
/// faster (docs/testing.md).
pub const MTU: u32 = 65000;
/// slirp's network (the whole segment) and the start of its DHCP pool.
const SLIRP_NET: &str = "169.254.87.0/24";
const SLIRP_DHCP: &str = "169.254.87.200";
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
    /// A port of a [`Switch`] (the guests' segment).
    Switch { port: u16 },
    /// Plain user-mode networking with QEMU's TFTP server (PXE boots).
    Tftp { dir: String, bootfile: String },
}

impl Nic {
    /// The QEMU arguments of NIC number `i` with MAC `52:54:00:00:87:<mac>`;
    /// its netdev (the one `set_link` takes) is `n<i>`.
    pub fn args(&self, i: usize, mac: u8, bootindex: Option<u32>) -> Vec<String> {
        let id = format!("n{i}");
        let mut a = Vec::new();
        let dev_netdev = id.clone();
        match self {
            Nic::Listen { port } => {
                a.push("-netdev".into());
                a.push(format!("socket,id={id},listen=127.0.0.1:{port}"));
            }
            Nic::Connect { port } => {
                a.push("-netdev".into());
                a.push(format!("socket,id={id},connect=127.0.0.1:{port}"));
            }
            Nic::Switch { port } => {
                a.push("-netdev".into());
                a.push(format!("socket,id={id},connect=127.0.0.1:{port}"));
            }
            Nic::Tftp { dir, bootfile } => {
                a.push("-netdev".into());
                a.push(format!(
                    "user,id={id},net=169.254.100.0/24,host=169.254.100.2,restrict=on,\
                     tftp={dir},bootfile={bootfile}"
                ));
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

/// The guests' segment: the switch, and the slirp gateway that forwards
/// `127.0.0.1:api_port` to the receiver's control API. Both stop when
/// dropped.
pub struct Lan {
    pub switch: Switch,
    pub api_port: u16,
    gateway: Child,
    pub gateway_cmdline: String,
}

impl Lan {
    pub fn start() -> Lan {
        let switch = Switch::start();
        let api_port = free_port();
        let args = gateway_args(switch.port, api_port);
        let mut cmd = Command::new("qemu-system-x86_64");
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let gateway = crate::vm::spawn_qemu(cmd);
        Lan {
            switch,
            api_port,
            gateway,
            gateway_cmdline: crate::vm::shell_words(&args),
        }
    }

    /// A NIC on this segment.
    pub fn nic(&self) -> Nic {
        Nic::Switch {
            port: self.switch.port,
        }
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        crate::vm::kill_group(&mut self.gateway);
    }
}

/// The gateway's QEMU arguments: no machine, a restricted slirp and a
/// socket netdev to the switch joined by a hub.
pub fn gateway_args(switch_port: u16, api_port: u16) -> Vec<String> {
    [
        "-M".to_string(),
        "none".into(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-netdev".into(),
        format!(
            "user,id=gw,net={SLIRP_NET},host={SLIRP_HOST},dns={SLIRP_DNS},dhcpstart={SLIRP_DHCP},\
             restrict=on,hostfwd=tcp:127.0.0.1:{api_port}-{RECEIVER_IP}:8080"
        ),
        "-netdev".into(),
        format!("socket,id=sw,connect=127.0.0.1:{switch_port}"),
        "-netdev".into(),
        "hubport,id=h0,hubid=0,netdev=gw".into(),
        "-netdev".into(),
        "hubport,id=h1,hubid=0,netdev=sw".into(),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_restricted_slirp_on_the_switch() {
        let a = gateway_args(1000, 2000).join(" ");
        assert!(a.contains("-M none"), "{a}");
        assert!(
            a.contains("restrict=on,hostfwd=tcp:127.0.0.1:2000-169.254.87.1:8080"),
            "{a}"
        );
        assert!(a.contains("socket,id=sw,connect=127.0.0.1:1000"), "{a}");
        assert!(a.contains("hubport,id=h1,hubid=0,netdev=sw"), "{a}");
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
