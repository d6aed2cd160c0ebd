#!/usr/bin/env bash
# ferry demo.
#
#   scripts/demo.sh [--auto]
#
# Until the migration demo runs in QEMU guests with the TUI (the boot-image
# issue), this builds demo disks with real tools (GPT with ESP, BIOS boot,
# ext4, swap and LVM; MBR with logical partitions; a 4Kn disk; a VG spanning
# two disks; btrfs, ntfs, LUKS, FAT16), runs the real `ferry inventory` on
# them (the tree a technician reads, then the JSON the planner reads), and
# migrates the GPT demo disk to a `ferry receive` on 127.0.0.1 over TLS, then
# verifies it and shows the receiver's report.
# --auto runs without pausing. Needs root (loop devices); installs what it needs.
set -euo pipefail

cd "$(dirname "$0")/.."
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
echo "==> migration: ferry receive on 127.0.0.1 (a stand-in for the intermediate instance)"
rm -rf "$demo/receiver" "$demo/source" "$demo/target.img"
"$ferry" receive --target "$demo/target.img" --state-dir "$demo/receiver" \
    --listen 127.0.0.1 --data-port 0 --api-port 0 > "$demo/receiver.out" 2> "$demo/receiver.log" &
rxpid=$!
trap 'kill $rxpid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q '^targets:' "$demo/receiver.out" 2>/dev/null && break; sleep 0.1; done
cat "$demo/receiver.out"
port=$(awk -F: '/^listening:/ {print $NF}' "$demo/receiver.out")
fp=$(awk '/^fingerprint:/ {print $2}' "$demo/receiver.out")
code=$(awk '/^pairing code:/ {print $3}' "$demo/receiver.out")
api=$(awk '/^api:/ {sub("https://", "", $2); print $2}' "$demo/receiver.out")
echo
echo "==> ferry netcheck: the network, the disk and compression, and an ETA"
"$ferry" netcheck --receiver "127.0.0.1:$port" --fingerprint "$fp" --code "$code" --seconds 1 gpt.img
pause
echo
echo "==> ferry send --receiver 127.0.0.1:$port --fingerprint ${fp:0:16}... --code $code gpt.img"
"$ferry" send --receiver "127.0.0.1:$port" --fingerprint "$fp" --code "$code" --task demo --state-dir "$demo/source" gpt.img
echo
echo "==> the target, as ferry sees it"
"$ferry" inventory "$demo/target.img" | head -12
echo
echo "==> ferry send --pass verify (compares every chunk's hash, sends nothing)"
"$ferry" send --receiver "127.0.0.1:$port" --fingerprint "$fp" --code "$code" --task demo --state-dir "$demo/source" --pass verify gpt.img
echo
echo "==> the task on the receiver's control API (ferry api = curl with the pinned certificate)"
"$ferry" api --receiver "$api" --fingerprint "$fp" --code "$code" /v1/tasks/demo |
    jq '{task, state, pass, bytes_total, bytes_done, chunks_held, chunks_differ}'
echo
echo "==> the receiver's report, over the API (files in $demo/receiver/reports/)"
ls "$demo/receiver/reports/"
"$ferry" api --receiver "$api" --fingerprint "$fp" --code "$code" /v1/tasks/demo/report |
    jq '{task, pass, state, bytes_written, wire_bytes, compression_ratio,
         volumes: [.volumes[] | {name, used_bytes, chunks, chunks_held, digest}],
         passes: [.passes[] | {pass, state, bytes_written}]}'
kill $rxpid 2>/dev/null || true
echo
echo "The demo disks stay in $demo; try: $ferry inventory --json --ranges $demo/whole.img"
