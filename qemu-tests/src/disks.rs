//! Disks for the guests: copies of the fixture images that
//! `scripts/fixtures.sh` builds with real tools (gpt.img, mbr.img,
//! span1.img + span2.img, ...), and blank targets.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The fixture directory (`FERRY_FIXTURES`, default `target/fixtures`),
/// built with `scripts/fixtures.sh` (as root) when its manifest is missing.
pub fn fixtures() -> &'static Path {
    static D: OnceLock<PathBuf> = OnceLock::new();
    D.get_or_init(|| {
        let dir = std::env::var_os("FERRY_FIXTURES")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::target_dir().join("fixtures"));
        if !dir.join("manifest.json").is_file() {
            crate::require_root();
            eprintln!(
                "building the fixtures: scripts/fixtures.sh {}",
                dir.display()
            );
            let st = Command::new("bash")
                .arg(crate::workspace().join("scripts/fixtures.sh"))
                .arg(&dir)
                .status()
                .expect("running scripts/fixtures.sh");
            assert!(st.success(), "scripts/fixtures.sh {} failed", dir.display());
        }
        dir
    })
}

/// `manifest.json` of the fixtures.
pub fn manifest() -> &'static Value {
    static M: OnceLock<Value> = OnceLock::new();
    M.get_or_init(|| {
        let p = fixtures().join("manifest.json");
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        serde_json::from_str(&text).unwrap()
    })
}

/// The manifest entry of fixture image `name` (`gpt.img`).
pub fn image_entry(name: &str) -> &'static Value {
    manifest()["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == name || i["path"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the fixtures' manifest"))
}

/// The manifest entry of volume group `vg`.
pub fn vg_entry(vg: &str) -> &'static Value {
    manifest()["vgs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vg"] == vg)
        .unwrap_or_else(|| panic!("VG {vg} is not in the fixtures' manifest"))
}

/// Copy fixture image `name` to `dest`, sparse; returns its size.
pub fn copy_fixture(name: &str, dest: &Path) -> u64 {
    let src = fixtures().join(name);
    let st = Command::new("cp")
        .arg("--sparse=always")
        .arg(&src)
        .arg(dest)
        .status()
        .expect("running cp");
    assert!(
        st.success(),
        "cp {} {} failed",
        src.display(),
        dest.display()
    );
    std::fs::metadata(dest).unwrap().len()
}

/// A new all-zero (sparse) image of `size` bytes at `dest`.
pub fn blank(dest: &Path, size: u64) {
    let f = std::fs::File::create(dest).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
    f.set_len(size).unwrap();
}

/// Overwrite `data.len()` bytes of `img` at `offset` (a change made on the
/// "source server" between two boots).
pub fn poke(img: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(img).unwrap();
    f.write_all_at(data, offset).unwrap();
    f.sync_all().unwrap();
}

/// The byte offset in `img` of block `n` of file `path` in the ext2/3/4
/// filesystem at `[offset, offset+size)` of `img` (debugfs's `bmap` on a
/// copy of the partition), with the block size.
pub fn ext_file_block(
    img: &Path,
    offset: u64,
    size: u64,
    path: &str,
    n: u64,
    scratch: &Path,
) -> (u64, u64) {
    let part = scratch.join("bmap-part.img");
    crate::check::cut(img, offset, size, &part);
    let run = |req: &str| -> String {
        let out = Command::new("debugfs")
            .args(["-R", req])
            .arg(&part)
            .output()
            .expect("running debugfs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let block: u64 = run(&format!("bmap {path} {n}"))
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("debugfs bmap {path} {n} on {}: no block", img.display()));
    let stats = run("stats");
    let bs: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("Block size:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("debugfs stats gives the block size");
    let _ = std::fs::remove_file(&part);
    assert!(block > 0, "{path}: block {n} is a hole");
    (offset + block * bs, bs)
}

/// The contents of `path` in the ext2/3/4 filesystem at `[offset,
/// offset+size)` of `img` (debugfs's `cat`).
pub fn ext_cat(img: &Path, offset: u64, size: u64, path: &str, scratch: &Path) -> Vec<u8> {
    let part = scratch.join("cat-part.img");
    crate::check::cut(img, offset, size, &part);
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(&part)
        .output()
        .expect("running debugfs");
    let _ = std::fs::remove_file(&part);
    out.stdout
}
