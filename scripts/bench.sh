#!/usr/bin/env bash
# ferry benchmarks, run in one go; prints figures and ratios against baselines.
#
#   scripts/bench.sh [WORKDIR]
#
# Inventory: how long `ferry inventory` takes to read the used maps of large,
# mostly empty filesystems (1 TiB ext4 and xfs on sparse image files holding
# a few hundred MiB of files), against the tools an engineer would otherwise
# use to learn the same thing (`dumpe2fs` reading every group, `xfs_db
# freesp`), and how much of each volume a migration would read.
# Needs root (mount for xfs). Later issues add the transfer benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin
[[ $(id -u) -eq 0 ]] || { echo "bench.sh: run as root (mounts an xfs image)" >&2; exit 1; }
work=${1:-$PWD/target/bench}
rm -rf "$work"
mkdir -p "$work"
trap 'umount "$work/mnt" 2>/dev/null || true' EXIT

cargo build --release --locked --quiet
ferry=$PWD/target/release/ferry

secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
best() { local b=999999 t i; for i in 1 2 3; do t=$(secs "$@"); b=$(echo "if ($t < $b) $t else $b" | bc); done; echo "$b"; }

# A tree of ~256 MiB: 64 x 4 MiB files of pseudo-random data.
tree=$work/tree
mkdir -p "$tree"
for i in $(seq 1 64); do
    openssl rand -out "$tree/f$i" $((4 << 20))
done

echo "== building 1 TiB sparse images"
ext=$work/ext4.img xfs=$work/xfs.img
truncate -s 1T "$ext" "$xfs"
mke2fs -q -F -t ext4 -d "$tree" "$ext"
mkfs.xfs -q -f "$xfs"
mkdir -p "$work/mnt"
mount -o loop "$xfs" "$work/mnt"
cp -r "$tree/." "$work/mnt/"
umount "$work/mnt"
sync
echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true

printf '\n%-6s %10s %12s %12s %9s %10s\n' fs "ferry s" "baseline s" "ratio" "used MiB" "of volume"
row() {
    local name=$1 img=$2 base=$3; shift 3
    local tf tb used pct
    tf=$(best "$ferry" inventory "$img")
    tb=$(best "$@")
    used=$("$ferry" inventory --json "$img" | jq '.disks[0].content.used_bytes')
    pct=$("$ferry" inventory --json "$img" | jq '.disks[0].content.used_percent')
    printf '%-6s %10.3f %12.3f %11.1fx %9d %9s%%   baseline: %s\n' "$name" "$tf" "$tb" \
        "$(echo "$tb / $tf" | bc -l)" $((used >> 20)) "$pct" "$base"
}
row ext4 "$ext" "dumpe2fs (every group)" dumpe2fs "$ext"
row xfs "$xfs" "xfs_db -r -c 'freesp -s'" xfs_db -r -c "freesp -s" "$xfs"
echo
echo "(best of 3 runs each; ratio = baseline time / ferry time; page cache warm after the first run)"
