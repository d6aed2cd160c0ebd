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
# the target is checked on the host (used bytes equal, fsck clean). Before
# that, the TUI plans gpt.img onto a larger target and sends it to a local
# receiver (you drive it; with --auto, tmux presses the keys and each step's
# screen is printed).
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
echo "==> the TUI: gpt.img planned onto a 900 MiB target and sent to a local receiver"
command -v tmux >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; }
tui=$demo/tui
rm -rf "$tui" && mkdir -p "$tui"
"$ferry" receive --listen 127.0.0.1 --data-port 0 --api-port 0 --code DEMO-TUI1 \
    --state-dir "$tui/rx" --target "$tui/target.img" >"$tui/rx.log" 2>&1 &
rxpid=$!
trap 'kill $rxpid 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q '^targets:' "$tui/rx.log" 2>/dev/null && break; sleep 0.1; done
port=$(sed -n 's/^listening: .*:\([0-9]*\)$/\1/p' "$tui/rx.log")
fp=$(sed -n 's/^fingerprint: //p' "$tui/rx.log")
[[ -n $port && -n $fp ]] || die "the local receiver did not start: $(cat "$tui/rx.log")"
cat >"$tui/job.toml" <<JOB
[receiver]
address = "127.0.0.1:$port"
fingerprint = "$fp"
code = "DEMO-TUI1"
JOB
if ((auto == 0)); then
    echo "The receiver listens on 127.0.0.1:$port; its address, fingerprint and code are filled in."
    echo "Walk the six steps: Enter goes on, g grows a volume, t sets the target size, q quits."
    pause
    "$ferry" tui "$demo/gpt.img" --job "$tui/job.toml" --state-dir "$tui/src"
else
    # Unattended: the same keys a technician presses, through tmux; each
    # step's screen is printed.
    sock=ferry-demo-$$
    tmux -L "$sock" new-session -d -x 100 -y 30 -s demo \
        "TERM=xterm-256color $ferry tui $demo/gpt.img --job $tui/job.toml --state-dir $tui/src; sleep 30"
    screen() { tmux -L "$sock" capture-pane -p -t demo; }
    waitfor() {
        for _ in $(seq 600); do screen | grep -q "$1" && return 0; sleep 0.2; done
        screen; die "the TUI never showed '$1'"
    }
    keys() { for k in "$@"; do tmux -L "$sock" send-keys -t demo "$k"; sleep 0.2; done; }
    typed() { tmux -L "$sock" send-keys -t demo -l "$1"; sleep 0.2; }
    show() { echo; echo "--- $1"; screen; }
    waitfor "part 5"; show "1. Disks"
    keys Enter t C-u; typed 900MiB; keys Enter j j g C-u; typed 200MiB; keys Enter
    keys j j g C-u; typed max; keys Enter j j g C-u; typed max; keys Enter
    waitfor "vg0/data.*grow"; show "2. Select and grow (root to 200 MiB, the PV and vg0/data to max)"
    keys Enter; waitfor "pairing code"; keys F5; waitfor "connection test: OK"; show "3. Receiver"
    keys Enter; waitfor "bandwidth"; show "4. Preflight"
    keys Enter; waitfor "OVERWRITTEN"; keys y
    waitfor "FINISHED"; show "6. Report"
    keys q y
    tmux -L "$sock" kill-server 2>/dev/null || true
fi
kill $rxpid 2>/dev/null || true
wait $rxpid 2>/dev/null || true
trap - EXIT
if [[ -f $tui/rx/reports/ferry_report.json ]]; then
    echo
    echo "==> the receiver's report: state and the steps it ran after the data"
    jq -r '"state: \(.state)", (.post_steps[]? | "  \(.status)  \(.step)")' "$tui/rx/reports/ferry_report.json"
    echo "sgdisk -v: $(sgdisk -v "$tui/target.img" | grep -m1 -i "problem")"
fi
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
