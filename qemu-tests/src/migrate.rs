//! The two guests of a migration: a receiver guest that writes target
//! disks and serves its control API to the host, and source guests that
//! boot, send their disks unattended (`ferry.auto=1`) and power off. Both
//! boot the same image; only their `ferry.*` kernel arguments differ.

use std::path::PathBuf;
use std::time::Duration;

use crate::check::Api;
use crate::net::{Lan, MTU, PREFIX, RECEIVER_IP, SOURCE_IP};
use crate::scenario::Scenario;
use crate::vm::Vm;

/// Time for a guest to boot to `ferry: ready` under TCG on a loaded box.
pub const BOOT: Duration = Duration::from_secs(180);
/// Time for a pass over a fixture disk (64-128 MiB) and the source's
/// power-off.
pub const PASS: Duration = Duration::from_secs(420);

/// The stages every unattended boot prints, in order.
pub const BOOT_MARKERS: [&str; 3] = ["ferry: init", "ferry: network up", "ferry: ready"];

/// A receiver guest that announced itself.
pub struct ReceiverGuest {
    pub vm: Vm,
    pub api: Api,
    pub fingerprint: String,
    pub code: String,
}

/// Boot a receiver guest writing `targets` (virtio disks, in order) with
/// pairing code `code`; wait for its boot markers and the lines
/// `ferry receive` prints (fingerprint, API token, targets).
pub fn start_receiver(sc: &Scenario, lan: &Lan, targets: &[PathBuf], code: &str) -> ReceiverGuest {
    start_receiver_named(sc, lan, "receiver", targets, code)
}

/// [`start_receiver`] with logs named `name` (a second boot: `receiver-2`).
pub fn start_receiver_named(
    sc: &Scenario,
    lan: &Lan,
    name: &str,
    targets: &[PathBuf],
    code: &str,
) -> ReceiverGuest {
    sc.note(
        "gateway.cmdline",
        &format!("qemu-system-x86_64 {}\n", lan.gateway_cmdline),
    );
    let devs: Vec<String> = (0..targets.len())
        .map(|i| format!("/dev/vd{}", (b'a' + i as u8) as char))
        .collect();
    let args = format!(
        "ferry.role=receiver ferry.auto=1 ferry.ip={RECEIVER_IP}/{PREFIX} ferry.mtu={MTU} \
         ferry.code={code} ferry.target={}",
        devs.join(",")
    );
    let mut b = sc.vm(name).kernel(&args).mac(1).nic(lan.nic());
    for t in targets {
        b = b.disk(t);
    }
    let mut vm = b.spawn();
    sc.step(&format!("{name} guest started"));
    for m in BOOT_MARKERS {
        vm.expect(m, BOOT);
    }
    sc.step(&format!("{name} guest ready"));
    vm.expect("ferry: from the kernel arguments: ferry receive", BOOT);
    vm.expect("listening: ", BOOT);
    vm.expect("api: https://", BOOT);
    let fingerprint = vm.console.expect_value("fingerprint: ", BOOT);
    vm.expect("pairing code: ", BOOT);
    let token = vm.console.expect_value("api token: ", BOOT);
    let t = vm.console.expect_value("targets: ", BOOT);
    for d in &devs {
        assert!(t.contains(d.as_str()), "receiver targets {t:?} lack {d}");
    }
    sc.step(&format!(
        "receiver listening, fingerprint {}",
        &fingerprint[..16]
    ));
    ReceiverGuest {
        vm,
        api: Api::new(lan.api_port, &fingerprint, &token),
        fingerprint,
        code: code.to_string(),
    }
}

/// Boot a source guest with `disks` (virtio, in order) that sends them all
/// (ferry's default: every disk) to `rx` as task `task`, unattended, then
/// powers off. `extra` adds kernel arguments (`ferry.pass=incremental`).
/// `name` names its logs (a second boot of the same source: `source-2`).
pub fn start_source(
    sc: &Scenario,
    lan: &Lan,
    name: &str,
    rx: &ReceiverGuest,
    disks: &[PathBuf],
    task: &str,
    extra: &str,
) -> Vm {
    let args = format!(
        "ferry.role=source ferry.auto=1 ferry.ip={SOURCE_IP}/{PREFIX} ferry.mtu={MTU} \
         ferry.receiver={RECEIVER_IP} ferry.fingerprint={} ferry.code={} ferry.task={task} \
         ferry.post=poweroff {extra}",
        rx.fingerprint, rx.code
    );
    let mut b = sc.vm(name).kernel(&args).mac(2).nic(lan.nic());
    for d in disks {
        b = b.disk(d);
    }
    let vm = b.spawn();
    sc.step(&format!("{name} guest started"));
    vm
}

/// Wait for a source guest's whole unattended run: boot markers, the
/// `ferry send` command, its summary line, `ferry: done rc=0`, power-off.
/// Returns the summary line (`task T: N chunks sent ...`).
pub fn finish_source(sc: &Scenario, src: &mut Vm, task: &str) -> String {
    for m in BOOT_MARKERS {
        src.expect(m, BOOT);
    }
    src.expect("ferry: from the kernel arguments: ferry send", BOOT);
    sc.step(&format!("{} sending", src.name));
    let summary = src.expect(&format!("task {task}: "), PASS);
    sc.step(&format!("{}: {}", src.name, summary.trim()));
    let done = src.expect("ferry: done rc=", PASS);
    assert!(
        done.trim().ends_with("rc=0"),
        "{}: ferry send failed: {done}",
        src.name
    );
    let st = src.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "{}: QEMU exited with {st}", src.name);
    sc.step(&format!("{} powered off", src.name));
    summary
}

/// The number in `summary` before `what` (`"12 chunks sent"` -> 12).
pub fn count_before(summary: &str, what: &str) -> Option<u64> {
    let at = summary.find(what)?;
    summary[..at]
        .split_whitespace()
        .last()?
        .trim_start_matches('(')
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_come_out_of_the_summary_line() {
        let s =
            "task t1: 12 chunks sent (3 zero), 10.0 MiB of used data as 2.0 MiB on the wire, 1.0 s";
        assert_eq!(count_before(s, " chunks sent"), Some(12));
        assert_eq!(count_before(s, " zero)"), Some(3));
        assert_eq!(count_before(s, "nothing"), None);
    }
}
