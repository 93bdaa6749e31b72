#!/usr/bin/env bash
# Builds the flashable Hearth image for the Raspberry Pi from Debian's
# packages only: Debian 13 (trixie) arm64 made with mmdebstrap (kernel
# linux-image-arm64, raspi-firmware and the Wi-Fi firmware from
# non-free-firmware, systemd, NetworkManager, systemd-timesyncd,
# systemd-resolved, OpenSSH with keys only), the Hearth packages from
# dist/ installed, and an MBR disk with a FAT boot partition (RASPIFIRM:
# firmware, kernel, hearth-setup.toml) and an ext4 root (RASPIROOT), the
# layout of Debian's own Raspberry Pi images. No loop mounts: the FAT
# partition is written with mtools, the ext4 one with `mke2fs -d`, the
# table with sfdisk. The root grows to the card on first boot.
#
# Output in dist/: hearth-ARCH.img.xz, plus hearth-ARCH.vmlinuz and
# hearth-ARCH.initrd (the image's own kernel, for scripts/test-image.sh
# under qemu) and hearth-ARCH.img.sha256.
#
# Usage:
#   scripts/build-image.sh                  arm64, the Raspberry Pi image
#   scripts/build-image.sh --arch amd64     the same system for amd64 (a
#                                           test variant: no boot loader,
#                                           booted by qemu's -kernel)
#   scripts/build-image.sh --debs DIR       where the .debs are (default dist/)
#   scripts/build-image.sh --backports-kernel
#                      the kernel from trixie-backports (Raspberry Pi 5:
#                      RP1 Ethernet/USB need Linux 6.17 or later)
#   scripts/build-image.sh --no-xz          leave the .img uncompressed
#   scripts/build-image.sh --mirror URL     a Debian mirror (default deb.debian.org)
#
# Needs root, mmdebstrap, mtools, dosfstools, e2fsprogs (1.47: mke2fs -d),
# fdisk (sfdisk), xz-utils and, for arm64 on another machine, qemu-user
# with binfmt (qemu-user-binfmt or qemu-user-static); and the packages from
# scripts/build-deb.sh (hearth for ARCH, the hearth-models-* ones).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$(pwd)

ARCH=arm64
DEBS=dist
OUT=dist
XZ=1
BACKPORTS=0
MIRROR=http://deb.debian.org/debian
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCH=$2; shift 2 ;;
        --debs) DEBS=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --no-xz) XZ=0; shift ;;
        --backports-kernel) BACKPORTS=1; shift ;;
        --mirror) MIRROR=$2; shift 2 ;;
        -h|--help) sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-image: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "build-image: run as root (mmdebstrap, chroot, file ownership)" >&2; exit 2; }
for tool in mmdebstrap mcopy mkfs.vfat mke2fs sfdisk xz; do
    command -v "$tool" >/dev/null || { echo "build-image: $tool is missing (apt install mmdebstrap mtools dosfstools e2fsprogs fdisk xz-utils)" >&2; exit 2; }
done
case "$ARCH" in
    arm64) KERNEL=linux-image-arm64; CONSOLE=ttyAMA0
           EXTRA=raspi-firmware,firmware-brcm80211,wireless-regdb,wpasupplicant ;;
    amd64) KERNEL=linux-image-amd64; CONSOLE=ttyS0; EXTRA=wpasupplicant ;;
    *) echo "build-image: --arch arm64 or amd64" >&2; exit 2 ;;
esac
if [ "$ARCH" != "$(dpkg --print-architecture)" ] && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-aarch64" ]; then
    echo "build-image: building $ARCH here needs qemu-user's binfmt handler (apt install qemu-user-static binfmt-support)" >&2
    exit 2
fi
hearth_deb=$(ls "$DEBS"/hearth_*_"$ARCH".deb 2>/dev/null | sort -V | tail -n1 || true)
[ -n "$hearth_deb" ] || { echo "build-image: no $DEBS/hearth_*_$ARCH.deb: run scripts/build-deb.sh --arch $ARCH" >&2; exit 2; }
model_debs=$(ls "$DEBS"/hearth-models-*_all.deb 2>/dev/null || true)
[ -n "$model_debs" ] || { echo "build-image: no $DEBS/hearth-models-*.deb: run scripts/build-deb.sh" >&2; exit 2; }

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
started=$SECONDS
WORK=$(mktemp -d /var/tmp/hearth-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/root
mkdir -p "$WORK/debs" "$OUT"
cp "$hearth_deb" $model_debs "$WORK/debs/"

kernel_opts=()
if [ "$BACKPORTS" = 1 ]; then
    kernel_opts=(--setup-hook="echo 'deb $MIRROR trixie-backports main non-free-firmware' >\"\$1/etc/apt/sources.list.d/backports.list\""
        --customize-hook="chroot \"\$1\" apt-get install -y -q -t trixie-backports $KERNEL")
fi

say "Debian 13 ($ARCH) with mmdebstrap"
mmdebstrap --quiet --variant=apt --architectures="$ARCH" \
    --components="main non-free-firmware" \
    --include="systemd-sysv,udev,dbus,kmod,initramfs-tools,$KERNEL,$EXTRA,network-manager,systemd-timesyncd,systemd-resolved,openssh-server,iproute2,ca-certificates,tzdata,cloud-guest-utils,e2fsprogs,dosfstools,hostname,less" \
    --customize-hook="copy-in $WORK/debs /tmp" \
    --customize-hook='chroot "$1" sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/debs/*.deb"' \
    "${kernel_opts[@]}" \
    --customize-hook="$HERE/scripts/image/customize \"\$1\" $ARCH" \
    trixie "$ROOT" "$MIRROR"

say "the kernel for qemu, and the partitions"
cp -L "$ROOT/vmlinuz" "$OUT/hearth-$ARCH.vmlinuz"
cp -L "$ROOT/initrd.img" "$OUT/hearth-$ARCH.initrd"
echo "root=LABEL=RASPIROOT rw console=$CONSOLE" >"$OUT/hearth-$ARCH.cmdline"

MIB=$((1024 * 1024))
BOOT_MIB=512
# The boot partition: everything under /boot/firmware, written with mtools.
mkfs.vfat -F 32 -n RASPIFIRM -C "$WORK/boot.vfat" $((BOOT_MIB * 1024)) >/dev/null
mcopy -s -i "$WORK/boot.vfat" "$ROOT"/boot/firmware/* ::/
find "$ROOT/boot/firmware" -mindepth 1 -delete
# The root: its contents plus a quarter and 256 MiB, grown on first boot.
used_mib=$(du -s --block-size=1M "$ROOT" | cut -f1)
ROOT_MIB=$((used_mib + used_mib / 4 + 256))
mke2fs -q -t ext4 -L RASPIROOT -d "$ROOT" "$WORK/root.ext4" "${ROOT_MIB}M"

IMG=$OUT/hearth-$ARCH.img
rm -f "$IMG" "$IMG.xz"
truncate -s $(((1 + BOOT_MIB + ROOT_MIB) * MIB)) "$IMG"
sfdisk --quiet "$IMG" <<EOF
label: dos
start=1MiB, size=${BOOT_MIB}MiB, type=c, bootable
start=$((1 + BOOT_MIB))MiB, type=83
EOF
dd if="$WORK/boot.vfat" of="$IMG" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$WORK/root.ext4" of="$IMG" bs=1M seek=$((1 + BOOT_MIB)) conv=notrunc,sparse status=none
sha256sum "$IMG" | sed "s|  .*/|  |" >"$IMG.sha256"
size_mib=$(($(stat -c %s "$IMG") / MIB))
if [ "$XZ" = 1 ]; then
    say "compressing (xz)"
    xz -T0 -3 "$IMG"
    IMG=$IMG.xz
fi
say "$IMG: $size_mib MiB image ($(($(stat -c %s "$IMG") / MIB)) MiB file), built in $(((SECONDS - started) / 60))m$(((SECONDS - started) % 60))s"
