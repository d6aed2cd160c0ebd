//! Checks after a migration, all on the host and without loop devices or
//! device-mapper: the bytes of every used range equal on source and
//! target, filesystem checks on partitions and LVs cut out of the target
//! images, the digests the source computes, and the receiver's report
//! over its control API.

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferry::disk::ReadAt;
use ferry::disk::sysfs::Roots;
use ferry::inventory::{InventoryConfig, inventory};
use ferry::proto::digest;
use ferry::proto::message::HashAlgo;
use ferry::source::chunk::{CHUNK_SIZE, pieces};
use ferry::source::tally::digest_of;
use ferry::source::volumes::open_volumes;
use serde_json::Value;

/// Each image's used byte ranges as ferry's inventory sees them (the
/// images inventoried together, so a VG spanning them is whole).
pub fn used_ranges(images: &[PathBuf]) -> Vec<Vec<(u64, u64)>> {
    let inv = inventory(&InventoryConfig {
        paths: images.to_vec(),
        with_ranges: true,
        roots: Roots::system(),
    })
    .unwrap_or_else(|e| panic!("inventory of {images:?}: {e:#}"));
    assert!(
        inv.errors.is_empty(),
        "inventory of {images:?}: {:?}",
        inv.errors
    );
    images
        .iter()
        .map(|p| {
            let d = inv
                .disks
                .iter()
                .find(|d| Path::new(&d.path) == p)
                .unwrap_or_else(|| panic!("{} not in its inventory", p.display()));
            d.used_ranges
                .as_ref()
                .expect("asked for ranges")
                .iter()
                .collect()
        })
        .collect()
}

/// Compare `ranges` of `src` and `tgt`; the number of bytes compared, or
/// where the first difference is.
pub fn compare_ranges(src: &Path, tgt: &Path, ranges: &[(u64, u64)]) -> Result<u64, String> {
    let (s, t) = (File::open(src).unwrap(), File::open(tgt).unwrap());
    let tlen = t.metadata().unwrap().len();
    let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut total = 0;
    for &(start, end) in ranges {
        if end > tlen {
            return Err(format!(
                "{}: used range {start}..{end} of {} lies past the target's end ({tlen})",
                tgt.display(),
                src.display()
            ));
        }
        let mut p = start;
        while p < end {
            let n = ((end - p) as usize).min(a.len());
            s.read_exact_at(&mut a[..n], p).unwrap();
            t.read_exact_at(&mut b[..n], p).unwrap();
            if a[..n] != b[..n] {
                let i = a[..n]
                    .iter()
                    .zip(&b[..n])
                    .position(|(x, y)| x != y)
                    .unwrap();
                return Err(format!(
                    "{} differs from {} at byte {} (used range {start}..{end})",
                    tgt.display(),
                    src.display(),
                    p + i as u64
                ));
            }
            p += n as u64;
            total += n as u64;
        }
    }
    Ok(total)
}

/// Assert that every used byte of each source image is on its target
/// (pairs in order); returns the bytes compared.
pub fn assert_used_equal(pairs: &[(PathBuf, PathBuf)]) -> u64 {
    let srcs: Vec<PathBuf> = pairs.iter().map(|(s, _)| s.clone()).collect();
    let ranges = used_ranges(&srcs);
    let mut total = 0;
    for ((s, t), r) in pairs.iter().zip(&ranges) {
        assert!(!r.is_empty(), "{} has no used ranges", s.display());
        total += compare_ranges(s, t, r).unwrap_or_else(|e| panic!("{e}"));
    }
    total
}

/// Copy `[off, off+len)` of `img` into a new sparse file `out` (skipping
/// all-zero blocks), to run a filesystem check on it without a loop device.
pub fn cut(img: &Path, off: u64, len: u64, out: &Path) {
    let s = File::open(img).unwrap();
    let d = File::create(out).unwrap();
    d.set_len(len).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut p = 0;
    while p < len {
        let n = ((len - p) as usize).min(buf.len());
        s.read_exact_at(&mut buf[..n], off + p).unwrap();
        if !digest::is_zero(&buf[..n]) {
            d.write_all_at(&buf[..n], p).unwrap();
        }
        p += n as u64;
    }
}

/// Run the read-only check for `fstype` on the filesystem image `file`
/// (`e2fsck -fn`, `xfs_repair -n -f`); panics with its output when it
/// finds a problem. Returns whether a check ran (other types have none).
pub fn fsck(file: &Path, fstype: &str, what: &str) -> bool {
    let (prog, args): (&str, &[&str]) = match fstype {
        "ext2" | "ext3" | "ext4" => ("e2fsck", &["-fn"]),
        "xfs" => ("xfs_repair", &["-n", "-f"]),
        _ => return false,
    };
    let out = Command::new(prog)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {prog}: {e}"));
    assert!(
        out.status.success(),
        "{prog} on {what} ({fstype}) failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Check every ext/xfs partition of fixture `image` (its manifest entry)
/// as it lies on `target`; returns the volumes checked.
pub fn fsck_partitions(entry: &Value, target: &Path, scratch: &Path) -> Vec<String> {
    let mut done = Vec::new();
    for v in entry["volumes"].as_array().unwrap() {
        let fstype = v["fstype"].as_str().unwrap_or("");
        if !matches!(fstype, "ext2" | "ext3" | "ext4" | "xfs") || v.get("number").is_none() {
            continue;
        }
        let name = v["name"].as_str().unwrap();
        let out = scratch.join(format!("fsck-{}.img", name.replace([':', '/'], "-")));
        cut(
            target,
            v["offset"].as_u64().unwrap(),
            v["size"].as_u64().unwrap(),
            &out,
        );
        if fsck(&out, fstype, &format!("{name} on {}", target.display())) {
            done.push(name.to_string());
        }
        let _ = std::fs::remove_file(&out);
    }
    done
}

/// Check every ext/xfs LV of `vg` (its manifest entry), rebuilt from its
/// segments as `lvs` described them with each PV image replaced by its
/// target (`targets`: fixture image name -> target path); returns the LVs
/// checked.
pub fn fsck_lvs(vg: &Value, targets: &[(&str, &Path)], scratch: &Path) -> Vec<String> {
    let mut done = Vec::new();
    for lv in vg["lvs"].as_array().unwrap() {
        let fstype = lv["fstype"].as_str().unwrap_or("");
        if !matches!(fstype, "ext2" | "ext3" | "ext4" | "xfs") {
            continue;
        }
        let name = lv["name"].as_str().unwrap();
        let out = scratch.join(format!("fsck-{}.img", name.replace('/', "-")));
        rebuild_lv(lv, targets, &out);
        if fsck(&out, fstype, &format!("LV {name} on the targets")) {
            done.push(name.to_string());
        }
        let _ = std::fs::remove_file(&out);
    }
    done
}

/// An LV's bytes from its segments (linear or striped) read out of the
/// images standing in for its PVs, into a new sparse file.
pub fn rebuild_lv(lv: &Value, images: &[(&str, &Path)], out: &Path) {
    let f = File::create(out).unwrap();
    f.set_len(lv["size"].as_u64().unwrap()).unwrap();
    for seg in lv["segments"].as_array().unwrap() {
        let lv_off = seg["lv_offset"].as_u64().unwrap();
        let size = seg["size"].as_u64().unwrap();
        let stripes: Vec<(File, u64)> = seg["stripes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let img = s["image"].as_str().unwrap();
                let path = images
                    .iter()
                    .find(|(n, _)| *n == img)
                    .unwrap_or_else(|| panic!("no target given for PV image {img}"))
                    .1;
                (File::open(path).unwrap(), s["offset"].as_u64().unwrap())
            })
            .collect();
        let chunk = match seg["stripe_size"].as_u64().unwrap_or(0) {
            0 => size,
            n => n,
        };
        let n = stripes.len() as u64;
        let mut buf = vec![0u8; chunk.min(8 << 20) as usize];
        let mut pos = 0;
        while pos < size {
            let c = pos / chunk;
            let (src, base) = &stripes[(c % n) as usize];
            let src_off = base + (c / n) * chunk + pos % chunk;
            let len = (chunk - pos % chunk).min(size - pos).min(buf.len() as u64) as usize;
            src.read_exact_at(&mut buf[..len], src_off).unwrap();
            f.write_all_at(&buf[..len], lv_off + pos).unwrap();
            pos += len as u64;
        }
    }
}

/// The digest the source computes for each whole-disk volume `images`
/// (BLAKE3 over the BLAKE3 hashes of its 1 MiB chunks, as hex lines),
/// computed here from the same images with ferry's own used maps.
pub fn expected_digests(images: &[PathBuf]) -> Vec<String> {
    let names: Vec<String> = images.iter().map(|p| p.display().to_string()).collect();
    let vols = open_volumes(&names, images, &Roots::system())
        .unwrap_or_else(|e| panic!("opening {names:?}: {e:#}"));
    let mut buf = vec![0u8; CHUNK_SIZE as usize];
    vols.iter()
        .map(|v| {
            let hashes: Vec<String> = pieces(&v.used, CHUNK_SIZE)
                .map(|(off, len)| {
                    let b = &mut buf[..len as usize];
                    v.reader.read_exact_at(b, off).unwrap();
                    digest::hash_hex(HashAlgo::Blake3, &digest::hash(HashAlgo::Blake3, b))
                })
                .collect();
            digest_of(hashes.iter().map(String::as_str))
        })
        .collect()
}

/// The receiver's control API, as the host reaches it through the slirp
/// forward: the certificate pinned by the fingerprint its console printed.
pub struct Api {
    pub addr: SocketAddr,
    pub fingerprint: [u8; 32],
    pub token: String,
}

impl Api {
    pub fn new(port: u16, fingerprint_hex: &str, token: &str) -> Api {
        Api {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            fingerprint: ferry::proto::tls::parse_fingerprint(fingerprint_hex)
                .unwrap_or_else(|e| panic!("fingerprint {fingerprint_hex:?}: {e}")),
            token: token.to_string(),
        }
    }

    /// One request: `(status, body)`.
    pub fn request(&self, method: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(20),
                ferry::receiver::api::request(
                    self.addr,
                    self.fingerprint,
                    &self.token,
                    method,
                    path,
                    None,
                ),
            )
            .await
            .map_err(|_| anyhow::anyhow!("{method} {path}: no answer in 20 s"))?
        })
    }

    /// GET `path` until it answers 200 (the guest's API may still be
    /// starting, a report appears when its pass ends), up to `timeout`.
    pub fn get_json(&self, path: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.request("GET", path) {
                Ok((200, body)) => {
                    return serde_json::from_str(&body)
                        .unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"));
                }
                Ok((code, body)) => format!("HTTP {code}: {body}"),
                Err(e) => format!("{e:#}"),
            };
            assert!(
                Instant::now() < deadline,
                "GET {path} on the receiver's API ({}): {last}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}
