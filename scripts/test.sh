#!/usr/bin/env bash
# Run every test tier of ferry. Installs what the tiers need (idempotent).
#
#   scripts/test.sh            all tiers: lint, fast, root, static, fuzz, qemu
#   scripts/test.sh fast root  only the named tiers
#
# Tiers:
#   lint   cargo fmt --check, cargo clippy --all-targets -D warnings
#   fast   unit tests and CLI tests: no root, no loop devices
#   root   fixtures built with real tools (scripts/fixtures.sh), cross-checked
#          against sfdisk, blkid, lvm, dumpe2fs; needs root and loop devices
#   static the statically linked release build the boot image uses, run in an
#          empty chroot (no /dev, no /sys, no libraries) on a fixture image
#   fuzz   each cargo-fuzz target smoke-run for FUZZ_SECONDS (default 20)
#   qemu   the boot image (built with scripts/build-image.sh when missing or
#          older than its inputs) in QEMU guests under TCG: ISO and PXE boots,
#          and receiver + source guests migrating fixture disks (qemu-tests/);
#          needs root; FERRY_QEMU=0 skips its scenarios
#
# A tier whose prerequisite is missing fails with the remedy; none is skipped.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
tiers=("$@")
[[ ${#tiers[@]} -gt 0 ]] || tiers=(lint fast root static fuzz qemu)

say() { printf '\n==> %s\n' "$*"; }
RESULTS=$ROOT/target/test-results.log
mkdir -p "$ROOT/target"
: > "$RESULTS"
# cargo test, with its "test result:" lines kept for the closing tally.
cargo_test() {
    cargo test "$@" 2>&1 | tee -a "$RESULTS"
}
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- setup ----
APT_PACKAGES=(gdisk fdisk xfsprogs dosfstools ntfs-3g btrfs-progs lvm2 cryptsetup-bin
              e2fsprogs util-linux mount jq mtools openssl file tmux)
install_packages() {
    # A throwaway CI machine needs no manual-page index: apt's man-db
    # trigger would spend minutes of CPU rebuilding it after each install.
    if [[ ${CI:-} == true && $(id -u) -eq 0 ]]; then
        rm -f /var/lib/man-db/auto-update
    fi
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root or apt-get install them"
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# need_packages PKG...: apt-get install those not installed (root).
need_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root or apt-get install them"
        say "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

need_cargo() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup) first"
}

# ---------------------------------------------------------------- tiers ----
tier_lint() {
    say "lint: cargo fmt --check"
    cargo fmt --all -- --check
    say "lint: cargo clippy -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings
}

tier_fast() {
    say "fast: unit and CLI tests (no root)"
    cargo_test --locked --lib --test cli --test transfer --test resume --test api --test job --test netcheck --test boot --test plan
}

tier_root() {
    say "root: fixtures and cross-checks"
    [[ $(id -u) -eq 0 ]] || die "the root tier needs root (loop devices, mount): run as root"
    [[ -e /dev/loop-control ]] || modprobe loop 2>/dev/null || true
    [[ -e /dev/loop-control ]] || die "no loop devices: load the loop module (modprobe loop)"
    local fx=$ROOT/target/fixtures
    bash scripts/fixtures.sh "$fx"
    FERRY_FIXTURES=$fx cargo_test --locked --test root_inventory --test root_lvm --test root_damaged --test root_transfer --test root_plan --test root_tui -- --test-threads=2
}

tier_static() {
    say "static: crt-static release build in an empty chroot"
    [[ $(id -u) -eq 0 ]] || die "the static tier needs root (chroot): run as root"
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --locked --release --target x86_64-unknown-linux-gnu
    local bin=target/x86_64-unknown-linux-gnu/release/ferry jail
    file "$bin" | grep -q 'static' || die "$bin is not statically linked: $(file "$bin")"
    local fx=$ROOT/target/fixtures
    [[ -f $fx/whole.img ]] || bash scripts/fixtures.sh "$fx"
    jail=$(mktemp -d)
    cp "$bin" "$jail/ferry"
    cp --sparse=always "$fx/whole.img" "$jail/disk.img"
    chroot "$jail" /ferry inventory --json /disk.img > "$jail/out.json"
    jq -e '.disks[0].content.fs == "ext4" and .disks[0].content.used_bytes > 0' "$jail/out.json" >/dev/null \
        || die "static ferry in an empty chroot gave: $(cat "$jail/out.json")"
    echo "static ferry: $(stat -c %s "$bin") bytes, inventory in an empty chroot OK"
    rm -rf "$jail"
}

tier_fuzz() {
    say "fuzz: smoke-run every target for ${FUZZ_SECONDS}s"
    if ! cargo fuzz --version >/dev/null 2>&1; then
        say "installing cargo-fuzz"
        cargo install cargo-fuzz --locked --quiet
    fi
    local targets corpus=$ROOT/fuzz/corpus
    rm -rf "$corpus"
    bash scripts/fuzz-seeds.sh "$corpus" "$ROOT/target/fixtures"
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
    ((${#targets[@]})) || die "no fuzz targets found under fuzz/"
    rm -rf fuzz/artifacts
    for t in "${targets[@]}"; do
        say "fuzz: $t"
        local log=$ROOT/target/fuzz-$t.log
        # cargo-fuzz needs nightly flags (sanitizers); the stable toolchain here
        # accepts them with RUSTC_BOOTSTRAP=1. Inputs up to 2 MiB: whole small images.
        if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" "$corpus/$t" -- \
                -max_total_time="$FUZZ_SECONDS" -max_len=2097152 -rss_limit_mb=2048 \
                -print_final_stats=1) >"$log" 2>&1; then
            tail -n 40 "$log"
            die "fuzz target $t failed (crash, timeout or OOM); full log $log, input in fuzz/artifacts/$t/"
        fi
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done)' "$log" || true
    done
}

# What the boot image is built from, as one hash: every file's contents (not
# times: the build dates its outputs to SOURCE_DATE_EPOCH, and a checkout
# makes files newer than their commit).
image_inputs() {
    find "$ROOT/src" "$ROOT/initramfs" "$ROOT/image" "$ROOT/scripts/build-image.sh" \
         "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" -path "$ROOT/image/out" -prune -o -type f -print0 |
        sort -z | xargs -0 sha256sum | sed "s|$ROOT/||" | sha256sum | cut -d' ' -f1
}

# The image is stale when an output is missing or the inputs changed since
# the qemu tier last built it (target/qemu/image.inputs).
image_stale() {
    local f stamp=${CARGO_TARGET_DIR:-$ROOT/target}/qemu/image.inputs
    for f in ferry-vmlinuz ferry-initrd.img ferry.iso ferry.ipxe; do
        [[ -s $ROOT/image/out/$f || -s $ROOT/image/out/pxe/$f ]] || return 0
    done
    [[ -f $stamp && $(cat "$stamp") == "$(image_inputs)" ]] && return 1
    return 0
}

tier_qemu() {
    say "qemu: guests booted from the image under TCG (qemu-tests/)"
    [[ $(id -u) -eq 0 ]] || die "the qemu tier needs root (fixtures use loop devices): run as root"
    need_packages qemu-system-x86 ovmf ipxe-qemu xz-utils grub-pc-bin grub-common cpio zstd
    [[ -f $ROOT/scripts/build-image.sh ]] || die "scripts/build-image.sh is missing: the boot image recipe must be in this tree"
    local stamp=${CARGO_TARGET_DIR:-$ROOT/target}/qemu/image.inputs
    mkdir -p "$(dirname "$stamp")"
    if image_stale; then
        say "qemu: building the boot image (scripts/build-image.sh)"
        local inputs
        inputs=$(image_inputs)
        bash scripts/build-image.sh
        echo "$inputs" > "$stamp"
    else
        say "qemu: the boot image in image/out is up to date"
    fi
    local fx=$ROOT/target/fixtures
    [[ -f $fx/manifest.json ]] || bash scripts/fixtures.sh "$fx"
    local times=${CARGO_TARGET_DIR:-$ROOT/target}/qemu/times.log
    : > "$times"
    # One scenario at a time: each guest is one TCG thread, a pair fills 2 cores.
    FERRY_FIXTURES=$fx cargo_test --locked -p qemu-tests -- --test-threads=1
    say "qemu: scenario wall times (s)"
    cat "$times"
}

install_packages
need_cargo
start=$SECONDS
for t in "${tiers[@]}"; do
    case $t in
        lint|fast|root|static|fuzz|qemu) "tier_$t" ;;
        *) die "unknown tier '$t' (lint, fast, root, static, fuzz, qemu)" ;;
    esac
done
say "all tiers passed (${tiers[*]}) in $((SECONDS - start))s"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$RESULTS"
