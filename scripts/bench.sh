#!/usr/bin/env bash
# ferry benchmarks, run in one go; prints figures and ratios against baselines.
#
#   scripts/bench.sh [inventory|transfer|all]     (default: all)
#
# Inventory: how long `ferry inventory` takes to read the used maps of large,
# mostly empty filesystems (1 TiB ext4 and xfs on sparse image files holding
# a few hundred MiB of files), against the tools an engineer would otherwise
# use to learn the same thing (`dumpe2fs` reading every group, `xfs_db
# freesp`), and how much of each volume a migration would read.
#
# Transfer: the reference disk (4 GiB raw, GPT, one ext4 partition about 40%
# full of real files from /usr plus random data, the rest never written) is
# moved over 127.0.0.1 three times each by `ferry send`/`ferry receive` (TLS),
# by `dd bs=4M | zstd -1 -T2 | nc` into `nc -l | zstd -d | dd` (and, for
# context, the same with the receiving dd syncing its target), and by
# `partclone.ext4 -c | zstd -1 -T2 | nc` restored with `partclone.ext4 -r`;
# then, three times, another 1% of the files change and an incremental ferry
# pass (caches dropped) is compared with `rsync --inplace --no-whole-file` of
# the image. Medians, CPU seconds, peak
# RSS, bytes on the wire and ratios are printed.
# Needs root (loop devices, mount).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin
[[ $(id -u) -eq 0 ]] || { echo "bench.sh: run as root (loop devices, mount)" >&2; exit 1; }
what=${1:-all}
work=$PWD/target/bench
rm -rf "$work"
mkdir -p "$work"
LOOPS=()
cleanup() {
    umount "$work/mnt" 2>/dev/null || true
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    pkill -f "ferry receive --target $work" 2>/dev/null || true
}
trap cleanup EXIT

need=()
for c in bc jq openssl rsync nc zstd partclone.ext4 /usr/bin/time sgdisk; do
    command -v "$c" >/dev/null || need+=("$c")
done
if ((${#need[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bc jq openssl rsync netcat-openbsd zstd \
        partclone time gdisk >/dev/null
fi
cargo build --release --locked --quiet
ferry=$PWD/target/release/ferry

bench_inventory() {
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
}

# ------------------------------------------------------------- transfer ----
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# /usr/bin/time -f '%e %U %S %M' output: wall user sys maxrss(KiB)
timed() { /usr/bin/time -f '%e %U %S %M' -o "$1" "${@:2}"; }

bench_transfer() {
    echo
    echo "== transfer: building the reference disk (4 GiB, GPT, ext4 ~40% full)"
    local stage=$work/stage src=$work/src.img
    mkdir -p "$stage"
    cp -al /usr/lib/x86_64-linux-gnu "$stage/lib"
    cp -al /usr/share "$stage/share"
    openssl rand -out "$stage/random.bin" $((200 << 20))
    truncate -s 4G "$src"
    # The filesystem first (inside the partition's bounds), then the table:
    # mke2fs wipes table signatures it sees on its device.
    local lo
    lo=$(losetup -f --show -o $((2048 * 512)) --sizelimit $(((4 * 2048 * 1024 - 2048 - 34) * 512)) "$src")
    LOOPS+=("$lo")
    mke2fs -q -F -t ext4 -d "$stage" "$lo"
    losetup -d "$lo"
    sgdisk -n 1:2048:0 -t 1:8300 "$src" >/dev/null
    "$ferry" inventory "$src" | head -4
    local used logical
    used=$("$ferry" inventory --json "$src" | jq '.disks[0].used_bytes')
    logical=$(stat -c %s "$src")
    echo "used $((used >> 20)) MiB of $((logical >> 20)) MiB"

    local port=18703 i
    # One ferry pass of $src into $work/tgt.img over 127.0.0.1, both ends
    # under /usr/bin/time (the receiver's figures in rx.time), caches
    # dropped first: ferry_pass TIME_FILE JSON_FILE [send flags...]
    ferry_pass() {
        timed "$work/rx.time" "$ferry" receive --target "$work/tgt.img" --state-dir "$work/state" \
            --listen 127.0.0.1 --data-port $port --api-port 0 --code BNCH-MARK > "$work/rx.out" 2>/dev/null &
        local rxpid=$!
        until grep -q '^pairing code' "$work/rx.out" 2>/dev/null; do sleep 0.1; done
        local fp; fp=$(awk '/^fingerprint:/ {print $2}' "$work/rx.out")
        sync; echo 3 > /proc/sys/vm/drop_caches
        timed "$1" "$ferry" send --receiver 127.0.0.1:$port --fingerprint "$fp" --code bnch-mark --state-dir none \
            --json "${@:3}" "$src" > "$2"
        pkill -INT -f "ferry receive --target $work/tgt.img"; wait $rxpid || true
    }
    declare -a f_wall f_cpu f_rss_s f_rss_r f_wire d_wall d_cpu d_wire s_wall p_wall p_cpu p_wire
    for i in 1 2 3; do
        # ferry: receiver and sender each under /usr/bin/time.
        rm -rf "$work/state" "$work/tgt.img"
        ferry_pass "$work/tx.time" "$work/tx.json"
        read -r w u s m < "$work/tx.time"; read -r _ ru rs rm < "$work/rx.time"
        f_wall+=("$w"); f_cpu+=("$(echo "$u + $s + $ru + $rs" | bc)"); f_rss_s+=("$m"); f_rss_r+=("$rm")
        f_wire+=("$(jq .wire_bytes "$work/tx.json")")
        cmp -n "$logical" "$src" "$work/tgt.img" >/dev/null 2>&1 || \
            "$ferry" inventory "$work/tgt.img" | grep -q ext4 || { echo "ferry target is wrong"; exit 1; }

        # dd | zstd | nc
        rm -f "$work/dd.img"
        (nc -l 127.0.0.1 $((port + 1)) | zstd -d -q | dd of="$work/dd.img" bs=4M status=none) &
        local ncpid=$!
        sleep 0.3; sync; echo 3 > /proc/sys/vm/drop_caches
        timed "$work/dd.time" bash -c "dd if='$src' bs=4M status=none | zstd -1 -T2 -q | tee >(wc -c > '$work/dd.wire') | nc -N 127.0.0.1 $((port + 1))"
        wait $ncpid || true
        read -r w u s m < "$work/dd.time"
        d_wall+=("$w"); d_cpu+=("$(echo "$u + $s" | bc)"); d_wire+=("$(cat "$work/dd.wire")")

        # The same pipeline with a durable target, for context: the receiving
        # dd syncs (conv=fsync) and the time runs until it is done, as
        # ferry's includes its checkpoints' fdatasync and the read-back.
        rm -f "$work/dd.img"
        (nc -l 127.0.0.1 $((port + 3)) | zstd -d -q | dd of="$work/dd.img" bs=4M conv=fsync status=none) &
        ncpid=$!
        sleep 0.3; sync; echo 3 > /proc/sys/vm/drop_caches
        local t0; t0=$(date +%s.%N)
        bash -c "dd if='$src' bs=4M status=none | zstd -1 -T2 -q | nc -N 127.0.0.1 $((port + 3))"
        wait $ncpid || true
        s_wall+=("$(echo "$(date +%s.%N) - $t0" | bc)")
        rm -f "$work/dd.img"

        # partclone | zstd | nc, restored with partclone -r
        rm -f "$work/pc.img"; truncate -s 4G "$work/pc.img"
        local ls lt
        ls=$(losetup -f --show -r -o $((2048 * 512)) "$src"); LOOPS+=("$ls")
        lt=$(losetup -f --show -o $((2048 * 512)) "$work/pc.img"); LOOPS+=("$lt")
        (nc -l 127.0.0.1 $((port + 2)) | zstd -d -q | partclone.ext4 -r -q -s - -o "$lt" >/dev/null 2>&1) &
        ncpid=$!
        sleep 0.3; sync; echo 3 > /proc/sys/vm/drop_caches
        timed "$work/pc.time" bash -c "partclone.ext4 -c -q -s '$ls' -o - 2>/dev/null | zstd -1 -T2 -q | tee >(wc -c > '$work/pc.wire') | nc -N 127.0.0.1 $((port + 2))"
        wait $ncpid || true
        losetup -d "$ls" "$lt"
        read -r w u s m < "$work/pc.time"
        p_wall+=("$w"); p_cpu+=("$(echo "$u + $s" | bc)"); p_wire+=("$(cat "$work/pc.wire")")
    done

    local fw dw pw
    fw=$(printf '%s\n' "${f_wall[@]}" | median); dw=$(printf '%s\n' "${d_wall[@]}" | median); pw=$(printf '%s\n' "${p_wall[@]}" | median)
    echo
    printf '%-26s %8s %9s %9s %10s %12s %10s\n' "full pass (median of 3)" "wall s" "MB/s log" "MB/s used" "CPU s" "wire MiB" "ferry/x"
    row() { printf '%-26s %8.2f %9.0f %9.0f %10.2f %12d %10s\n' "$1" "$2" "$(echo "$logical / $2 / 1000000" | bc -l)" \
        "$(echo "$used / $2 / 1000000" | bc -l)" "$3" $(($4 >> 20)) "$5"; }
    row "ferry send/receive (TLS)" "$fw" "$(printf '%s\n' "${f_cpu[@]}" | median)" "$(printf '%s\n' "${f_wire[@]}" | median)" "1.00"
    row "dd | zstd -1 -T2 | nc" "$dw" "$(printf '%s\n' "${d_cpu[@]}" | median)" "$(printf '%s\n' "${d_wire[@]}" | median)" \
        "$(printf '%.2f' "$(echo "$fw / $dw" | bc -l)")"
    row "partclone | zstd | nc" "$pw" "$(printf '%s\n' "${p_cpu[@]}" | median)" "$(printf '%s\n' "${p_wire[@]}" | median)" \
        "$(printf '%.2f' "$(echo "$fw / $pw" | bc -l)")"
    local sw; sw=$(printf '%s\n' "${s_wall[@]}" | median)
    printf '%-26s %8.2f %9s %9s %10s %12s %10s\n' "  the same, target synced" "$sw" "" "" "" "" \
        "$(printf '%.2f' "$(echo "$fw / $sw" | bc -l)")"
    echo "runs, wall s: ferry ${f_wall[*]}; dd ${d_wall[*]}; dd synced ${s_wall[*]}; partclone ${p_wall[*]}"
    echo "peak RSS: ferry send $(( $(printf '%s\n' "${f_rss_s[@]}" | sort -n | tail -1) >> 10 )) MiB, ferry receive $(( $(printf '%s\n' "${f_rss_r[@]}" | sort -n | tail -1) >> 10 )) MiB"
    echo "CPU s per used GB (ferry, both ends): $(printf '%.2f' "$(echo "$(printf '%s\n' "${f_cpu[@]}" | median) / ($used / 1000000000)" | bc -l)")"

    echo
    echo "== incremental: three rounds, each changing another 1% of the files, then ferry --pass incremental vs rsync"
    cp --sparse=always "$work/tgt.img" "$work/rsync.img"
    declare -a i_wall i_wire i_rss_s i_rss_r r_wall r_wire i_ratio
    # The files are taken in order, a fresh 1% each round.
    local -a files
    lo=$(losetup -f --show -o $((2048 * 512)) "$src"); LOOPS+=("$lo")
    mkdir -p "$work/mnt"; mount -o ro "$lo" "$work/mnt"
    mapfile -t files < <(cd "$work/mnt" && find share -type f -size +64k | sort)
    umount "$work/mnt"; losetup -d "$lo"
    local next=0 round
    for round in 1 2 3; do
        lo=$(losetup -f --show -o $((2048 * 512)) "$src"); LOOPS+=("$lo")
        mount "$lo" "$work/mnt"
        local changed=0 target=$(( used / 100 )) f
        while ((changed < target && next < ${#files[@]})); do
            f="$work/mnt/${files[next]}"; next=$((next + 1))
            local sz; sz=$(stat -c %s "$f")
            openssl rand -out "$f.new" "$sz" && mv "$f.new" "$f"
            changed=$((changed + sz))
        done
        umount "$work/mnt"; losetup -d "$lo"
        echo "round $round: rewrote $((changed >> 20)) MiB of files"
        # Cold caches, as on a source booted again later.
        ferry_pass "$work/inc.time" "$work/inc.json" --pass incremental
        local w m; read -r w _ _ m < "$work/inc.time"; i_wall+=("$w"); i_rss_s+=("$m")
        read -r _ _ _ m < "$work/rx.time"; i_rss_r+=("$m")
        i_wire+=("$(jq .wire_bytes "$work/inc.json")")
        i_ratio+=("$(echo "${i_wire[-1]} / $changed" | bc -l)")
        echo "round $round: $(jq .chunks_sent "$work/inc.json") chunks sent, $(jq .chunks_patched "$work/inc.json") as patches"
        cmp "$src" "$work/tgt.img" && echo "round $round: incremental target equals the source"
        sync; echo 3 > /proc/sys/vm/drop_caches
        timed "$work/rs.time" rsync --inplace --no-whole-file --stats "$src" "$work/rsync.img" > "$work/rs.out"
        read -r w _ < "$work/rs.time"; r_wall+=("$w")
        r_wire+=("$(awk -F': ' '/Literal data/ {gsub(/[ ,a-z]/, "", $2); print $2}' "$work/rs.out")")
    done
    local iw rw
    iw=$(printf '%s\n' "${i_wall[@]}" | median)
    rw=$(printf '%s\n' "${r_wall[@]}" | median)
    printf '%-26s %8s %14s\n' "incremental, median of 3" "wall s" "bytes on wire"
    printf '%-26s %8.2f %14d\n' "ferry --pass incremental" "$iw" "$(printf '%s\n' "${i_wire[@]}" | median)"
    printf '%-26s %8.2f %14d\n' "rsync --no-whole-file" "$rw" "$(printf '%s\n' "${r_wire[@]}" | median)"
    echo "ferry bytes on the wire per byte of files rewritten: $(printf '%.2f' "$(printf '%s\n' "${i_ratio[@]}" | median)") (median of the rounds; the new contents are random)"
    echo "peak RSS (incremental): ferry send $(( $(printf '%s\n' "${i_rss_s[@]}" | sort -n | tail -1) >> 10 )) MiB, ferry receive $(( $(printf '%s\n' "${i_rss_r[@]}" | sort -n | tail -1) >> 10 )) MiB"
    echo "ferry incremental / ferry full: $(printf '%.2f' "$(echo "$iw / $fw" | bc -l)") (target <= 0.25)"
    echo "ferry full / dd pipeline: $(printf '%.2f' "$(echo "$fw / $dw" | bc -l)") (target <= 0.50)"
}

case $what in
    inventory) bench_inventory ;;
    transfer) bench_transfer ;;
    all) bench_inventory; bench_transfer ;;
    *) echo "usage: scripts/bench.sh [inventory|transfer|all]" >&2; exit 2 ;;
esac
