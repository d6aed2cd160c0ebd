//! The Role screen's network view and settings: interfaces with link state
//! and addresses (from /sys/class/net and getifaddrs), DHCP (busybox
//! udhcpc, as /init uses) or a static address (`ip`) on one of them.

use std::path::Path;

/// One network interface as the technician sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    /// `up`, `down`, `dormant`, ... (operstate).
    pub state: String,
    pub carrier: bool,
    pub mac: String,
    /// IPv4 addresses with their prefix length.
    pub addrs: Vec<String>,
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Every interface but loopback, sorted by name.
pub fn interfaces() -> Vec<Iface> {
    let mut v = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return v;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        let p = e.path();
        v.push(Iface {
            state: read(&p.join("operstate")),
            carrier: read(&p.join("carrier")) == "1",
            mac: read(&p.join("address")),
            addrs: Vec::new(),
            name,
        });
    }
    if let Ok(ifs) = nix::ifaddrs::getifaddrs() {
        for a in ifs {
            let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
                continue;
            };
            let (Some(ip), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) else {
                continue;
            };
            let prefix = u32::from(m.ip()).count_ones();
            if let Some(i) = v.iter_mut().find(|i| i.name == a.interface_name) {
                i.addrs.push(format!("{}/{prefix}", ip.ip()));
            }
        }
    }
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Run a command; its output (or why it could not run) as one line.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    if out.status.success() {
        Ok(last.trim().to_string())
    } else {
        Err(format!("{cmd} {}: {}", args.join(" "), last.trim()))
    }
}

/// A DHCP lease on `iface` (a few tries, then give up).
pub fn dhcp(iface: &str) -> Result<String, String> {
    run("ip", &["link", "set", "dev", iface, "up"])?;
    let script = "/usr/share/udhcpc/default.script";
    let mut args = vec!["-i", iface, "-n", "-q", "-t", "4", "-T", "2"];
    if Path::new(script).exists() {
        args.extend(["-s", script]);
    }
    run("udhcpc", &args).map(|_| format!("DHCP on {iface}: done"))
}

/// `ADDR/PREFIX[,GW]` on `iface`.
pub fn set_static(iface: &str, spec: &str) -> Result<String, String> {
    let (addr, gw) = match spec.split_once(',') {
        Some((a, g)) => (a.trim(), Some(g.trim())),
        None => (spec.trim(), None),
    };
    let (ip, prefix) = addr.split_once('/').unwrap_or((addr, "24"));
    ip.parse::<std::net::Ipv4Addr>()
        .map_err(|_| format!("{ip:?} is not an IPv4 address"))?;
    let p: u8 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| format!("prefix {prefix:?} is not 0..32"))?;
    if let Some(g) = gw {
        g.parse::<std::net::Ipv4Addr>()
            .map_err(|_| format!("gateway {g:?} is not an IPv4 address"))?;
    }
    let cidr = format!("{ip}/{p}");
    run("ip", &["link", "set", "dev", iface, "up"])?;
    run("ip", &["-4", "addr", "add", &cidr, "dev", iface])?;
    if let Some(g) = gw {
        run(
            "ip",
            &["-4", "route", "replace", "default", "via", g, "dev", iface],
        )?;
    }
    Ok(format!(
        "{iface}: {cidr}{}",
        gw.map_or(String::new(), |g| format!(", gateway {g}"))
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn static_specs_are_checked_before_anything_runs() {
        assert!(
            super::set_static("nonexistent0", "10.0.0.300/24")
                .unwrap_err()
                .contains("not an IPv4")
        );
        assert!(
            super::set_static("nonexistent0", "10.0.0.3/40")
                .unwrap_err()
                .contains("prefix")
        );
        assert!(
            super::set_static("nonexistent0", "10.0.0.3/24,gw")
                .unwrap_err()
                .contains("gateway")
        );
    }
}
