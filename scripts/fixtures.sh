#!/usr/bin/env bash
# Build ferry's test disk images with real tools.
#
#   scripts/fixtures.sh OUTDIR
#
# Needs root and loop devices. Works without device-mapper: LVM runs with
# activation disabled and LV contents are written at their computed offsets on
# the PVs. OUTDIR is removed and recreated. It ends up holding
#
#   gpt.img gpt4k.img mbr.img misc.img span1.img span2.img ring.img whole.img
#   trees/<fixture>-<volume>/   the files put into each filesystem
#   manifest.json               what every image holds (see below)
#
# manifest.json:
#   images[]  {name, path, size, sector_size, table (gpt|dos|none), disk_id,
#              volumes[]}
#   vgs[]     {vg, extent_size, pvs[], lvs[]}
#   A volume is {name, fstype, label, uuid, tree, offset, size, ...}: name is
#   what ferry calls it ("gpt.img:3", "whole.img", "vg0/root"), fstype the blkid
#   TYPE (null when there is no filesystem), tree a directory relative to
#   OUTDIR (null when no files were written). Offsets and sizes are bytes.
#   Partitions add number, type, part_uuid/part_name (GPT) or bootable (dos).
#   LVs add segments[] {lv_offset, size, type, stripe_size,
#   stripes[] {pv, image, first_extent, extents, offset}}; a stripe's offset is
#   the byte offset of its first extent in its image file.
#   lvm_config is the --config string to read the VGs with pvs/vgs/lvs
#   (add --readonly --nolocking so LVM writes nothing on the host, not even
#   /run/lock/lvm; narrow the filter to your own loop devices if other
#   copies of these PVs may be attached at the same time).
#   misc.img:3 (LUKS2, cannot be opened without device-mapper) also has
#   key_file and luks_data_offset; its data area starts with 2 MiB of fixed
#   pseudo-random bytes.
set -euo pipefail
shopt -s inherit_errexit

PROG=fixtures.sh
die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

[[ $# -eq 1 && -n $1 ]] || die "usage: $PROG OUTDIR"
[[ $(id -u) -eq 0 ]] || die "must run as root (needs loop devices, mount, mkfs)"

export PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
export LC_ALL=C TZ=UTC
umask 022

# ---------------------------------------------------------------- tools ----
declare -A PKG=(
    [sgdisk]=gdisk [sfdisk]=fdisk [mkfs.xfs]=xfsprogs [xfs_repair]=xfsprogs
    [mkfs.vfat]=dosfstools [fsck.vfat]=dosfstools [mkntfs]=ntfs-3g
    [ntfs-3g]=ntfs-3g [mkfs.btrfs]=btrfs-progs [btrfs]=btrfs-progs
    [pvcreate]=lvm2 [cryptsetup]=cryptsetup-bin [mke2fs]=e2fsprogs
    [e2fsck]=e2fsprogs [mkswap]=util-linux [blkid]=util-linux
    [losetup]=mount [mount]=mount [jq]=jq [mcopy]=mtools [openssl]=openssl
)
missing=()
for c in "${!PKG[@]}"; do
    command -v "$c" >/dev/null 2>&1 || missing+=("${PKG[$c]}")
done
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --------------------------------------------------------------- outdir ----
OUT=$(realpath -m -- "$1")
[[ $OUT != / && $OUT != "$HOME" ]] || die "refusing to use $OUT as OUTDIR"
if [[ -e $OUT ]]; then
    [[ -d $OUT ]] || die "$OUT exists and is not a directory"
    if [[ -n $(ls -A "$OUT") && ! -e $OUT/.ferry-fixtures ]]; then
        die "$OUT is a non-empty directory not made by $PROG; remove it yourself"
    fi
    rm -rf -- "$OUT"
fi
mkdir -p "$OUT/trees"
: > "$OUT/.ferry-fixtures"
START=$SECONDS

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-fixtures.XXXXXX")
MNT=$WORK/mnt
mkdir -p "$MNT" "$WORK/vols" "$WORK/pt" "$WORK/lvm" "$WORK/lvmsys/lock"

# ------------------------------------------------------ cleanup on exit ----
LOOPS=()
VGS=(vg0 vgspan vgring)
declare -A HOST_LVM_HAD=()
for vg in "${VGS[@]}"; do
    for f in /etc/lvm/backup/"$vg" /etc/lvm/archive/"$vg"_*; do
        [[ -e $f ]] && HOST_LVM_HAD[$f]=1
    done
done

cleanup() {
    local rc=$? f vg dev
    set +e
    trap - EXIT INT TERM
    if mountpoint -q "$MNT" 2>/dev/null; then umount "$MNT" || umount -l "$MNT"; fi
    for dev in "${LOOPS[@]}"; do losetup -d "$dev" 2>/dev/null; done
    # LVM runs with a private LVM_SYSTEM_DIR and backups off, so nothing
    # should land in /etc/lvm; remove anything for our VGs that did anyway.
    for vg in "${VGS[@]}"; do
        for f in /etc/lvm/backup/"$vg" /etc/lvm/archive/"$vg"_*; do
            [[ -e $f && -z ${HOST_LVM_HAD[$f]:-} ]] && rm -f -- "$f"
        done
    done
    rm -rf -- "$WORK"
    ((rc == 0)) || log "FAILED (exit $rc); $OUT is incomplete"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------- helpers ----
# Run a noisy command; show its output only when it fails.
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        printf '%s\n' "$out" >&2
        die "failed: $*"
    fi
}

# attach VAR FILE [OFFSET SIZE] [SECTOR_SIZE]: loop device into VAR.
attach() {
    local _a_var=$1 _a_file=$2 _a_off=${3:-} _a_size=${4:-} _a_ss=${5:-512} _a_dev
    local _a_args=(--find --show)
    [[ -n $_a_off ]] && _a_args+=(--offset "$_a_off" --sizelimit "$_a_size")
    [[ $_a_ss != 512 ]] && _a_args+=(--sector-size "$_a_ss")
    _a_dev=$(losetup "${_a_args[@]}" "$_a_file")
    LOOPS+=("$_a_dev")
    printf -v "$_a_var" %s "$_a_dev"
}

detach() {
    local dev=$1 d keep=()
    blockdev --flushbufs "$dev" 2>/dev/null || true
    losetup -d "$dev"
    for d in "${LOOPS[@]}"; do [[ $d == "$dev" ]] || keep+=("$d"); done
    LOOPS=("${keep[@]}")
}

# Fixed ids: uuid FIXTURE KIND N -> 0000000F-KIND-4000-8000-00000000000N
uuid() { printf '%08x-%s-4000-8000-%012x' "$1" "$2" "$3"; }

# prand SEED BYTES: deterministic incompressible bytes (AES-128-CTR of zeros).
prand() {
    local key
    key=$(printf '%s' "$1" | sha256sum | cut -c1-32)
    head -c "$2" /dev/zero |
        openssl enc -aes-128-ctr -nosalt -K "$key" -iv 00000000000000000000000000000000
}

# ptext SEED LINES: deterministic compressible text.
ptext() {
    awk -v s="$1" -v n="$2" 'BEGIN {
        for (i = 1; i <= n; i++)
            printf "%s %06d the quick brown fox %d jumps over %d lazy dogs\n",
                s, i, (i * 7919) % 1000003, (i * 104729) % 65521
    }'
}

# mktree NAME BIGKIB [fat]: build OUT/trees/NAME, print its relative path.
# Several directories, files bigger than 1 MiB, small files, an empty file,
# a symlink (not on FAT/NTFS), all with a fixed mtime.
mktree() {
    local name=$1 big=$2 flavor=${3:-posix} d=$OUT/trees/$1 i
    mkdir -p "$d"/{etc/default,usr/bin,usr/share/doc/ferry,var/log,var/cache/small,home/user/docs,deep/a/b/c/d}
    ptext "$name-hostname" 1 > "$d/etc/hostname"
    ptext "$name-fstab" 40 > "$d/etc/fstab"
    : > "$d/etc/default/empty.conf"
    prand "$name-big" $((big * 1024)) > "$d/usr/bin/big.bin"
    prand "$name-odd" $((big * 512 + 12345)) > "$d/home/user/odd.bin"
    prand "$name-tool" 200000 > "$d/usr/bin/tool"
    chmod 755 "$d/usr/bin/tool"
    ptext "$name-log" $((big * 4)) > "$d/var/log/messages"
    { ptext "$name-mixed" 2000; prand "$name-mixed" 300000; ptext "$name-tail" 500; } \
        > "$d/usr/share/doc/ferry/mixed.dat"
    ptext "$name-readme" 25 > "$d/usr/share/doc/ferry/README"
    for ((i = 1; i <= 24; i++)); do
        prand "$name-small-$i" $((i * i * 37)) > "$d/var/cache/small/file$i.bin"
    done
    ptext "$name-note" 3 > "$d/home/user/docs/note.txt"
    prand "$name-leaf" 4096 > "$d/deep/a/b/c/d/leaf.bin"
    if [[ $flavor == posix ]]; then
        ln -s ../../etc/hostname "$d/home/user/hostname.link"
    fi
    find "$d" -exec touch -h -d @1700000000 {} +
    printf 'trees/%s' "$name"
}

# Partition geometry from the saved sfdisk --json of an image.
ptjson() { cat "$WORK/pt/$1.json"; }
part_start() { ptjson "$1" | jq -r --argjson n "$2" '.partitiontable as $t | $t.partitions[] | select((.node | capture("(?<n>[0-9]+)$").n | tonumber) == $n) | .start * $t.sectorsize'; }
part_size() { ptjson "$1" | jq -r --argjson n "$2" '.partitiontable as $t | $t.partitions[] | select((.node | capture("(?<n>[0-9]+)$").n | tonumber) == $n) | .size * $t.sectorsize'; }

# save_pt IMAGE [SECTOR_SIZE]
save_pt() {
    local img=$1 ss=${2:-512} dev
    if [[ $ss == 512 ]]; then
        sfdisk --json "$OUT/$img" > "$WORK/pt/$img.json"
    else
        attach dev "$OUT/$img" "" "" "$ss"
        sfdisk --json "$dev" > "$WORK/pt/$img.json"
        detach "$dev"
    fi
}

# attach_part VAR IMAGE N [SECTOR_SIZE]
attach_part() {
    local off size
    off=$(part_start "$2" "$3")
    size=$(part_size "$2" "$3")
    [[ -n $off && -n $size ]] || die "$2 has no partition $3"
    attach "$1" "$OUT/$2" "$off" "$size" "${4:-512}"
}

# check_fs DEV TYPE LABEL UUID: blkid must see exactly this; then fsck.
check_fs() {
    local dev=$1 type=$2 label=$3 id=$4 out t l u
    out=$(blkid -p -o export "$dev") || die "blkid finds nothing on $dev (want $type)"
    t=$(sed -n 's/^TYPE=//p' <<<"$out")
    l=$(sed -n 's/^LABEL=//p' <<<"$out")
    u=$(sed -n 's/^UUID=//p' <<<"$out")
    [[ $t == "$type" && $l == "$label" && ${u,,} == "${id,,}" ]] ||
        die "blkid on $dev: got type=$t label=$l uuid=$u, want $type/$label/$id"
    case $type in
        ext2|ext3|ext4) quiet e2fsck -fn "$dev" ;;
        xfs) quiet xfs_repair -n "$dev" ;;
        btrfs) quiet btrfs check --readonly "$dev" ;;
        vfat) quiet fsck.vfat -n "$dev" ;;
    esac
}

# vol IMAGE NUM FSTYPE LABEL UUID TREE [EXTRA_JSON]: record a volume for the
# manifest (NUM empty: the whole image). "-" stands for null.
vol() {
    jq -cn --arg img "$1" --arg num "$2" --arg t "$3" --arg l "$4" --arg u "$5" --arg tree "$6" \
        --argjson extra "${7:-"{}"}" '
        def n: if . == "-" then null else . end;
        {image: $img, number: ($num | if . == "" then null else tonumber end),
         name: (if $num == "" then $img else "\($img):\($num)" end),
         fstype: ($t | n), label: ($l | n), uuid: ($u | n), tree: ($tree | n)} + $extra' \
        >> "$WORK/vols/$1.jsonl"
}

# lvvol VG LV FSTYPE LABEL UUID TREE
lvvol() {
    jq -cn --arg name "$1/$2" --arg t "$3" --arg l "$4" --arg u "$5" --arg tree "$6" '
        def n: if . == "-" then null else . end;
        {name: $name, fstype: ($t | n), label: ($l | n), uuid: ($u | n), tree: ($tree | n)}' \
        >> "$WORK/lvm/$1.lvs.jsonl"
}

# ----------------------------------------------------------------- LVM ----
# LVM never touches the host: a private system dir (no /etc/lvm, lock files
# under $WORK), activation off (no device-mapper), no backups/archives, no
# hints, udev unused, and a filter that accepts only our own loop devices.
export LVM_SYSTEM_DIR=$WORK/lvmsys LVM_SUPPRESS_FD_WARNINGS=1
cat > "$LVM_SYSTEM_DIR/lvm.conf" <<EOF
devices { obtain_device_list_from_udev = 0 hints = "none" scan_lvs = 0 use_devicesfile = 0 external_device_info_source = "none" }
global { activation = 0 locking_dir = "$WORK/lvmsys/lock" use_lvmpolld = 0 event_activation = 0 }
backup { backup = 0 archive = 0 }
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
EOF
LVM_CONFIG_FOR_TESTS='devices{filter=["a|^/dev/loop|","r|.*|"] obtain_device_list_from_udev=0 hints="none" use_devicesfile=0 scan_lvs=0} global{activation=0} backup{backup=0 archive=0}'
LVM_DEVS=()
lvm_cmd() {
    local filter="" d
    for d in "${LVM_DEVS[@]}"; do filter+="\"a|^$d\$|\","; done
    "$@" --config "devices{filter=[${filter}\"r|.*|\"]}"
}
lvmq() { quiet lvm_cmd "$@"; }

# lvm_layout VG JSONMAP: save VG's PV and LV segment layout, in image
# coordinates, to $WORK/lvm/VG.json. JSONMAP maps each PV's loop device to
# {volume, image, offset}.
lvm_layout() {
    local vg=$1 map=$2 segs pvs
    segs=$(lvm_cmd lvs --readonly --segments --units b --nosuffix --reportformat json \
        -o vg_name,lv_name,seg_start,seg_size,segtype,stripes,stripe_size,seg_pe_ranges,vg_extent_size "$vg" 2>/dev/null)
    pvs=$(lvm_cmd pvs --readonly --units b --nosuffix --reportformat json \
        -o pv_name,pv_uuid,pe_start,pv_pe_count,vg_name 2>/dev/null)
    jq -n --arg vg "$vg" --argjson segs "$segs" --argjson pvs "$pvs" --argjson map "$map" '
        ($pvs.report[0].pv | map(select(.vg_name == $vg))) as $pvl
        | ($pvl | map({key: .pv_name, value: .}) | from_entries) as $pv
        | ($segs.report[0].seg) as $s
        | ($s[0].vg_extent_size | tonumber) as $ext
        | {vg: $vg, extent_size: $ext,
           pvs: [$pvl[] | {volume: $map[.pv_name].volume, image: $map[.pv_name].image,
                           uuid: .pv_uuid, pv_offset: $map[.pv_name].offset,
                           pe_start: (.pe_start | tonumber), pe_count: (.pv_pe_count | tonumber)}],
           lvs: ($s | group_by(.lv_name) | map({
               name: "\($vg)/\(.[0].lv_name)",
               size: (map(.seg_size | tonumber) | add),
               segments: (map({
                   lv_offset: (.seg_start | tonumber), size: (.seg_size | tonumber),
                   type: .segtype, stripe_size: (.stripe_size | tonumber),
                   stripes: [.seg_pe_ranges | split(" ")[]
                       | capture("^(?<dev>.+):(?<a>[0-9]+)-(?<b>[0-9]+)$")
                       | {pv: $map[.dev].volume, image: $map[.dev].image,
                          first_extent: (.a | tonumber),
                          extents: ((.b | tonumber) - (.a | tonumber) + 1),
                          offset: ($map[.dev].offset + ($pv[.dev].pe_start | tonumber)
                                   + (.a | tonumber) * $ext)}]
               }) | sort_by(.lv_offset))
           }))}' > "$WORK/lvm/$vg.json"
}

# lv_runs VG/LV: "lv_offset length image image_offset" per contiguous piece,
# striped segments split into stripe-size chunks.
lv_runs() {
    jq -r --arg name "$1" '
        .lvs[] | select(.name == $name) | .segments[]
        | if (.stripes | length) == 1 then
              "\(.lv_offset) \(.size) \(.stripes[0].image) \(.stripes[0].offset)"
          else
              . as $g | ($g.stripes | length) as $n
              | range(0; $g.size / $g.stripe_size) as $k
              | $g.stripes[$k % $n] as $st
              | "\($g.lv_offset + $k * $g.stripe_size) \($g.stripe_size) \($st.image) \($st.offset + (($k - ($k % $n)) / $n) * $g.stripe_size)"
          end' "$WORK/lvm/${1%%/*}.json"
}

lv_single_offset() {   # VG/LV -> image offset of a one-segment linear LV
    jq -r --arg name "$1" '.lvs[] | select(.name == $name)
        | if (.segments | length) == 1 and (.segments[0].stripes | length) == 1
          then .segments[0].stripes[0].offset else error("\($name) is not one linear segment") end' \
        "$WORK/lvm/${1%%/*}.json"
}
lv_size() { jq -r --arg name "$1" '.lvs[] | select(.name == $name) | .size' "$WORK/lvm/${1%%/*}.json"; }

# place_lv VG/LV FILE: scatter an LV-sized image onto the PVs (what ferry's
# LV mapping must undo). gather_lv VG/LV FILE: the reverse.
place_lv() {
    local lvoff len img imgoff
    while read -r lvoff len img imgoff; do
        dd if="$2" of="$OUT/$img" bs=64K iflag=skip_bytes,count_bytes oflag=seek_bytes \
            skip="$lvoff" count="$len" seek="$imgoff" conv=notrunc,sparse status=none
    done < <(lv_runs "$1")
}
gather_lv() {
    local lvoff len img imgoff
    rm -f "$2"
    truncate -s "$(lv_size "$1")" "$2"
    while read -r lvoff len img imgoff; do
        dd if="$OUT/$img" of="$2" bs=64K iflag=skip_bytes,count_bytes oflag=seek_bytes \
            skip="$imgoff" count="$len" seek="$lvoff" conv=notrunc,sparse status=none
    done < <(lv_runs "$1")
}

# --------------------------------------------------------- filesystems ----
mkext() {   # mkext TYPE DEV LABEL UUID TREE|- [extra mke2fs args...]
    local type=$1 dev=$2 label=$3 id=$4 tree=$5
    shift 5
    local args=(-F -q -t "$type" -L "$label" -U "$id" -E "hash_seed=$id" "$@")
    [[ $tree != - ]] && args+=(-d "$OUT/$tree")
    E2FSPROGS_FAKE_TIME=1700000000 quiet mke2fs "${args[@]}" "$dev"
}

# fill_mounted DEV FSTYPE TREE: mount, copy the tree, unmount.
fill_mounted() {
    local dev=$1 type=$2 tree=$3
    mount -t "$type" "$dev" "$MNT"
    cp -a "$OUT/$tree/." "$MNT/"
    sync -f "$MNT"
    umount "$MNT"
}

# fill_fat DEV TREE: copy a tree into FAT with mtools, no mount needed.
fill_fat() {
    local d=$OUT/$2 e
    for e in "$d"/*; do
        MTOOLS_SKIP_CHECK=1 quiet mcopy -s -m -Q -i "$1" "$e" ::/
    done
}

# ntfs_serial DEV HEX16: mkntfs picks a random serial (blkid's UUID); pin it
# in the boot sector and its backup in the last sector.
ntfs_serial() {
    local dev=$1 hex=$2 bytes="" i last
    for ((i = 14; i >= 0; i -= 2)); do bytes+="\\x${hex:i:2}"; done
    last=$(($(blockdev --getsize64 "$dev") - 512))
    [[ $(dd if="$dev" bs=1 skip=3 count=8 status=none) == "NTFS    " ]] || die "no NTFS boot sector on $dev"
    printf '%b' "$bytes" | dd of="$dev" bs=1 seek=$((0x48)) conv=notrunc status=none
    if [[ $(dd if="$dev" iflag=skip_bytes bs=1 skip=$((last + 3)) count=8 status=none) == "NTFS    " ]]; then
        printf '%b' "$bytes" | dd of="$dev" oflag=seek_bytes bs=1 seek=$((last + 0x48)) conv=notrunc status=none
    fi
}

MiB=$((1024 * 1024))

# ===================================================== 1. gpt.img ======
log "gpt.img"
IMG=gpt.img
truncate -s $((600 * MiB)) "$OUT/$IMG"
quiet sgdisk -o -U "$(uuid 1 d15c 0)" \
    -n 1:2048:+64M -t 1:EF00 -c 1:"EFI System" -u 1:"$(uuid 1 9a27 1)" \
    -n 2:0:+1M -t 2:EF02 -c 2:"BIOS boot" -u 2:"$(uuid 1 9a27 2)" \
    -n 3:0:+96M -t 3:8300 -c 3:root -u 3:"$(uuid 1 9a27 3)" \
    -n 4:0:+32M -t 4:8200 -c 4:swap -u 4:"$(uuid 1 9a27 4)" \
    -n 5:0:0 -t 5:8E00 -c 5:lvm -u 5:"$(uuid 1 9a27 5)" \
    "$OUT/$IMG"
save_pt $IMG

tree=$(mktree gpt-esp 1200 fat)
attach_part dev $IMG 1
quiet mkfs.vfat -F 32 -s 1 -n ESP -i 00010001 -h "$(($(part_start $IMG 1) / 512))" "$dev"
fill_fat "$dev" "$tree"
check_fs "$dev" vfat ESP 0001-0001
detach "$dev"
vol $IMG 1 vfat ESP 0001-0001 "$tree"

vol $IMG 2 - - - -

tree=$(mktree gpt-root 2048)
prand gpt-root-extra $((3 * MiB + 777)) > "$OUT/$tree/usr/share/doc/ferry/extra.bin"
touch -d @1700000000 "$OUT/$tree/usr/share/doc/ferry/extra.bin" "$OUT/$tree/usr/share/doc/ferry"
attach_part dev $IMG 3
mkext ext4 "$dev" root "$(uuid 1 0f50 3)" "$tree"
check_fs "$dev" ext4 root "$(uuid 1 0f50 3)"
detach "$dev"
vol $IMG 3 ext4 root "$(uuid 1 0f50 3)" "$tree"

attach_part dev $IMG 4
quiet mkswap -L swap0 -U "$(uuid 1 0f50 4)" "$dev"
check_fs "$dev" swap swap0 "$(uuid 1 0f50 4)"
detach "$dev"
vol $IMG 4 swap swap0 "$(uuid 1 0f50 4)" -

PV0=Fx1PV5-0000-0000-0000-0000-0000-000005
attach_part dev $IMG 5
LVM_DEVS=("$dev")
lvmq pvcreate -q --uuid "$PV0" --norestorefile "$dev"
lvmq vgcreate -q -s 4M vg0 "$dev"
lvmq lvcreate -q -Wn -Zn -n root -L 48M vg0
lvmq lvcreate -q -Wn -Zn -n data -L 300M vg0    # mkfs.xfs wants >= 300 MiB
lvm_layout vg0 "$(jq -n --arg d "$dev" --argjson o "$(part_start $IMG 5)" \
    '{($d): {volume: "gpt.img:5", image: "gpt.img", offset: $o}}')"
check_fs "$dev" LVM2_member "" "$PV0"
detach "$dev"
LVM_DEVS=()
vol $IMG 5 LVM2_member - "$PV0" -

tree=$(mktree gpt-lvroot 1536)
attach dev "$OUT/$IMG" "$(lv_single_offset vg0/root)" "$(lv_size vg0/root)"
mkext ext4 "$dev" lvroot "$(uuid 1 0f50 257)" "$tree"
detach "$dev"
lvvol vg0 root ext4 lvroot "$(uuid 1 0f50 257)" "$tree"

tree=$(mktree gpt-lvdata 3072)
attach dev "$OUT/$IMG" "$(lv_single_offset vg0/data)" "$(lv_size vg0/data)"
quiet mkfs.xfs -f -q -L lvdata -m uuid="$(uuid 1 0f50 258)" "$dev"
fill_mounted "$dev" xfs "$tree"
detach "$dev"
lvvol vg0 data xfs lvdata "$(uuid 1 0f50 258)" "$tree"

# ===================================================== 2. mbr.img ======
log "mbr.img"
IMG=mbr.img
truncate -s $((256 * MiB)) "$OUT/$IMG"
quiet sfdisk --no-reread --no-tell-kernel "$OUT/$IMG" <<EOF
label: dos
label-id: 0x4d425202
unit: sectors
sector-size: 512

start=2048, size=64MiB, type=83, bootable
size=32MiB, type=83
type=5
size=96MiB, type=83
type=82
EOF
save_pt $IMG

tree=$(mktree mbr-boot 1536)
attach_part dev $IMG 1
mkext ext4 "$dev" boot "$(uuid 2 0f50 1)" "$tree"
check_fs "$dev" ext4 boot "$(uuid 2 0f50 1)"
detach "$dev"
vol $IMG 1 ext4 boot "$(uuid 2 0f50 1)" "$tree"

attach_part dev $IMG 2
mkext ext2 "$dev" p2 "$(uuid 2 0f50 2)" -
check_fs "$dev" ext2 p2 "$(uuid 2 0f50 2)"
detach "$dev"
vol $IMG 2 ext2 p2 "$(uuid 2 0f50 2)" -

vol $IMG 3 - - - -

tree=$(mktree mbr-log5 1280)
attach_part dev $IMG 5
mkext ext3 "$dev" log5 "$(uuid 2 0f50 5)" "$tree"
check_fs "$dev" ext3 log5 "$(uuid 2 0f50 5)"
detach "$dev"
vol $IMG 5 ext3 log5 "$(uuid 2 0f50 5)" "$tree"

attach_part dev $IMG 6
quiet mkswap -L swap6 -U "$(uuid 2 0f50 6)" "$dev"
check_fs "$dev" swap swap6 "$(uuid 2 0f50 6)"
detach "$dev"
vol $IMG 6 swap swap6 "$(uuid 2 0f50 6)" -

# =================================================== 3. gpt4k.img ======
log "gpt4k.img"
IMG=gpt4k.img
truncate -s $((384 * MiB)) "$OUT/$IMG"
attach dev "$OUT/$IMG" "" "" 4096
quiet sgdisk -a 256 -o -U "$(uuid 3 d15c 0)" \
    -n 1:256:+64M -t 1:8300 -c 1:k4root -u 1:"$(uuid 3 9a27 1)" \
    -n 2:0:+300M -t 2:8300 -c 2:k4xfs -u 2:"$(uuid 3 9a27 2)" \
    "$dev"
detach "$dev"
save_pt $IMG 4096

tree=$(mktree gpt4k-k4root 1536)
attach_part dev $IMG 1 4096
mkext ext4 "$dev" k4root "$(uuid 3 0f50 1)" "$tree" -b 4096
check_fs "$dev" ext4 k4root "$(uuid 3 0f50 1)"
detach "$dev"
vol $IMG 1 ext4 k4root "$(uuid 3 0f50 1)" "$tree"

tree=$(mktree gpt4k-k4xfs 2048)
attach_part dev $IMG 2 4096
quiet mkfs.xfs -f -q -s size=4096 -L k4xfs -m uuid="$(uuid 3 0f50 2)" "$dev"
fill_mounted "$dev" xfs "$tree"
check_fs "$dev" xfs k4xfs "$(uuid 3 0f50 2)"
detach "$dev"
vol $IMG 2 xfs k4xfs "$(uuid 3 0f50 2)" "$tree"

# ====================================================== 4. span*.img ======
log "span1.img span2.img"
truncate -s $((128 * MiB)) "$OUT/span1.img" "$OUT/span2.img"
SPV1=Fx4PV1-0000-0000-0000-0000-0000-000001
SPV2=Fx4PV2-0000-0000-0000-0000-0000-000002
attach dA "$OUT/span1.img"
attach dB "$OUT/span2.img"
LVM_DEVS=("$dA" "$dB")
lvmq pvcreate -q --uuid "$SPV1" --norestorefile "$dA"
lvmq pvcreate -q --uuid "$SPV2" --norestorefile "$dB"
lvmq vgcreate -q -s 4M vgspan "$dA" "$dB"
# lin: 4 extents on span1, then str takes extents on both, then lin grows on
# span2 only; lin has two segments and its second one starts mid-PV.
lvmq lvcreate -q -Wn -Zn -n lin -l 4 vgspan "$dA"
lvmq lvcreate -q -Wn -Zn -n str -i 2 -I 64k -l 8 vgspan "$dA" "$dB"
lvmq lvextend -q -l +24 vgspan/lin "$dB"
lvm_layout vgspan "$(jq -n --arg a "$dA" --arg b "$dB" \
    '{($a): {volume: "span1.img", image: "span1.img", offset: 0},
      ($b): {volume: "span2.img", image: "span2.img", offset: 0}}')"
check_fs "$dA" LVM2_member "" "$SPV1"
check_fs "$dB" LVM2_member "" "$SPV2"
detach "$dA"
detach "$dB"
LVM_DEVS=()
vol span1.img "" LVM2_member - "$SPV1" -
vol span2.img "" LVM2_member - "$SPV2" -
jq -e '(.lvs[] | select(.name == "vgspan/lin") | .segments | length == 2
            and .[0].stripes[0].pv == "span1.img" and .[1].stripes[0].pv == "span2.img")
       and (.lvs[] | select(.name == "vgspan/str") | .segments[0]
            | .type == "striped" and (.stripes | length) == 2)' \
    "$WORK/lvm/vgspan.json" >/dev/null || die "vgspan layout is not as intended"

tree=$(mktree span-lin 4096)
truncate -s "$(lv_size vgspan/lin)" "$WORK/lv.img"
mkext ext4 "$WORK/lv.img" spanlin "$(uuid 4 0f50 257)" "$tree"
place_lv vgspan/lin "$WORK/lv.img"
lvvol vgspan lin ext4 spanlin "$(uuid 4 0f50 257)" "$tree"
rm -f "$WORK/lv.img"

tree=$(mktree span-str 768)
truncate -s "$(lv_size vgspan/str)" "$WORK/lv.img"
mkext ext4 "$WORK/lv.img" spanstr "$(uuid 4 0f50 258)" "$tree"
place_lv vgspan/str "$WORK/lv.img"
gather_lv vgspan/str "$WORK/check.img"
cmp -s "$WORK/lv.img" "$WORK/check.img" || die "vgspan/str does not read back"
lvvol vgspan str ext4 spanstr "$(uuid 4 0f50 258)" "$tree"
rm -f "$WORK/lv.img" "$WORK/check.img"

# ===================================================== 4b. ring.img ======
# A PV with a small metadata area after many commits, so that the newest VG
# text wraps from the end of the metadata ring back to its start.
log "ring.img"
truncate -s $((64 * MiB)) "$OUT/ring.img"
RPV=Fx7PV1-0000-0000-0000-0000-0000-000001
attach dR "$OUT/ring.img"
LVM_DEVS=("$dR")
lvmq pvcreate -q --uuid "$RPV" --norestorefile --metadatasize 32k --dataalignment 64k "$dR"
lvmq vgcreate -q -s 1M vgring "$dR"
lvmq lvcreate -q -Wn -Zn -n keep -l 3 vgring
ring_wrapped() {   # raw_locn[0] offset + size beyond the area's size
    local h off size mda
    # O_DIRECT: LVM writes around the page cache.
    h=$(dd if="$dR" bs=4096 skip=1 count=1 iflag=direct status=none | od -A n -t u8 -j 32 -N 24 | tr -s ' \n' '  ')
    read -r mda off size <<<"$h"
    ((off + size > mda))
}
for ((i = 1; i <= 300; i++)); do
    ring_wrapped && break
    lvmq lvcreate -q -Wn -Zn -n "tmp$i" -l 1 vgring
    lvmq lvremove -q -f "vgring/tmp$i"
done
ring_wrapped || die "vgring: metadata did not wrap after $i commits"
lvm_layout vgring "$(jq -n --arg r "$dR" '{($r): {volume: "ring.img", image: "ring.img", offset: 0}}')"
check_fs "$dR" LVM2_member "" "$RPV"
detach "$dR"
LVM_DEVS=()
vol ring.img "" LVM2_member - "$RPV" -
lvvol vgring keep - - - -

# ===================================================== 5. whole.img ======
log "whole.img"
tree=$(mktree whole-whole 1536)
truncate -s $((64 * MiB)) "$OUT/whole.img"
mkext ext4 "$OUT/whole.img" whole "$(uuid 5 0f50 0)" "$tree"
check_fs "$OUT/whole.img" ext4 whole "$(uuid 5 0f50 0)"
vol whole.img "" ext4 whole "$(uuid 5 0f50 0)" "$tree"

# ====================================================== 6. misc.img ======
log "misc.img"
IMG=misc.img
truncate -s $((400 * MiB)) "$OUT/$IMG"
quiet sgdisk -o -U "$(uuid 6 d15c 0)" \
    -n 1:2048:+128M -t 1:8300 -c 1:btrfs -u 1:"$(uuid 6 9a27 1)" \
    -n 2:0:+64M -t 2:0700 -c 2:ntfs -u 2:"$(uuid 6 9a27 2)" \
    -n 3:0:+32M -t 3:8309 -c 3:luks -u 3:"$(uuid 6 9a27 3)" \
    -n 4:0:+64M -t 4:0700 -c 4:fat16 -u 4:"$(uuid 6 9a27 4)" \
    "$OUT/$IMG"
save_pt $IMG

tree=$(mktree misc-bt 1536)
attach_part dev $IMG 1
quiet mkfs.btrfs -f -q -L bt -U "$(uuid 6 0f50 1)" -r "$OUT/$tree" "$dev"
check_fs "$dev" btrfs bt "$(uuid 6 0f50 1)"
detach "$dev"
vol $IMG 1 btrfs bt "$(uuid 6 0f50 1)" "$tree"

NTSERIAL=0006000000000002
tree=$(mktree misc-nt 1024 fat)
attach_part dev $IMG 2
quiet mkntfs -Q -F -L nt -p "$(($(part_start $IMG 2) / 512))" "$dev"
ntfs_serial "$dev" $NTSERIAL
# Files go in through ntfs-3g (FUSE); without FUSE the volume stays empty.
if ntfs-3g "$dev" "$MNT" 2>"$WORK/ntfs.err"; then
    # ntfs-3g has no owners or POSIX modes to keep
    cp -r --preserve=timestamps "$OUT/$tree/." "$MNT/"
    sync -f "$MNT"
    umount "$MNT"
else
    cat "$WORK/ntfs.err" >&2
    log "WARNING: cannot mount NTFS with ntfs-3g; misc.img:2 stays empty"
    rm -rf -- "${OUT:?}/$tree"
    tree=-
fi
check_fs "$dev" ntfs nt $NTSERIAL
detach "$dev"
vol $IMG 2 ntfs nt $NTSERIAL "$tree"

LUKSID=$(uuid 6 0f50 3)
attach_part dev $IMG 3
prand luks-key 32 > "$WORK/luks.key"
prand luks-volume-key 64 > "$WORK/luks.vk"
quiet cryptsetup luksFormat --batch-mode --type luks2 --label lk --uuid "$LUKSID" \
    --key-file "$WORK/luks.key" --volume-key-file "$WORK/luks.vk" \
    --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$dev"
# No device-mapper, so the container cannot be opened: put 2 MiB of fixed
# "ciphertext" at the start of its data segment instead.
luksoff=$(cryptsetup luksDump --dump-json-metadata "$dev" | jq -r '.segments["0"].offset')
prand luks-payload $((2 * MiB)) |
    dd of="$dev" bs=64K oflag=seek_bytes seek="$luksoff" conv=notrunc status=none
check_fs "$dev" crypto_LUKS lk "$LUKSID"
detach "$dev"
cp "$WORK/luks.key" "$OUT/misc-luks.key"
vol $IMG 3 crypto_LUKS lk "$LUKSID" - \
    "$(jq -cn --argjson o "$luksoff" '{key_file: "misc-luks.key", luks_data_offset: $o}')"

tree=$(mktree misc-fat16 1024 fat)
attach_part dev $IMG 4
quiet mkfs.vfat -F 16 -n FAT16 -i 00060004 -h "$(($(part_start $IMG 4) / 512))" "$dev"
fill_fat "$dev" "$tree"
check_fs "$dev" vfat FAT16 0006-0004
detach "$dev"
vol $IMG 4 vfat FAT16 0006-0004 "$tree"

# ============================================= LVs: read back and check ==
for lv in vg0/root:ext4:lvroot:257:1 vg0/data:xfs:lvdata:258:1 \
          vgspan/lin:ext4:spanlin:257:4 vgspan/str:ext4:spanstr:258:4; do
    IFS=: read -r name type label n fx <<<"$lv"
    gather_lv "$name" "$WORK/check.img"
    check_fs "$WORK/check.img" "$type" "$label" "$(uuid "$fx" 0f50 "$n")"
    rm -f "$WORK/check.img"
done

# ============================================================ manifest ==
images=()
for spec in gpt.img:512:gpt mbr.img:512:dos gpt4k.img:4096:gpt \
            span1.img:512:none span2.img:512:none ring.img:512:none whole.img:512:none misc.img:512:gpt; do
    IFS=: read -r img ss table <<<"$spec"
    pt='null'
    [[ -f $WORK/pt/$img.json ]] && pt=$(cat "$WORK/pt/$img.json")
    images+=("$(jq -s --arg img "$img" --argjson ss "$ss" --arg table "$table" \
        --argjson size "$(stat -c %s "$OUT/$img")" --argjson pt "$pt" '
        ($pt.partitiontable // null) as $t
        | {name: $img, path: $img, size: $size, sector_size: $ss, table: $table,
           disk_id: ($t.id // null),
           volumes: map(
               . as $v
               | if $v.number == null then
                     del(.image) + {offset: 0, size: $size}
                 else
                     ($t.partitions[] | select((.node | capture("(?<n>[0-9]+)$").n | tonumber) == $v.number)) as $p
                     | del(.image) + {offset: ($p.start * $ss), size: ($p.size * $ss), type: $p.type}
                       + (if $table == "gpt" then {part_uuid: $p.uuid, part_name: ($p.name // null)}
                          else {bootable: ($p.bootable // false)} end)
                 end)}' "$WORK/vols/$img.jsonl")")
done
vgs=()
for vg in "${VGS[@]}"; do
    vgs+=("$(jq -s --slurpfile lay "$WORK/lvm/$vg.json" '
        . as $want | $lay[0] | .lvs |= map(. as $l | ($want[] | select(.name == $l.name)) + $l)' \
        "$WORK/lvm/$vg.lvs.jsonl")")
done
jq -n --arg cfg "$LVM_CONFIG_FOR_TESTS" \
    --argjson images "$(printf '%s\n' "${images[@]}" | jq -s .)" \
    --argjson vgs "$(printf '%s\n' "${vgs[@]}" | jq -s .)" \
    '{version: 1, lvm_config: $cfg, images: $images, vgs: $vgs}' > "$OUT/manifest.json"

sync
# ============================================================= summary ==
echo "ferry fixtures in $OUT ($((SECONDS - START)) s, $(du -sh "$OUT" | cut -f1) on disk):"
jq -r '
    def vol: "    \(.name | .[0:16] | . + " " * (16 - length)) \(.fstype // "-" | . + " " * (12 - length)) \(.label // "-" | . + " " * (8 - length)) \(.size / 1048576 * 100 | floor / 100) MiB\(if .tree then "  +files" else "" end)";
    (.images[] | "  \(.name)  \(.size / 1048576) MiB, \(.sector_size)-byte sectors, \(.table)", (.volumes[] | vol)),
    (.vgs[] | "  VG \(.vg) on \([.pvs[].volume] | join(", "))", (.lvs[] | vol + "  \(.segments | length) segment(s)"))
' "$OUT/manifest.json"
