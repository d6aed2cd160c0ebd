//! Fast tier: the `ferry inventory` command line on small images made in the
//! test itself (no root, no external tools).

use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

/// A 4 MiB GPT disk with one "Linux filesystem" partition holding a swap header.
fn gpt_image(dir: &Path) -> std::path::PathBuf {
    let ss = 512u64;
    let mut cur = Cursor::new(vec![0u8; 4 << 20]);
    let mut gpt = gptman::GPT::new_from(&mut cur, ss, [0x11; 16]).unwrap();
    let linux = [
        0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d,
        0xe4,
    ];
    gpt[1] = gptman::GPTPartitionEntry {
        partition_type_guid: linux,
        unique_partition_guid: [0x22; 16],
        starting_lba: 2048,
        ending_lba: 2048 + 2047,
        attribute_bits: 0,
        partition_name: "swap".into(),
    };
    gpt.write_into(&mut cur).unwrap();
    gptman::GPT::write_protective_mbr_into(&mut cur, ss).unwrap();
    let mut d = cur.into_inner();
    let p = 2048 * 512;
    d[p + 4086..p + 4096].copy_from_slice(b"SWAPSPACE2");
    d[p + 1024] = 1;
    d[p + 1028..p + 1032].copy_from_slice(&255u32.to_le_bytes());
    d[p + 1052..p + 1057].copy_from_slice(b"swap0");
    let path = dir.join("small.img");
    std::fs::write(&path, d).unwrap();
    path
}

#[test]
fn json_schema_on_a_gpt_image() {
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(t.path());
    let out = ferry(&["inventory", "--json", "--ranges", img.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["schema"], 1);
    let d = &j["disks"][0];
    assert_eq!(d["kind"], "file");
    assert_eq!(d["size"], 4 << 20);
    assert_eq!(d["logical_sector_size"], 512);
    assert_eq!(d["table"]["type"], "gpt");
    assert_eq!(
        d["table"]["disk_guid"],
        "11111111-1111-1111-1111-111111111111"
    );
    assert_eq!(d["table"]["header"], "primary");
    assert_eq!(d["table"]["protective_mbr"], "protective");
    let p = &d["partitions"][0];
    assert_eq!(p["volume"], format!("{}:1", img.display()));
    assert_eq!(p["start"], 1 << 20);
    assert_eq!(p["size"], 1 << 20);
    assert_eq!(p["type_name"], "Linux filesystem");
    assert_eq!(p["name"], "swap");
    let c = &p["content"];
    assert_eq!(c["fs"], "swap");
    assert_eq!(c["label"], "swap0");
    assert_eq!(c["used_bytes"], 4096);
    assert_eq!(c["used_method"], "header");
    assert_eq!(c["used_ranges"], serde_json::json!([[0, 4096]]));
    assert_eq!(c["used_percent"], 0.4);
    assert!(j["errors"].as_array().unwrap().is_empty());
}

#[test]
fn tree_output_names_volumes() {
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(t.path());
    let out = ferry(&["inventory", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("└─ GPT 11111111-1111-1111-1111-111111111111"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}:1  Linux filesystem  at 1.0 MiB, 1.0 MiB  \"swap\"",
            img.display()
        )),
        "{text}"
    );
    assert!(text.contains("swap \"swap0\""), "{text}");
    assert!(text.contains("used 4.0 KiB of 1.0 MiB (0.4%)"), "{text}");
}

#[test]
fn damaged_table_exits_2_with_one_line() {
    let t = tempfile::tempdir().unwrap();
    let img = gpt_image(t.path());
    let mut d = std::fs::read(&img).unwrap();
    d[512 + 30] ^= 1; // primary header
    let n = d.len();
    d[n - 512 + 30] ^= 1; // backup header
    std::fs::write(&img, d).unwrap();
    let out = ferry(&["inventory", img.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "ferry: error: {}: at byte 512: both GPT headers are damaged",
            img.display()
        )),
        "{err}"
    );
}

#[test]
fn missing_path_exits_1() {
    let out = ferry(&["inventory", "/nonexistent/disk.img"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/disk.img: cannot open: No such file or directory"),
        "{err}"
    );
}

#[test]
fn ranges_need_json() {
    let out = ferry(&["inventory", "--ranges", "x.img"]);
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}
