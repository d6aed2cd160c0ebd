#!/usr/bin/env bash
# Build ferry's boot image: Debian's kernel, an initramfs with busybox, the
# disk tools and a static ferry, a hybrid ISO (BIOS + UEFI with Secure Boot)
# and PXE files. Runs as root on Debian 12; installs what it needs with apt.
#
#   scripts/build-image.sh [--no-iso] [--no-pxe] [--out DIR]
#
# Environment:
#   FERRY_BIN=PATH          use this ferry binary (must be static) instead of
#                           building it with cargo
#   SOURCE_DATE_EPOCH=N     timestamp of every file in the outputs (default:
#                           the last git commit); same inputs, same bytes
#   FERRY_KERNEL_PKG=NAME   kernel package (default: what linux-image-amd64
#                           depends on, e.g. linux-image-6.1.0-56-amd64)
#   ZSTD_LEVEL=N            initrd compression level (default 19)
#
# Outputs (default image/out/): ferry-vmlinuz, ferry-initrd.img, ferry.iso,
# ferry.ipxe, pxelinux.cfg/default, grub/grub.cfg (GRUB netboot), SHA256SUMS.
# docs/boot-image.md describes the image, its kernel arguments and markers.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:${HOME:-/root}/.cargo/bin
export LC_ALL=C

OUT=$REPO/image/out
DO_ISO=1
DO_PXE=1
CACHE=$REPO/target/image-cache
WORK=$REPO/target/image-build
MAX_INITRD=$((64 << 20))
ZSTD_LEVEL=${ZSTD_LEVEL:-19}
START=$(date +%s)

say() { printf '==> %s\n' "$*"; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
    case $1 in
        --no-iso) DO_ISO= ;;
        --no-pxe) DO_PXE= ;;
        --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT=$2; shift ;;
        --out=*) OUT=${1#--out=} ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
[[ $OUT = /* ]] || OUT=$PWD/$OUT

[[ $(id -u) -eq 0 ]] || die "run as root (apt-get, dpkg -x, mknod, chroot)"

# --------------------------------------------------------------- packages ----
PACKAGES=(busybox-static kmod cpio zstd xz-utils file xorriso mtools dosfstools
          grub-common grub-pc-bin grub-efi-amd64-bin shim-signed grub-efi-amd64-signed
          e2fsprogs xfsprogs lvm2 gdisk fdisk util-linux)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
APT_UPDATED=
apt_update() {
    [[ -n $APT_UPDATED ]] && return 0
    say "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
}
if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
    SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null) \
        || die "SOURCE_DATE_EPOCH is not set and there is no git commit to take it from"
fi
export SOURCE_DATE_EPOCH
say "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH ($(date -u -d "@$SOURCE_DATE_EPOCH" '+%F %T') UTC)"

# ----------------------------------------------------------------- kernel ----
mkdir -p "$CACHE"
KPKG=${FERRY_KERNEL_PKG:-}
if [[ -z $KPKG ]]; then
    KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
    if [[ -z $KPKG ]]; then
        apt_update
        KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
    fi
    [[ -n $KPKG ]] || die "apt-cache depends linux-image-amd64 names no linux-image-* package"
fi
deb=$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | sort | tail -n 1 || true)
if [[ -z $deb ]]; then
    say "downloading $KPKG"
    (cd "$CACHE" && apt-get download -q "$KPKG" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
    deb=$(ls "$CACHE/${KPKG}"_*.deb 2>/dev/null | sort | tail -n 1 || true)
    [[ -n $deb ]] || { apt_update; (cd "$CACHE" && apt-get download -q "$KPKG"); \
        deb=$(ls "$CACHE/${KPKG}"_*.deb | sort | tail -n 1); }
fi
KROOT=$CACHE/${KPKG}
if [[ ! -f $KROOT/.unpacked ]] || [[ $(cat "$KROOT/.unpacked") != "$(basename "$deb")" ]]; then
    say "unpacking $(basename "$deb")"
    rm -rf "$KROOT" "$KROOT.tmp"
    mkdir -p "$KROOT.tmp"
    dpkg -x "$deb" "$KROOT.tmp"
    mv "$KROOT.tmp" "$KROOT"
    basename "$deb" > "$KROOT/.unpacked"
fi
KVER=$(ls "$KROOT/lib/modules" | head -n 1)
[[ -n $KVER && -f $KROOT/boot/vmlinuz-$KVER ]] || die "no kernel in $deb"
[[ -f $KROOT/lib/modules/$KVER/modules.dep ]] || depmod -b "$KROOT" "$KVER"
say "kernel $KVER from $(basename "$deb")"

# --------------------------------------------------------------- the tree ----
TREE=$WORK/root
rm -rf "$WORK"
mkdir -p "$TREE"
(
    cd "$TREE"
    mkdir -p usr/bin usr/sbin usr/lib usr/lib64 usr/libexec/ferry usr/share \
             dev proc sys run tmp root mnt etc/ferry var
    ln -s usr/bin bin
    ln -s usr/sbin sbin
    ln -s usr/lib lib
    ln -s usr/lib64 lib64
    ln -s ../run var/run
    ln -s ../tmp var/tmp
    chmod 1777 tmp
    chmod 0700 root
    # The kernel opens /dev/console for init before /init mounts devtmpfs.
    mknod -m 600 dev/console c 5 1
    mknod -m 666 dev/null c 1 3
)

# ---------------------------------------------------------------- modules ----
say "kernel modules (initramfs/modules.list)"
MODSRC=$KROOT/lib/modules/$KVER
MODDST=$TREE/lib/modules/$KVER
mkdir -p "$MODDST"
mapfile -t MODULES < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' initramfs/modules.list)
declare -A MODFILES=()
builtin=()
for m in "${MODULES[@]}"; do
    deps=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" 2>&1) \
        || die "module $m is not in $KPKG: $deps"
    while read -r kind path _; do
        case $kind in
            insmod) MODFILES[${path#"$MODSRC"/}]=1 ;;
            builtin) builtin+=("$path") ;;
            *) die "module $m: unexpected modprobe output: $kind $path" ;;
        esac
    done <<< "$deps"
done
while read -r m; do
    grep -qx "$m" <(printf '%s\n' "${MODULES[@]}") \
        || die "initramfs/extra-modules.list names $m, which initramfs/modules.list lacks"
done < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' initramfs/extra-modules.list)
for rel in "${!MODFILES[@]}"; do
    [[ -f $MODSRC/$rel ]] || die "modprobe named $rel, which is not under $MODSRC"
    mkdir -p "$MODDST/$(dirname "$rel")"
    # busybox modprobe reads plain .ko (and .ko.xz, slowly): decompress here.
    case $rel in
        *.ko.xz) xz -dc "$MODSRC/$rel" > "$MODDST/${rel%.xz}" ;;
        *.ko.zst) zstd -qdc "$MODSRC/$rel" > "$MODDST/${rel%.zst}" ;;
        *.ko.gz) gzip -dc "$MODSRC/$rel" > "$MODDST/${rel%.gz}" ;;
        *) cp "$MODSRC/$rel" "$MODDST/$rel" ;;
    esac
done
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [[ -f $MODSRC/$f ]] && cp "$MODSRC/$f" "$MODDST/$f"
done
depmod -b "$TREE" "$KVER"
# kmod's binary indexes are of no use to busybox modprobe.
rm -f "$MODDST"/modules.*.bin
echo "  ${#MODULES[@]} listed, ${#MODFILES[@]} files with dependencies, built in: ${builtin[*]:-none}"

# ------------------------------------------------------------------ files ----
say "files (initramfs/files.list)"
is_elf() { [[ $(head -c 4 "$1" | od -An -c | tr -d ' ') == '177ELF' ]]; }
ELFS=()
copy_host() {   # copy_host HOSTPATH IMAGEPATH
    [[ -e $1 ]] || die "initramfs/files.list: $1 is not on this machine (which package has it?)"
    mkdir -p "$(dirname "$TREE$2")"
    cp -L --preserve=mode "$1" "$TREE$2"
    if is_elf "$1"; then ELFS+=("$1"); fi
}
while read -r path op target rest; do
    [[ -z $path || $path == \#* ]] && continue
    [[ -z $rest ]] || die "initramfs/files.list: extra words after '$path $op $target'"
    case $op in
        '') copy_host "$path" "$path" ;;
        '<-') [[ -f $REPO/$target ]] || die "initramfs/files.list: $target is not in the repository"
              mkdir -p "$(dirname "$TREE$path")"
              cp --preserve=mode "$REPO/$target" "$TREE$path" ;;
        '->') mkdir -p "$(dirname "$TREE$path")"; ln -sfn "$target" "$TREE$path" ;;
        *) die "initramfs/files.list: cannot read '$path $op $target'" ;;
    esac
done < initramfs/files.list
[[ -x $TREE/init ]] || die "/init is missing or not executable"

# Shared libraries of every ELF file, as the host's ldd resolves them; the
# check below resolves them again inside the tree.
declare -A LIBS=()
for e in "${ELFS[@]}"; do
    out=$(ldd "$e" 2>&1) || { [[ $out == *"not a dynamic executable"* ]] && continue; die "ldd $e: $out"; }
    [[ $out == *"statically linked"* ]] && continue
    if grep -q 'not found' <<< "$out"; then
        die "$e needs a library this machine lacks: $(grep 'not found' <<< "$out" | tr -s '\t ' ' ')"
    fi
    while read -r lib; do LIBS[$lib]=1; done < <(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<< "$out")
done
for lib in "${!LIBS[@]}"; do
    mkdir -p "$(dirname "$TREE$lib")"
    cp -L --preserve=mode "$lib" "$TREE$lib"
done
echo "  ${#ELFS[@]} programs, ${#LIBS[@]} shared libraries"

# ------------------------------------------------------------------ ferry ----
if [[ -n ${FERRY_BIN:-} ]]; then
    FERRY=$FERRY_BIN
    [[ -x $FERRY ]] || die "FERRY_BIN=$FERRY is not an executable file"
    say "ferry from FERRY_BIN=$FERRY"
else
    say "ferry: static release build"
    command -v cargo >/dev/null || die "cargo is not installed (rustup, see DEVELOPERS.md), or set FERRY_BIN"
    export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
    RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --locked --release --target x86_64-unknown-linux-gnu --bin ferry
    FERRY=$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/ferry
fi
ftype=$(file -b "$FERRY")
case $ftype in
    *"statically linked"*|*"static-pie linked"*) ;;
    *) die "$FERRY is not statically linked: $ftype" ;;
esac
ldd_out=$(ldd "$FERRY" 2>&1 || true)
case $ldd_out in
    *"statically linked"*|*"not a dynamic executable"*) ;;
    *) die "ldd says $FERRY is dynamic: $ldd_out" ;;
esac
cp "$FERRY" "$TREE/usr/bin/ferry"
chmod 0755 "$TREE/usr/bin/ferry"
FERRY_VERSION=$("$FERRY" --version 2>/dev/null | awk '{ print $2 }') || FERRY_VERSION=unknown
echo "  ferry $FERRY_VERSION: $ftype"

# ---------------------------------------------------------------- busybox ----
# An applet link wherever files.list left the path free.
links=0
while read -r applet; do
    [[ -e $TREE/$applet || -L $TREE/$applet ]] && continue
    mkdir -p "$(dirname "$TREE/$applet")"
    ln -s /usr/bin/busybox "$TREE/$applet"
    links=$((links + 1))
done < <("$TREE/usr/bin/busybox" --list-full)
[[ $(readlink "$TREE/usr/sbin/modprobe") == /usr/bin/busybox ]] \
    || die "/sbin/modprobe must be busybox's (the kernel's request_module runs it)"
echo "  $links busybox applet links"

# ------------------------------------------------------------ lib check ----
# Resolve every dynamic program's libraries inside the tree, with the tree's
# own loader, as the booted image will.
say "checking libraries inside the tree"
LOADER=/lib64/ld-linux-x86-64.so.2
[[ -e $TREE$LOADER ]] || die "the dynamic loader $LOADER is not in the tree"
checked=0
while IFS= read -r -d '' f; do
    is_elf "$f" || continue
    rel=${f#"$TREE"}
    interp=$(file -b "$f")
    [[ $interp == *"dynamically linked"* ]] || continue
    [[ $interp == *"shared object"* && $interp != *interpreter* ]] && continue
    out=$(chroot "$TREE" "$LOADER" --list "$rel" 2>&1) || die "in the image, $rel does not load: $out"
    if grep -q 'not found' <<< "$out"; then
        die "in the image, $rel needs $(grep 'not found' <<< "$out" | awk '{ print $1 }' | tr '\n' ' ')(missing from the tree)"
    fi
    checked=$((checked + 1))
done < <(find "$TREE/usr" -path "$TREE/usr/lib/modules" -prune -o -type f -print0)
echo "  $checked dynamic programs load with the libraries in the tree"

# -------------------------------------------------------------------- cpio ----
say "initrd: cpio (newc, sorted, owner 0:0, mtime $SOURCE_DATE_EPOCH) | zstd -$ZSTD_LEVEL"
find "$TREE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$OUT"
t0=$(date +%s.%N)
(cd "$TREE" && find . -print0 | sort -z \
    | cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) > "$WORK/initrd.cpio"
zstd -q -f -T0 "-$ZSTD_LEVEL" --no-progress "$WORK/initrd.cpio" -o "$OUT/ferry-initrd.img"
t1=$(date +%s.%N)
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/ferry-vmlinuz"
touch -d "@$SOURCE_DATE_EPOCH" "$OUT/ferry-vmlinuz" "$OUT/ferry-initrd.img"
cpio_size=$(stat -c %s "$WORK/initrd.cpio")
initrd_size=$(stat -c %s "$OUT/ferry-initrd.img")
echo "  cpio $cpio_size bytes ($(mib "$cpio_size") MiB), $(find "$TREE" | wc -l) entries;" \
    "cpio + zstd $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
[[ $initrd_size -le $MAX_INITRD ]] \
    || die "the initrd is $initrd_size bytes, over the 64 MiB budget"

# --------------------------------------------------------------- boot cfg ----
# Substitutes @KVER@ @VERSION@ @KERNEL@ @INITRD@ in an image/ template.
render() {   # render TEMPLATE KERNEL INITRD > OUT
    sed -e "s|@KVER@|$KVER|g" -e "s|@VERSION@|$FERRY_VERSION|g" \
        -e "s|@KERNEL@|$2|g" -e "s|@INITRD@|$3|g" "$1"
}

# -------------------------------------------------------------------- ISO ----
# BIOS: a GRUB i386-pc El Torito core with its modules built in, and GRUB's
# hybrid MBR so the same file boots from a USB stick. UEFI: an ESP image
# (El Torito EFI entry and a partition for USB) holding Debian's signed shim,
# MokManager and the signed GRUB CD image (gcdx64), which finds the ISO by
# /.disk/info and reads /boot/grub/grub.cfg; it boots the Debian-signed
# kernel, so the ISO also boots with Secure Boot on.
if [[ -n $DO_ISO ]]; then
    say "ISO (BIOS GRUB + UEFI shim/GRUB signed by Debian)"
    ISODIR=$WORK/iso
    mkdir -p "$ISODIR/boot/grub/i386-pc" "$ISODIR/ferry" "$ISODIR/.disk" "$ISODIR/EFI/BOOT"
    cp "$OUT/ferry-vmlinuz" "$ISODIR/ferry/vmlinuz"
    cp "$OUT/ferry-initrd.img" "$ISODIR/ferry/initrd.img"
    echo "ferry $FERRY_VERSION (kernel $KVER)" > "$ISODIR/.disk/info"
    render image/grub.cfg /ferry/vmlinuz /ferry/initrd.img > "$ISODIR/boot/grub/grub.cfg"
    grub-mkimage -O i386-pc-eltorito -p /boot/grub -o "$ISODIR/boot/grub/i386-pc/eltorito.img" \
        biosdisk iso9660 part_msdos part_gpt normal configfile linux echo test true sleep \
        serial terminal search search_fs_file search_label ls cat halt reboot
    SHIM=/usr/lib/shim/shimx64.efi.signed
    MOKMGR=/usr/lib/shim/mmx64.efi.signed
    GRUBEFI=/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed
    for f in "$SHIM" "$MOKMGR" "$GRUBEFI"; do [[ -f $f ]] || die "$f is missing (shim-signed, grub-efi-amd64-signed)"; done
    ESPDIR=$WORK/esp
    mkdir -p "$ESPDIR/EFI/BOOT"
    cp "$SHIM" "$ESPDIR/EFI/BOOT/BOOTX64.EFI"
    cp "$MOKMGR" "$ESPDIR/EFI/BOOT/mmx64.efi"
    cp "$GRUBEFI" "$ESPDIR/EFI/BOOT/grubx64.efi"
    # Used by GRUB only when it cannot find /.disk/info ($cmdpath/grub.cfg).
    cat > "$ESPDIR/EFI/BOOT/grub.cfg" <<'CFG'
search --no-floppy --file --set=root /ferry/initrd.img
set prefix=($root)/boot/grub
configfile $prefix/grub.cfg
CFG
    cp -r "$ESPDIR/EFI/BOOT/." "$ISODIR/EFI/BOOT/"
    find "$ESPDIR" "$ISODIR" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    esp_kib=$(( ($(du -sk --apparent-size "$ESPDIR" | cut -f1) + 1024) / 1024 * 1024 + 1024 ))
    rm -f "$ISODIR/efi.img"
    mkfs.fat -C -n FERRY-ESP -i 46455259 --invariant "$ISODIR/efi.img" "$esp_kib" >/dev/null
    MTOOLS_SKIP_CHECK=1 mmd -i "$ISODIR/efi.img" ::/EFI ::/EFI/BOOT
    MTOOLS_SKIP_CHECK=1 mcopy -m -i "$ISODIR/efi.img" "$ESPDIR/EFI/BOOT/"* ::/EFI/BOOT/
    touch -d "@$SOURCE_DATE_EPOCH" "$ISODIR/efi.img"
    iso_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S00)
    rm -f "$OUT/ferry.iso"
    xorriso -as mkisofs -graft-points --modification-date="$iso_date" --set_all_file_dates "$iso_date" -V FERRY \
        -b boot/grub/i386-pc/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table \
        --grub2-boot-info --grub2-mbr /usr/lib/grub/i386-pc/boot_hybrid.img \
        --efi-boot efi.img -efi-boot-part --efi-boot-image --protective-msdos-label \
        -o "$OUT/ferry.iso" -r "$ISODIR" --sort-weight 0 / --sort-weight 1 /boot \
        > "$WORK/xorriso.log" 2>&1 || { cat "$WORK/xorriso.log" >&2; die "xorriso failed"; }
    touch -d "@$SOURCE_DATE_EPOCH" "$OUT/ferry.iso"
fi

# -------------------------------------------------------------------- PXE ----
if [[ -n $DO_PXE ]]; then
    say "PXE files"
    render image/ferry.ipxe ferry-vmlinuz ferry-initrd.img > "$OUT/ferry.ipxe"
    mkdir -p "$OUT/pxelinux.cfg" "$OUT/grub"
    render image/pxelinux.cfg ferry-vmlinuz ferry-initrd.img > "$OUT/pxelinux.cfg/default"
    render image/grub.cfg /ferry-vmlinuz /ferry-initrd.img > "$OUT/grub/grub.cfg"
    touch -d "@$SOURCE_DATE_EPOCH" "$OUT/ferry.ipxe" "$OUT/pxelinux.cfg/default" "$OUT/grub/grub.cfg"
fi

# ---------------------------------------------------------------- summary ----
(cd "$OUT" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | sort | xargs sha256sum > SHA256SUMS)
say "outputs in $OUT ($(($(date +%s) - START)) s)"
for f in ferry-vmlinuz ferry-initrd.img ferry.iso; do
    [[ -f $OUT/$f ]] || continue
    s=$(stat -c %s "$OUT/$f")
    printf '  %-18s %10d bytes  %6s MiB  sha256 %s\n' "$f" "$s" "$(mib "$s")" \
        "$(grep " $f\$" "$OUT/SHA256SUMS" | cut -c1-16)"
done
printf '  initrd budget: %d of %d MiB\n' "$(( (initrd_size + 1048575) >> 20 ))" $((MAX_INITRD >> 20))
