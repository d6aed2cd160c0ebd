//! Root tier: a transfer honours the used map. An ext4 volume whose free
//! blocks hold garbage is sent; the target passes `e2fsck -fn`, every file
//! matches (both mounted read-only), and the free blocks on the target were
//! never written.

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::process::Command;

use common::receiver::spawn_receiver;
use common::*;

/// One `ferry send` of `source` (no source state dir, plus `extra` flags) to
/// a receiver started for `targets` with its state under `dir`, which stops
/// once the sender has exited.
fn send_once(
    dir: &std::path::Path,
    targets: &[&std::path::Path],
    source: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    let rx = spawn_receiver(dir, targets, "ROOT-TEST").unwrap();
    let out = rx
        .sender("root-test")
        .args(["--state-dir", "none"])
        .args(extra)
        .arg(source)
        .output()
        .unwrap();
    drop(rx);
    out
}

#[test]
fn root_ext4_with_garbage_in_free_blocks() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.img");
    run(
        "cp",
        &[
            "--sparse=always",
            &dir.join("whole.img").display().to_string(),
            &src.display().to_string(),
        ],
    );
    let size = std::fs::metadata(&src).unwrap().len();

    // Fill every byte outside the used map with garbage.
    let inv = |p: &std::path::Path| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["inventory", "--json", "--ranges", &p.display().to_string()])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let before = inv(&src);
    let used: Vec<(u64, u64)> = before["disks"][0]["used_ranges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect();
    let f = std::fs::OpenOptions::new().write(true).open(&src).unwrap();
    let mut pos = 0;
    let junk = vec![0xA5u8; 1 << 20];
    for &(a, b) in used.iter().chain([(size, size)].iter()) {
        let mut p = pos;
        while p < a {
            let n = ((a - p) as usize).min(junk.len());
            f.write_all_at(&junk[..n], p).unwrap();
            p += n as u64;
        }
        pos = b;
    }
    drop(f);
    assert_eq!(
        inv(&src)["disks"][0]["used_ranges"],
        before["disks"][0]["used_ranges"],
        "garbage in free blocks changes nothing"
    );

    // Receive into a fresh image and send.
    let target = tmp.path().join("target.img");
    let out = send_once(tmp.path(), &[&target], &src, &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let used_total: u64 = used.iter().map(|(a, b)| b - a).sum();
    assert_eq!(
        rep["bytes"].as_u64().unwrap(),
        used_total,
        "exactly the used bytes were sent"
    );

    // The target: clean, same files, and no garbage anywhere.
    run("e2fsck", &["-fn", &target.display().to_string()]);
    let t = File::open(&target).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0;
    for &(a, b) in used.iter().chain([(size, size)].iter()) {
        let mut p = pos;
        while p < a {
            let n = ((a - p) as usize).min(buf.len());
            t.read_exact_at(&mut buf[..n], p).unwrap();
            assert!(
                buf[..n].iter().all(|&x| x == 0),
                "free bytes at {p} were written on the target"
            );
            p += n as u64;
        }
        pos = b;
    }
    let ls = Loop::attach(&src, 0, None, None, true);
    let lt = Loop::attach(&target, 0, None, None, true);
    let (ms, mt) = (Mount::new(ls.path(), "ext4"), Mount::new(lt.path(), "ext4"));
    let want = digests(ms.path());
    assert!(!want.is_empty());
    assert_eq!(digests(mt.path()), want, "every file matches");
}

/// An incremental pass after files changed on the source: new blocks in
/// use change the plan, yet the receiver answers the chunks that stayed put
/// from its record (carried over to the new plan) and reads only the rest;
/// the target ends identical and clean.
#[test]
fn root_incremental_after_files_changed_carries_the_hash_record_over() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.img");
    run(
        "cp",
        &[
            "--sparse=always",
            &fixtures().join("whole.img").display().to_string(),
            &src.display().to_string(),
        ],
    );
    let target = tmp.path().join("target.img");
    let rx = spawn_receiver(tmp.path(), &[&target], "ROOT-TEST").unwrap();
    let send = |pass: &str| -> serde_json::Value {
        let out = rx
            .sender("root-test")
            .args(["--state-dir", "none", "--json", "--pass", pass])
            .arg(&src)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{pass}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let full = send("full");

    // Write a new 3 MiB file on the source: its blocks were free, so the
    // used map (and the plan) changes.
    {
        let l = Loop::attach(&src, 0, None, None, false);
        let mnt = tempfile::tempdir().unwrap();
        let m = mnt.path().display().to_string();
        run(
            "mount",
            &["-t", "ext4", &l.path().display().to_string(), &m],
        );
        let mut data = vec![0u8; 3 << 20];
        blake3::Hasher::new()
            .update(b"new file")
            .finalize_xof()
            .fill(&mut data);
        std::fs::write(mnt.path().join("ferry-new.bin"), &data).unwrap();
        run("umount", &[&m]);
    }
    let inc = send("incremental");
    let events = std::fs::read_to_string(tmp.path().join("state/events.jsonl")).unwrap();
    assert_eq!(
        events.matches("answered from the hash record").count(),
        1,
        "{events}"
    );
    assert_ne!(inc["chunks"], full["chunks"], "the plan changed");
    let (chunks, sent) = (
        inc["chunks"].as_u64().unwrap(),
        inc["chunks_sent"].as_u64().unwrap(),
    );
    assert_eq!(inc["compared"].as_u64().unwrap(), chunks);
    assert!((3..chunks / 2).contains(&sent), "{inc}");
    drop(rx);

    run("e2fsck", &["-fn", &target.display().to_string()]);
    let ls = Loop::attach(&src, 0, None, None, true);
    let lt = Loop::attach(&target, 0, None, None, true);
    let (ms, mt) = (Mount::new(ls.path(), "ext4"), Mount::new(lt.path(), "ext4"));
    let want = digests(ms.path());
    assert!(want.iter().any(|(p, _)| p == "./ferry-new.bin"), "{want:?}");
    assert_eq!(digests(mt.path()), want, "every file matches");
}

#[test]
fn root_targets_too_small_or_in_use_are_refused_before_writing() {
    fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.img");
    std::fs::write(&src, vec![0x5au8; 8 << 20]).unwrap();

    // A 4 MiB block device cannot take an 8 MiB volume.
    let small = tmp.path().join("small.img");
    std::fs::write(&small, vec![0u8; 4 << 20]).unwrap();
    let lo = Loop::attach(&small, 0, None, None, false);
    let out = send_once(tmp.path(), &[lo.path()], &src, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("TargetTooSmall") && err.contains(&format!("enlarge it by {}", 4 << 20)),
        "{err}"
    );
    assert!(
        std::fs::read(&small).unwrap().iter().all(|&b| b == 0),
        "nothing written"
    );

    // A mounted target is refused when the receiver starts.
    let fsimg = tmp.path().join("fs.img");
    std::fs::File::create(&fsimg)
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    run("mkfs.ext4", &["-q", "-F", &fsimg.display().to_string()]);
    let lo2 = Loop::attach(&fsimg, 0, None, None, false);
    let m = Mount::new(lo2.path(), "ext4");
    let e = spawn_receiver(&tmp.path().join("r2"), &[lo2.path()], "ROOT-TEST")
        .map(|_| ())
        .unwrap_err();
    assert!(e.contains("is in use") && e.contains("mounted on"), "{e}");
    drop(m);
}

/// An image-file target on a filesystem without room for the used data is
/// refused when its used ranges are reserved, before a byte is written;
/// with room, the same pass goes through.
#[test]
fn root_image_file_target_without_room_is_refused_before_writing() {
    fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src.img");
    std::fs::write(&src, vec![0x5au8; 8 << 20]).unwrap();
    let fsimg = tmp.path().join("fs.img");
    std::fs::File::create(&fsimg)
        .unwrap()
        .set_len(6 << 20)
        .unwrap();
    run("mkfs.ext4", &["-q", "-F", &fsimg.display().to_string()]);
    let lo = Loop::attach(&fsimg, 0, None, None, false);
    let m = Mount::writable(lo.path(), "ext4");
    let target = m.path().join("target.img");
    let out = send_once(&tmp.path().join("r"), &[&target], &src, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("TargetTooSmall")
            && err.contains("its filesystem has no room for the 8.0 MiB of used data")
            && err.contains("nothing written"),
        "{err}"
    );
    assert!(
        !std::fs::read(&target).unwrap().contains(&0x5a),
        "nothing written"
    );

    // Half the data fits: reserved, sent and equal.
    std::fs::remove_file(&target).unwrap();
    std::fs::write(&src, vec![0x5au8; 2 << 20]).unwrap();
    let out = send_once(&tmp.path().join("r2"), &[&target], &src, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&target).unwrap(), vec![0x5au8; 2 << 20]);
    drop(m);
}

#[test]
fn root_block_device_sources_are_read_around_the_page_cache() {
    use ferry::disk::ReadAt;
    use ferry::disk::source::SourceDisk;
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("src.img");
    let mut data = vec![0u8; 8 << 20];
    blake3::Hasher::new()
        .update(b"direct")
        .finalize_xof()
        .fill(&mut data);
    std::fs::write(&img, &data).unwrap();
    for sector in [512u32, 4096] {
        let lo = Loop::attach(&img, 0, None, Some(sector), true);
        let d = SourceDisk::open(lo.path()).unwrap().with_direct();
        assert!(d.direct(), "{}: O_DIRECT descriptor", lo.0);
        // Aligned: through O_DIRECT; unaligned: buffered; both exact.
        let mut b = ferry::disk::aligned::AlignedBuf::new(1 << 20);
        d.read_exact_at(b.as_mut(), 3 << 20).unwrap();
        assert_eq!(b.as_ref(), &data[3 << 20..4 << 20]);
        let mut c = vec![0u8; 100];
        d.read_exact_at(&mut c, 4097).unwrap();
        assert_eq!(c, data[4097..4197]);
        let mut e = ferry::disk::aligned::AlignedBuf::new(4096);
        d.read_exact_at(e.as_mut(), (8 << 20) - 4096).unwrap();
        assert_eq!(e.as_ref(), &data[(8 << 20) - 4096..]);
        assert!(
            d.read_exact_at(e.as_mut(), 8 << 20).is_err(),
            "past the end"
        );

        // A whole pass from the device.
        let target = tmp.path().join(format!("target-{sector}.img"));
        let out = send_once(
            &tmp.path().join(format!("r{sector}")),
            &[&target],
            lo.path(),
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            std::fs::read(&target).unwrap(),
            data,
            "{sector}-byte sectors"
        );
    }
}
