//! The demo (`scripts/demo.sh` runs it): a receiver guest and a source
//! guest boot ferry's image under QEMU; the source's demo disk (GPT with an
//! ESP, BIOS boot, ext4, swap and an LVM PV holding two LVs) migrates to a
//! blank disk of the receiver, unattended from kernel arguments; the
//! source's console is shown as it runs, and the receiver's report comes
//! from its control API. The target is then checked on the host: every
//! used byte equal, every filesystem clean.
//!
//! `demo [--auto]`: without `--auto`, it pauses before each step when the
//! terminal can answer.

use std::io::{BufRead, IsTerminal, Write};
use std::time::{Duration, Instant};

use qemu_tests::check::{assert_used_equal, expected_digests, fsck_lvs, fsck_partitions};
use qemu_tests::disks::{blank, copy_fixture, image_entry, vg_entry};
use qemu_tests::migrate::{BOOT, PASS, start_receiver, start_source};
use qemu_tests::net::Lan;
use qemu_tests::scenario::Scenario;

fn pause(auto: bool) {
    if auto || !std::io::stdin().is_terminal() {
        return;
    }
    print!("-- press Enter to continue --");
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().lock().read_line(&mut String::new());
}

fn main() {
    let auto = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--auto") => true,
        Some(a) => {
            eprintln!("demo: unknown argument {a}; usage: demo [--auto]");
            std::process::exit(2);
        }
    };
    qemu_tests::require_root();
    let sc = Scenario::new("demo");
    let src = sc.path("source-gpt.img");
    let size = copy_fixture("gpt.img", &src);
    let tgt = sc.path("target.img");
    blank(&tgt, size);
    let want = expected_digests(std::slice::from_ref(&src));
    println!(
        "==> the demo source disk: {} ({} MiB, GPT: ESP, BIOS boot, ext4, swap, LVM with vg0/root and vg0/data)",
        src.display(),
        size >> 20
    );
    println!("    a blank target of the same size: {}", tgt.display());
    pause(auto);

    println!(
        "==> booting the receiver guest (headless; its console: {})",
        sc.path("receiver.console.log").display()
    );
    let lan = Lan::start();
    let mut rx = start_receiver(&sc, &lan, std::slice::from_ref(&tgt), "DEMO-2026");
    let fp = &rx.fingerprint;
    let grouped: Vec<&str> = (0..fp.len())
        .step_by(4)
        .map(|i| &fp[i..(i + 4).min(fp.len())])
        .collect();
    println!("    fingerprint: {}", grouped.join(" "));
    println!("    pairing code: {}", rx.code);
    pause(auto);

    println!("==> booting the source guest; its console:");
    let mut s = start_source(
        &sc,
        &lan,
        "source",
        &rx,
        std::slice::from_ref(&src),
        "demo",
        "",
    );
    let deadline = Instant::now() + BOOT + PASS;
    let mut shown = 0;
    loop {
        let text = s.console.text();
        if text.len() > shown {
            print!(
                "    | {}",
                text[shown..]
                    .replace('\n', "\n    | ")
                    .trim_end_matches("    | ")
            );
            let _ = std::io::stdout().flush();
            shown = text.len();
        }
        if s.console.seen("ferry: done rc=") || s.console.closed() {
            break;
        }
        if Instant::now() > deadline {
            panic!("the source guest did not finish within {:?}", BOOT + PASS);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let done = s.expect("ferry: done rc=", Duration::from_secs(5));
    assert!(
        done.trim().ends_with("rc=0"),
        "the source's ferry failed: {done}"
    );
    let st = s.wait_exit(Duration::from_secs(60));
    assert!(st.success(), "the source guest's QEMU exited with {st}");
    println!();
    pause(auto);

    println!("==> the receiver's report, from its control API (GET /v1/tasks/demo/report)");
    let rep = rx
        .api
        .get_json("/v1/tasks/demo/report", Duration::from_secs(120));
    sc.note(
        "demo-report.json",
        &serde_json::to_string_pretty(&rep).unwrap(),
    );
    println!(
        "    state {}, pass {}, {} bytes written, {} on the wire",
        rep["state"], rep["pass"], rep["bytes_written"], rep["wire_bytes"]
    );
    for v in rep["volumes"].as_array().into_iter().flatten() {
        println!(
            "    {}: {} used bytes in {} chunks, digest {}",
            v["name"], v["used_bytes"], v["chunks"], v["digest"]
        );
    }
    assert_eq!(rep["state"], "Finished", "{rep:#}");
    let got: Vec<String> = rep["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["digest"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(got, want, "the digests differ from the source's");
    println!("    the digests equal the source's, computed on the host");
    rx.vm.kill();
    pause(auto);

    println!("==> the target, checked on the host");
    let n = assert_used_equal(&[(src.clone(), tgt.clone())]);
    println!("    {n} used bytes equal to the source's");
    let parts = fsck_partitions(image_entry("gpt.img"), &tgt, &sc.dir);
    let lvs = fsck_lvs(vg_entry("vg0"), &[("gpt.img", tgt.as_path())], &sc.dir);
    println!(
        "    fsck clean: {}",
        parts
            .iter()
            .chain(&lvs)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "==> done; consoles, command lines and the report are in {}",
        sc.dir.display()
    );
}
