#!/usr/bin/env bash
# Seed corpora for the fuzz targets, made with real tools on small image files
# (no root needed), so a short smoke run starts from valid structures.
#
#   scripts/fuzz-seeds.sh CORPUS_DIR [FIXTURES_DIR]
#
# Writes CORPUS_DIR/<target>/seed-*. With FIXTURES_DIR (scripts/fixtures.sh
# output), the LVM target is also seeded with the head of a real PV (pvcreate
# needs a block device, so it cannot run on a plain file here).
set -euo pipefail
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
[[ $# -ge 1 && $# -le 2 ]] || { echo "usage: scripts/fuzz-seeds.sh CORPUS_DIR [FIXTURES_DIR]" >&2; exit 2; }
out=$1
fixtures=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"/{gpt,mbr,lvm_metadata,ext4_used,fs_used,frame}

img() { rm -f "$tmp/$1"; truncate -s "$2" "$tmp/$1"; echo "$tmp/$1"; }

# GPT on 512-byte sectors, 128 KiB.
g=$(img gpt.img 128k)
sgdisk -n 1:40:100 -t 1:EF00 -n 2:101:200 -t 2:8E00 "$g" >/dev/null
cp "$g" "$out/gpt/seed-gpt512"

# MBR with an extended partition and two logicals.
m=$(img mbr.img 128k)
printf 'label: dos\nstart=4,size=20,type=83,bootable\nstart=30,size=200,type=5\nstart=32,size=20,type=83\nstart=60,size=20,type=82\n' \
    | sfdisk -q "$m"
cp "$m" "$out/mbr/seed-mbr-logicals"

# ext2 and ext4 (1 KiB blocks), swap, vfat, ntfs.
e=$(img ext4.img 128k)
mkfs.ext4 -q -F -b 1024 -N 16 -O ^has_journal "$e" >/dev/null 2>&1
cp "$e" "$out/ext4_used/seed-ext4"
cp "$e" "$out/fs_used/seed-ext4"
e2=$(img ext2.img 128k)
mkfs.ext2 -q -F -b 1024 -N 16 "$e2" >/dev/null 2>&1
cp "$e2" "$out/ext4_used/seed-ext2"
s=$(img swap.img 64k)
mkswap -L seed "$s" >/dev/null 2>&1
cp "$s" "$out/fs_used/seed-swap"
v=$(img vfat.img 256k)
mkfs.vfat -n SEED "$v" >/dev/null
cp "$v" "$out/fs_used/seed-vfat"
n=$(img ntfs.img 2M)
mkntfs -q -F -Q -L seed "$n" >/dev/null 2>&1
cp "$n" "$out/fs_used/seed-ntfs"

# LVM: label, metadata area header and text ring of a real PV.
if [[ -n $fixtures && -f $fixtures/span1.img ]]; then
    head -c 1048576 "$fixtures/span1.img" > "$out/lvm_metadata/seed-pv"
fi
printf 'vg0 {\nid = "x"\nseqno = 1\nextent_size = 8192\nphysical_volumes {\npv0 {\nid = "y"\npe_start = 2048\npe_count = 10\n}\n}\nlogical_volumes {\nlv {\nid = "z"\nstatus = ["VISIBLE"]\nsegment1 {\nstart_extent = 0\nextent_count = 4\ntype = "striped"\nstripe_count = 1\nstripes = ["pv0", 0]\n}\n}\n}\n}\n' \
    > "$out/lvm_metadata/seed-text"
# Wire frames: u32 LE length, kind byte, body (docs/protocol.md).
printf '\x09\x00\x00\x00\x10\x07\x00\x00\x00\x00\x00\x00\x00' > "$out/frame/seed-join"
printf '\x06\x00\x00\x00\x0e\x03\x64\x00\x00\x00' > "$out/frame/seed-control"
printf '\x09\x00\x00\x00\x09\x05\x00\x00\x00\x00\x00\x00\x00' > "$out/frame/seed-checkpoint"
printf '\x05\x00\x00\x00\x0f\xaa\xbb\xcc\xdd' > "$out/frame/seed-probe"
printf '\x0a\x00\x00\x00\x05\x03\x00\x00\x00\x00\x00\x00\x00\x01' > "$out/frame/seed-accepted"
echo "fuzz seeds in $out: $(find "$out" -type f | wc -l) files"
