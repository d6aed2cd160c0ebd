#!/usr/bin/env bash
# ferry demo.
#
#   scripts/demo.sh [--auto]
#
# Builds demo disks with real tools (GPT with ESP, BIOS boot, ext4, swap and
# LVM; MBR with logical partitions; a 4Kn disk; a VG spanning two disks;
# btrfs, ntfs, LUKS, FAT16) and runs the real `ferry inventory` on them (the
# tree a technician reads, then the JSON the planner reads). Then the
# migration runs in QEMU guests booted from ferry's image (built when
# missing): a receiver guest with a blank disk, and a source guest with the
# GPT demo disk that sends it unattended from kernel arguments, its console
# shown as it runs; the receiver's report comes from its control API, and
# the target is checked on the host (used bytes equal, fsck clean). The TUI
# joins with the TUI issue.
# --auto runs without pausing. Needs root (loop devices); installs what it needs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin
auto=0
case ${1:-} in
    --auto) auto=1 ;;
    "") ;;
    *) echo "usage: scripts/demo.sh [--auto]" >&2; exit 2 ;;
esac
[[ -t 0 ]] || auto=1

die() { echo "demo.sh: $*" >&2; exit 1; }
pause() {
    if ((auto == 0)); then
        read -r -p "-- press Enter to continue --" _ || true
    fi
}
[[ $(id -u) -eq 0 ]] || die "run as root: the demo disks are built with loop devices"
command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
command -v jq >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null; }

echo "==> building ferry (release)"
cargo build --release --locked --quiet
ferry=$PWD/target/release/ferry

demo=$PWD/target/demo
echo "==> building demo disks in $demo (scripts/fixtures.sh)"
bash scripts/fixtures.sh "$demo" >/dev/null

cd "$demo"
disks=(gpt.img mbr.img gpt4k.img span1.img span2.img whole.img misc.img)
echo
echo "==> ferry inventory ${disks[*]}"
echo
"$ferry" inventory "${disks[@]}"
pause

echo "==> the same, as JSON (what the planner and the TUI read), summarised with jq"
"$ferry" inventory --json "${disks[@]}" | jq -r '
  (.disks[] | .path as $d |
     (.partitions[] | select(.content) | "\(.volume)\t\(.content.fs)\t\(.size)\t\(.content.used_bytes)\t1"),
     (select(.content) | "\($d)\t\(.content.fs)\t\(.size)\t\(.content.used_bytes)\t1")),
  (.volume_groups[].lvs[] | "\(.volume)\t\(.content.fs // "-")\t\(.size)\t\(.content.used_bytes // 0)\t0")
' | awk -F'\t' 'BEGIN { printf "%-14s %-12s %12s %12s\n", "volume", "holds", "bytes", "used bytes" }
                 { printf "%-14s %-12s %12d %12d\n", $1, $2, $3, $4; if ($5) { size += $3; used += $4 } }
                 END { printf "\nMigrating every disk would read %.1f%% of their bytes (LVs are inside their PVs).\n", 100 * used / size }'
pause

echo
echo "==> migration in QEMU guests: a receiver guest and a source guest boot ferry's image"
need=()
for p in qemu-system-x86 ovmf ipxe-qemu; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cd "$ROOT"
if [[ ! -s image/out/ferry-initrd.img || ! -s image/out/ferry-vmlinuz ]]; then
    echo "==> building the boot image (scripts/build-image.sh, a few minutes the first time)"
    bash scripts/build-image.sh --no-iso --no-pxe
fi
args=()
((auto)) && args=(--auto)
FERRY_FIXTURES=$demo cargo run --release --locked --quiet -p qemu-tests --bin demo -- "${args[@]}"
echo
echo "The demo disks stay in $demo; try: $ferry inventory --json --ranges $demo/whole.img"
