#!/usr/bin/env bash
# Build a small real Linux disk that boots under SeaBIOS: the source of QEMU
# scenario 7 (qemu-tests/tests/scenarios.rs), which migrates it onto a larger
# target, grows it, and boots the target.
#
#   scripts/bootdisk.sh OUT_DIR
#
# Needs root (a loop device for LVM's metadata). Works without device-mapper
# and without partition scanning on loop devices: filesystems are made in
# files and copied to their offsets, LVM runs with activation off, and GRUB's
# boot.img and core.img are written by this script (what grub-bios-setup does
# for a GPT disk with a BIOS boot partition; grub-bios-setup itself insists on
# finding the device of its own directory in a device map).
#
# OUT_DIR/bootdisk.img (256 MiB, sparse, GPT, 512-byte sectors):
#   1  BIOS boot  1 MiB at 1 MiB   GRUB's core.img (prefix (hd0,gpt2)/boot/grub)
#   2  root       ext4, 96 MiB     /boot/vmlinuz, /boot/initrd.img, /boot/grub
#   3  swap       16 MiB           fixed UUID and label
#   4  lvm        the rest         PV of VG vgboot, LV data (ext4, 32 MiB)
# and sector 0 holds GRUB's boot.img in front of the protective MBR.
#
# GRUB boots /boot/vmlinuz (the boot image's kernel) with /boot/initrd.img:
# the boot image's initrd with an uncompressed cpio appended whose /init
# checks the disk it booted from and prints one line on the console,
#
#   bootdisk: up root=BYTES swap=UUID lv=ok|missing data=BYTES
#
# (root: the size of the root filesystem after `e2fsck -fn` passed and
# /boot/vmlinuz was found on it; swap: the swap partition's UUID; lv: vgboot/data
# activated, `e2fsck -fn` clean and every file of its SHA256SUMS intact;
# data: its filesystem's size), then powers off. A failed check prints
# `bootdisk: FAIL WHAT` instead and powers off.
#
# OUT_DIR/bootdisk.env lists the fixed ids and sizes (shell assignments);
# OUT_DIR/bootdisk.inputs is the hash of what the image is built from (this
# script, the kernel and the initrd): when it matches, nothing is rebuilt.
# FERRY_IMAGE_DIR names the boot image directory (default image/out).
set -euo pipefail
shopt -s inherit_errexit

PROG=bootdisk.sh
die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $PROG OUT_DIR"
[[ $(id -u) -eq 0 ]] || die "must run as root (a loop device for LVM)"

export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
export LC_ALL=C TZ=UTC
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SELF=$HERE/$(basename "$0")
IMAGE_DIR=${FERRY_IMAGE_DIR:-$ROOT/image/out}
VMLINUZ=$IMAGE_DIR/ferry-vmlinuz
INITRD=$IMAGE_DIR/ferry-initrd.img
GRUB_DIR=/usr/lib/grub/i386-pc

# ---------------------------------------------------------------- tools ----
PACKAGES=(grub-pc-bin grub-common e2fsprogs lvm2 gdisk cpio zstd util-linux mount)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for f in "$VMLINUZ" "$INITRD"; do
    [[ -s $f ]] || die "$f is missing: build the boot image first (scripts/build-image.sh)"
done
[[ -f $GRUB_DIR/boot.img && -f $GRUB_DIR/diskboot.img ]] || die "$GRUB_DIR lacks boot.img: apt-get install grub-pc-bin"

# --------------------------------------------------------------- outdir ----
OUT=$(realpath -m -- "$1")
mkdir -p "$OUT"
IMG=$OUT/bootdisk.img
STAMP=$OUT/bootdisk.inputs
inputs=$(sha256sum "$SELF" "$VMLINUZ" "$INITRD" | cut -d' ' -f1 | sha256sum | cut -d' ' -f1)
if [[ -s $IMG && -f $STAMP && $(cat "$STAMP") == "$inputs" ]]; then
    log "$IMG is up to date"
    exit 0
fi
rm -f "$STAMP"
START=$SECONDS

WORK=$(mktemp -d "$OUT/.bootdisk.XXXXXX")
LOOP=
cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [[ -n $LOOP ]] && losetup -d "$LOOP"
    rm -rf -- "$WORK"
    ((rc == 0)) || log "FAILED (exit $rc); $IMG was not changed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a noisy command; show its output only when it fails.
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        die "failed: $*"
    fi
}

# put_le FILE OFFSET BYTES VALUE: VALUE as a BYTES-long little-endian integer.
put_le() {
    local hex="" i
    for ((i = 0; i < $3; i++)); do hex+=$(printf '\\x%02x' $((($4 >> (8 * i)) & 255))); done
    printf '%b' "$hex" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# place FILE OFFSET: copy FILE into the image at byte OFFSET (holes stay holes).
place() {
    dd if="$1" of="$D" bs=1M oflag=seek_bytes seek="$2" conv=notrunc,sparse status=none
}

# ----------------------------------------------------------- the layout ----
MiB=$((1024 * 1024))
DISK_SIZE=$((256 * MiB))
ROOT_SIZE=$((96 * MiB))
SWAP_SIZE=$((16 * MiB))
DATA_SIZE=$((32 * MiB))
EXTENT=$((4 * MiB))
DISK_GUID=b0070000-d15c-4000-8000-000000000000
BIOS_PARTUUID=b0070000-9a27-4000-8000-000000000001
ROOT_PARTUUID=b0070000-9a27-4000-8000-000000000002
SWAP_PARTUUID=b0070000-9a27-4000-8000-000000000003
LVM_PARTUUID=b0070000-9a27-4000-8000-000000000004
ROOT_UUID=b0070000-0f50-4000-8000-000000000002
SWAP_UUID=b0070000-0f50-4000-8000-000000000003
SWAP_LABEL=bootswap
PV_UUID=BootPV-0000-0000-0000-0000-0000-000004
DATA_UUID=b0070000-0f50-4000-8000-000000000101

D=$WORK/bootdisk.img
truncate -s "$DISK_SIZE" "$D"
quiet sgdisk -o -U "$DISK_GUID" \
    -n 1:2048:+1M -t 1:EF02 -c 1:"BIOS boot" -u 1:"$BIOS_PARTUUID" \
    -n 2:0:+$((ROOT_SIZE / MiB))M -t 2:8300 -c 2:root -u 2:"$ROOT_PARTUUID" \
    -n 3:0:+$((SWAP_SIZE / MiB))M -t 3:8200 -c 3:swap -u 3:"$SWAP_PARTUUID" \
    -n 4:0:0 -t 4:8E00 -c 4:lvm -u 4:"$LVM_PARTUUID" \
    "$D"
# part N: "START_BYTES SIZE_BYTES" from sgdisk's view of the table.
part() {
    sgdisk -i "$1" "$D" | awk '
        /^First sector:/ { f = $3 } /^Last sector:/ { l = $3 }
        END { if (f == "") exit 1; printf "%d %d\n", f * 512, (l - f + 1) * 512 }'
}
read -r BIOS_OFF BIOS_LEN < <(part 1)
read -r ROOT_OFF ROOT_LEN < <(part 2)
read -r SWAP_OFF SWAP_LEN < <(part 3)
read -r LVM_OFF LVM_LEN < <(part 4)
[[ $ROOT_LEN == "$ROOT_SIZE" && $SWAP_LEN == "$SWAP_SIZE" ]] || die "unexpected partition sizes"

# ------------------------------------------------------- /boot/initrd.img ----
# The boot image's initrd (zstd) padded to 4 bytes (the kernel looks for the
# next archive at an aligned offset), then a newc cpio whose /init wins over
# the boot image's (later archives overwrite earlier files).
OVL=$WORK/overlay
mkdir -p "$OVL"
cat > "$OVL/init" <<'EOF'
#!/bin/sh
# /init of bootdisk.img (scripts/bootdisk.sh): checks the disk this machine
# booted from and prints one line, then powers off:
#   bootdisk: up root=BYTES swap=UUID lv=ok|missing data=BYTES
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs -o mode=0755 devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/lvm /run/lock /mnt/root /mnt/data

say() { echo "bootdisk: $*" >/dev/console; }
off() {
	umount /mnt/data /mnt/root 2>/dev/null
	sync
	poweroff -f
	sleep 10
}
fail() {
	say "FAIL $*"
	off
}
# ext_bytes DEV: block count times block size of an ext2/3/4 filesystem.
ext_bytes() {
	dumpe2fs -h "$1" 2>/dev/null | awk -F: '
		/^Block count/ { n = $2 + 0 } /^Block size/ { b = $2 + 0 }
		END { if (n && b) printf "%.0f\n", n * b }'
}

say "init"
grep -q 'bootdisk.check=1' /proc/cmdline || say "no bootdisk.check=1 on the kernel command line: checking anyway"
for m in virtio_pci virtio_blk virtio_scsi ahci sd_mod ext4 dm_mod; do
	modprobe -q "$m" 2>/dev/null
done

want=
for w in $(cat /proc/cmdline); do
	case $w in root=PARTUUID=*) want=${w#root=PARTUUID=} ;; esac
done
[ -n "$want" ] || fail "no root=PARTUUID= on the kernel command line"
root=
i=0
while [ $i -lt 100 ]; do
	root=$(blkid -t "PARTUUID=$want" -o device 2>/dev/null | head -n 1)
	[ -n "$root" ] && break
	sleep 0.1
	i=$((i + 1))
done
[ -n "$root" ] || fail "no partition with PARTUUID $want ($(cat /proc/partitions | tr -s ' \n' ' '))"
say "root $root"
out=$(e2fsck -fn "$root" 2>&1) || fail "e2fsck -fn $root: $(echo "$out" | tail -n 5 | tr '\n' ' ')"
say "root fsck clean"
root_bytes=$(ext_bytes "$root")
mount -t ext4 -o ro "$root" /mnt/root || fail "mount $root"
[ -s /mnt/root/boot/vmlinuz ] || fail "no /boot/vmlinuz on $root"
[ -s /mnt/root/boot/grub/grub.cfg ] || fail "no /boot/grub/grub.cfg on $root"

swapdev=$(blkid -t TYPE=swap -o device 2>/dev/null | head -n 1)
[ -n "$swapdev" ] || fail "no swap partition"
swap=$(blkid -s UUID -o value "$swapdev")
say "swap $swapdev $swap"

lv=missing
data=0
if out=$(lvm vgchange -ay vgboot 2>&1); then
	dev=/dev/mapper/vgboot-data
	if [ ! -b "$dev" ]; then
		say "lv: $dev missing after vgchange: $out"
	elif ! out=$(e2fsck -fn "$dev" 2>&1); then
		say "lv: e2fsck -fn $dev: $(echo "$out" | tail -n 5 | tr '\n' ' ')"
	elif ! mount -t ext4 -o ro "$dev" /mnt/data; then
		say "lv: cannot mount $dev"
	elif ! out=$(cd /mnt/data && sha256sum -c SHA256SUMS 2>&1); then
		say "lv: files differ: $(echo "$out" | grep -v ': OK$' | tr '\n' ' ')"
	else
		say "lv $dev: $(grep -c . /mnt/data/SHA256SUMS) files intact"
		lv=ok
		data=$(ext_bytes "$dev")
	fi
else
	say "lv: vgchange -ay vgboot: $(echo "$out" | tail -n 3 | tr '\n' ' ')"
fi
say "up root=$root_bytes swap=$swap lv=$lv data=$data"
off
EOF
chmod 755 "$OVL/init"
touch -d @1700000000 "$OVL/init" "$OVL"
OVL_CPIO=$WORK/overlay.cpio
(cd "$OVL" && printf 'init\n' | cpio -o -H newc --owner=0:0 --reproducible --quiet) > "$OVL_CPIO"

TREE=$WORK/root
mkdir -p "$TREE/boot/grub/i386-pc" "$TREE/etc"
cp "$VMLINUZ" "$TREE/boot/vmlinuz"
{
    cat "$INITRD"
    pad=$((($(stat -c %s "$INITRD") + 3) / 4 * 4 - $(stat -c %s "$INITRD")))
    head -c "$pad" /dev/zero
    cat "$OVL_CPIO"
} > "$TREE/boot/initrd.img"

# ------------------------------------------------------------- GRUB ----
# core.img: the BIOS disk driver, GPT and ext2/3/4, and the prefix on
# partition 2; the other modules are read from /boot/grub/i386-pc.
CORE=$WORK/core.img
quiet grub-mkimage -O i386-pc -d "$GRUB_DIR" -o "$CORE" -p '(hd0,gpt2)/boot/grub' biosdisk part_gpt ext2
cp "$GRUB_DIR"/*.mod "$GRUB_DIR"/*.lst "$TREE/boot/grub/i386-pc/"
cat > "$TREE/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
set default=0
menuentry 'bootdisk' {
	linux /boot/vmlinuz console=ttyS0,115200 panic=-1 quiet root=PARTUUID=$ROOT_PARTUUID bootdisk.check=1
	initrd /boot/initrd.img
}
EOF
cat > "$TREE/etc/fstab" <<EOF
UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1
UUID=$SWAP_UUID none swap sw 0 0
/dev/vgboot/data /srv/data ext4 defaults 0 2
EOF
echo bootdisk > "$TREE/etc/hostname"
find "$TREE" -exec touch -h -d @1700000000 {} +

# ------------------------------------------------------- filesystems ----
export E2FSPROGS_FAKE_TIME=1700000000
quiet mke2fs -F -q -t ext4 -b 4096 -L root -U "$ROOT_UUID" -E "hash_seed=$ROOT_UUID" \
    -d "$TREE" "$WORK/root.fs" "$((ROOT_SIZE / 1024))k"
quiet e2fsck -fn "$WORK/root.fs"
place "$WORK/root.fs" "$ROOT_OFF"

truncate -s "$SWAP_SIZE" "$WORK/swap.fs"
chmod 600 "$WORK/swap.fs"
quiet mkswap -L "$SWAP_LABEL" -U "$SWAP_UUID" "$WORK/swap.fs"
place "$WORK/swap.fs" "$SWAP_OFF"

# ------------------------------------------------------------- LVM ----
# A private LVM system dir (nothing in /etc/lvm, no locks or backups on the
# host), activation off (no device-mapper here), only our loop device seen.
export LVM_SYSTEM_DIR=$WORK/lvmsys LVM_SUPPRESS_FD_WARNINGS=1
mkdir -p "$LVM_SYSTEM_DIR/lock"
cat > "$LVM_SYSTEM_DIR/lvm.conf" <<EOF
devices { obtain_device_list_from_udev = 0 hints = "none" scan_lvs = 0 use_devicesfile = 0 external_device_info_source = "none" }
global { activation = 0 locking_dir = "$LVM_SYSTEM_DIR/lock" use_lvmpolld = 0 event_activation = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
EOF
LOOP=$(losetup --find --show --offset "$LVM_OFF" --sizelimit "$LVM_LEN" "$D")
lvmc() { "$@" --config "devices{filter=[\"a|^$LOOP\$|\",\"r|.*|\"]} global{activation=0}"; }
quiet lvmc pvcreate -q --uuid "$PV_UUID" --norestorefile "$LOOP"
quiet lvmc vgcreate -q -s "$((EXTENT / MiB))M" vgboot "$LOOP"
quiet lvmc lvcreate -q -Wn -Zn -n data -L "$((DATA_SIZE / MiB))M" vgboot
PE_START=$(lvmc pvs --readonly --noheadings --units b --nosuffix -o pe_start "$LOOP" 2>/dev/null | tr -d ' ')
RANGES=$(lvmc lvs --readonly --noheadings --segments -o seg_pe_ranges vgboot/data 2>/dev/null | tr -d ' ')
blockdev --flushbufs "$LOOP"
losetup -d "$LOOP"
LOOP=
[[ $PE_START =~ ^[0-9]+$ ]] || die "pe_start of the PV: $PE_START"
[[ $RANGES =~ ^[^:]+:([0-9]+)-([0-9]+)$ ]] || die "vgboot/data is not one linear segment: $RANGES"
FIRST_PE=${BASH_REMATCH[1]}
(((BASH_REMATCH[2] - FIRST_PE + 1) * EXTENT == DATA_SIZE)) || die "vgboot/data: unexpected extents $RANGES"
DATA_OFF=$((LVM_OFF + PE_START + FIRST_PE * EXTENT))

DTREE=$WORK/data
mkdir -p "$DTREE/docs" "$DTREE/bin"
for ((i = 1; i <= 40; i++)); do
    printf 'bootdisk data line %06d the quick brown fox jumps over the lazy dog\n' $(seq 1 $((i * 50))) \
        > "$DTREE/docs/file$i.txt"
done
head -c $((3 * MiB)) /dev/zero | tr '\0' 'x' | sed 's/x\{64\}/&\n/g' > "$DTREE/bin/blob.dat"
printf 'hello from vgboot/data\n' > "$DTREE/hello.txt"
(cd "$DTREE" && find . -type f | sort | xargs sha256sum) > "$WORK/data.sums"
mv "$WORK/data.sums" "$DTREE/SHA256SUMS"
find "$DTREE" -exec touch -h -d @1700000000 {} +
quiet mke2fs -F -q -t ext4 -L data -U "$DATA_UUID" -E "hash_seed=$DATA_UUID" \
    -d "$DTREE" "$WORK/data.fs" "$((DATA_SIZE / 1024))k"
quiet e2fsck -fn "$WORK/data.fs"
place "$WORK/data.fs" "$DATA_OFF"

# ------------------------------------------------ boot.img and core.img ----
# What grub-bios-setup does for a GPT disk with a BIOS boot partition:
# core.img goes into partition 1; its first sector (diskboot.img) gets the
# block list of the rest (start LBA, sector count, load segment 0x820);
# boot.img goes into sector 0 with the LBA of core.img (offset 0x5c), the
# boot drive "as the BIOS says" (0x64 = 0xff) and the drive check's jump
# made two NOPs (0x66), keeping the protective MBR's disk signature,
# partition entries and 0x55AA (0x1b8..0x200).
core_len=$(stat -c %s "$CORE")
core_sectors=$(((core_len + 511) / 512))
((core_sectors * 512 <= BIOS_LEN)) || die "core.img ($core_len bytes) does not fit the BIOS boot partition"
truncate -s $((core_sectors * 512)) "$CORE"
core_lba=$((BIOS_OFF / 512))
put_le "$CORE" $((0x1f4)) 8 $((core_lba + 1))
put_le "$CORE" $((0x1fc)) 2 $((core_sectors - 1))
put_le "$CORE" $((0x1fe)) 2 $((0x820))
dd if=/dev/zero of="$CORE" bs=1 seek=$((0x1e8)) count=12 conv=notrunc status=none
dd if="$CORE" of="$D" bs=512 seek="$core_lba" conv=notrunc status=none

MBR=$WORK/mbr.bin
dd if="$GRUB_DIR/boot.img" of="$MBR" bs=512 count=1 status=none
dd if="$D" of="$MBR" bs=1 skip=$((0x1b8)) seek=$((0x1b8)) count=$((0x200 - 0x1b8)) conv=notrunc status=none
put_le "$MBR" $((0x5c)) 8 "$core_lba"
put_le "$MBR" $((0x64)) 1 $((0xff))
printf '\x90\x90' | dd of="$MBR" bs=1 seek=$((0x66)) conv=notrunc status=none
dd if="$MBR" of="$D" bs=512 count=1 conv=notrunc status=none

# --------------------------------------------------------- checks ----
out=$(sgdisk -v "$D" 2>&1)
grep -q 'No problems found' <<<"$out" || die "sgdisk -v: $out"
[[ $(blkid -p -O "$SWAP_OFF" -s UUID -o value "$D") == "$SWAP_UUID" ]] || die "no swap UUID at partition 3"
[[ $(blkid -p -O "$ROOT_OFF" -s UUID -o value "$D") == "$ROOT_UUID" ]] || die "no root UUID at partition 2"
[[ $(blkid -p -O "$DATA_OFF" -s UUID -o value "$D") == "$DATA_UUID" ]] || die "no data UUID at the LV's offset"
[[ $(dd if="$D" bs=1 skip=510 count=2 status=none | od -An -tx1 | tr -d ' ') == 55aa ]] || die "no MBR signature"

cat > "$WORK/bootdisk.env" <<EOF
DISK_SIZE=$DISK_SIZE
ROOT_PARTUUID=$ROOT_PARTUUID
ROOT_UUID=$ROOT_UUID
ROOT_OFF=$ROOT_OFF
ROOT_SIZE=$ROOT_SIZE
SWAP_UUID=$SWAP_UUID
SWAP_LABEL=$SWAP_LABEL
SWAP_OFF=$SWAP_OFF
LVM_OFF=$LVM_OFF
PV_UUID=$PV_UUID
DATA_UUID=$DATA_UUID
DATA_OFF=$DATA_OFF
DATA_SIZE=$DATA_SIZE
EXTENT=$EXTENT
EOF
mv "$WORK/bootdisk.env" "$OUT/bootdisk.env"
mv "$D" "$IMG"
echo "$inputs" > "$STAMP"
log "$IMG: $((DISK_SIZE / MiB)) MiB, $(du -k "$IMG" | cut -f1) KiB allocated, built in $((SECONDS - START)) s"
