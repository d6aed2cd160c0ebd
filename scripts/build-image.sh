#!/usr/bin/env bash
# Build ferry's boot image from real parts.
#
#   scripts/build-image.sh [--no-iso] [--no-pxe] [--out DIR]
#
# Debian's kernel package (downloaded with apt and unpacked, never
# installed), the storage, network, device-mapper and filesystem modules of
# initramfs/modules.list with their dependencies, busybox-static, the
# programs of initramfs/files.list with every library they load,
# initramfs/init, and ferry linked statically (FERRY_BIN=PATH uses a
# prebuilt static binary). Outputs in image/out/ (or DIR):
#
#   ferry-vmlinuz, ferry-initrd.img   kernel and zstd initramfs
#   ferry.iso                         hybrid ISO: BIOS and UEFI, CD or USB (dd)
#   pxe/                              ferry.ipxe, pxelinux.cfg/default,
#                                     grub/grub.cfg beside kernel and initrd
#
# Reproducible: every file's time is SOURCE_DATE_EPOCH (default: the last
# commit's time) and the cpio archive is sorted, so the same inputs give the
# same initrd. The initrd must stay under 64 MiB. Needs root only to install
# missing packages.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin:$HOME/.cargo/bin

iso=1 pxe=1 out=$ROOT/image/out
while (($#)); do
    case $1 in
        --no-iso) iso=0 ;;
        --no-pxe) pxe=0 ;;
        --out) out=$(realpath -m "$2"); shift ;;
        *) echo "usage: scripts/build-image.sh [--no-iso] [--no-pxe] [--out DIR]" >&2; exit 2 ;;
    esac
    shift
done
say() { printf '==> %s\n' "$*"; }
die() { printf 'build-image.sh: %s\n' "$*" >&2; exit 1; }
MAX_INITRD=$((64 << 20))
cache=$ROOT/target/image-cache
mkdir -p "$cache" "$out"
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 1700000000)}
start=$(date +%s)

# ------------------------------------------------------------- packages ----
PACKAGES=(busybox-static kmod cpio zstd xorriso mtools grub-pc-bin grub-efi-amd64-bin grub-common
          e2fsprogs xfsprogs lvm2 gdisk fdisk util-linux file)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "missing packages ${missing[*]}: run as root or apt-get install them"
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --------------------------------------------------------------- kernel ----
abi=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $abi ]] || die "apt-cache depends linux-image-amd64 names no kernel package (apt-get update?)"
deb=$(ls "$cache"/"${abi}"_*.deb 2>/dev/null | head -n 1 || true)
if [[ -z $deb ]]; then
    say "downloading $abi"
    (cd "$cache" && apt-get download "$abi" >/dev/null) || die "apt-get download $abi failed"
    deb=$(ls "$cache"/"${abi}"_*.deb | head -n 1)
fi
kroot=$cache/${abi}
if [[ ! -d $kroot/lib/modules ]]; then
    say "unpacking $(basename "$deb")"
    rm -rf "$kroot"
    dpkg -x "$deb" "$kroot"
fi
kver=$(ls "$kroot/lib/modules" | head -n 1)
[[ -f $kroot/lib/modules/$kver/modules.dep ]] || depmod -b "$kroot" "$kver"
vmlinuz=$kroot/boot/vmlinuz-$kver
[[ -f $vmlinuz ]] || die "$vmlinuz missing from $deb"

# --------------------------------------------------------------- staging ----
stage=$cache/stage
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc/ferry,etc/lvm,lib/modules,proc,sys,dev,run,tmp,root,var/lib/ferry,mnt}

say "busybox"
cp /bin/busybox "$stage/bin/busybox"
file -L "$stage/bin/busybox" | grep -q 'statically linked' || die "/bin/busybox is not static (busybox-static)"
for applet in $("$stage/bin/busybox" --list-full); do
    [[ -e $stage/$applet || -L $stage/$applet ]] || ln -s /bin/busybox "$stage/$applet"
done

say "modules of $kver"
moddir=lib/modules/$kver
mkdir -p "$stage/$moddir"
while read -r m _; do
    [[ -z $m || $m == \#* ]] && continue
    deps=$(modprobe -d "$kroot" -S "$kver" --show-depends "$m" 2>&1) ||
        die "module $m: not in $abi ($deps)"
    while read -r kind path _; do
        [[ $kind == insmod ]] || continue
        rel=${path#"$kroot"/}
        case $rel in
            *.ko) dst=$rel ;;
            *.ko.xz) dst=${rel%.xz} ;;
            *.ko.zst) dst=${rel%.zst} ;;
            *.ko.gz) dst=${rel%.gz} ;;
            *) die "module $m: unexpected file $rel" ;;
        esac
        [[ -f $stage/$dst ]] && continue
        mkdir -p "$(dirname "$stage/$dst")"
        # busybox modprobe reads plain .ko fastest: decompress here.
        case $rel in
            *.ko) cp "$path" "$stage/$dst" ;;
            *.ko.xz) xz -dc "$path" > "$stage/$dst" ;;
            *.ko.zst) zstd -dcq "$path" > "$stage/$dst" ;;
            *.ko.gz) gzip -dc "$path" > "$stage/$dst" ;;
        esac
    done <<< "$deps"
done < initramfs/modules.list
for f in modules.order modules.builtin modules.builtin.modinfo; do
    [[ -f $kroot/$moddir/$f ]] && cp "$kroot/$moddir/$f" "$stage/$moddir/"
done
depmod -b "$stage" "$kver"
nmods=$(find "$stage/$moddir" -name '*.ko' | wc -l)

say "programs and their libraries"
copy_with_libs() {
    local src=$1 dst=$2
    mkdir -p "$(dirname "$stage/$dst")"
    # A busybox applet link may stand there: replace the link itself
    # (copying through it would write the host's /bin/busybox).
    rm -f "$stage/$dst"
    cp -L "$src" "$stage/$dst"
    local line lib
    while read -r line; do
        case $line in
            *"not found"*) die "$src: library ${line%% *} not found on the build host" ;;
            *"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
            /*) lib=${line%% (*} ;;
            *) continue ;;
        esac
        [[ -e $stage/$lib ]] && continue
        mkdir -p "$(dirname "$stage/$lib")"
        rm -f "$stage/$lib"
        cp -L "$lib" "$stage/$lib"
    done < <(ldd "$src" 2>/dev/null || true)
}
while read -r src dst _; do
    [[ -z $src || $src == \#* ]] && continue
    [[ -x $src ]] || die "$src (initramfs/files.list) is not on the build host"
    copy_with_libs "$src" "${dst:-$src}"
done < initramfs/files.list
# Every program's libraries present (the loader resolves them at run time).
while read -r f; do
    for lib in $(ldd "$f" 2>/dev/null | awk '/=> \// {print $3} /^\t\// {print $1}'); do
        [[ -e $stage/$lib ]] || die "$f needs $lib, which is not in the image"
    done
done < <(find "$stage" -type f -perm -u+x ! -name '*.ko' ! -path '*/bin/busybox' ! -path '*/bin/ferry')
cp initramfs/lvm.conf "$stage/etc/lvm/lvm.conf"

say "ferry (static)"
if [[ -n ${FERRY_BIN:-} ]]; then
    ferry=$FERRY_BIN
else
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --locked --quiet \
        --target x86_64-unknown-linux-gnu --bin ferry
    ferry=$ROOT/target/x86_64-unknown-linux-gnu/release/ferry
fi
file -L "$ferry" | grep -Eq 'static(-pie)? linked|statically linked' || die "$ferry is not statically linked"
cp "$ferry" "$stage/bin/ferry"
strip "$stage/bin/ferry" 2>/dev/null || true

cp initramfs/init "$stage/init"
cp initramfs/udhcpc.sh initramfs/load.list "$stage/etc/ferry/"
chmod 0755 "$stage/init" "$stage/etc/ferry/udhcpc.sh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$stage/etc/passwd"
printf 'root:x:0:\n' > "$stage/etc/group"
printf 'export PS1="ferry:\\w# "\n' > "$stage/etc/profile"
printf 'NAME="ferry"\nPRETTY_NAME="ferry boot image (%s)"\n' "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
    > "$stage/etc/os-release"

# ---------------------------------------------------------------- initrd ----
say "initrd (cpio, zstd)"
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --owner=0:0 --reproducible --quiet) \
    > "$cache/initrd.cpio"
zstd -q -f -19 -T0 "$cache/initrd.cpio" -o "$out/ferry-initrd.img"
cp "$vmlinuz" "$out/ferry-vmlinuz"
touch -d "@$SOURCE_DATE_EPOCH" "$out/ferry-initrd.img" "$out/ferry-vmlinuz"
size=$(stat -c %s "$out/ferry-initrd.img")
((size <= MAX_INITRD)) || die "initrd is $((size >> 20)) MiB, over the 64 MiB budget"

# ------------------------------------------------------------------- ISO ----
if ((iso)); then
    say "ISO (BIOS + UEFI, hybrid)"
    isodir=$cache/iso
    rm -rf "$isodir"; mkdir -p "$isodir/boot/grub"
    cp "$out/ferry-vmlinuz" "$out/ferry-initrd.img" "$isodir/boot/"
    sed 's/ @EXTRA@//' image/grub.cfg > "$isodir/boot/grub/grub.cfg"
    find "$isodir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    grub-mkrescue -o "$out/ferry.iso" "$isodir" -- -volid FERRY >"$cache/grub-mkrescue.log" 2>&1 ||
        { cat "$cache/grub-mkrescue.log" >&2; die "grub-mkrescue failed"; }
fi

# ------------------------------------------------------------------- PXE ----
if ((pxe)); then
    say "PXE files"
    rm -rf "$out/pxe"; mkdir -p "$out/pxe/pxelinux.cfg" "$out/pxe/grub"
    cp "$out/ferry-vmlinuz" "$out/ferry-initrd.img" image/ferry.ipxe "$out/pxe/"
    cp image/pxelinux.cfg/default "$out/pxe/pxelinux.cfg/default"
    cp image/grub-netboot/grub.cfg "$out/pxe/grub/grub.cfg"
fi

say "done in $(($(date +%s) - start)) s: kernel $kver, $nmods modules"
for f in "$out"/ferry-vmlinuz "$out"/ferry-initrd.img "$out"/ferry.iso; do
    [[ -f $f ]] && printf '  %-20s %6.1f MiB  sha256 %s\n' "$(basename "$f")" \
        "$(echo "$(stat -c %s "$f") / 1048576" | bc -l)" "$(sha256sum "$f" | cut -c1-16)"
done
printf '  initrd budget: %d of 64 MiB\n' $((size >> 20))
