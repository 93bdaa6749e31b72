#!/usr/bin/env bash
# Proves the engine on ARM without a board: cross-compiles the kernel unit
# tests and the llama.cpp reference tests to aarch64 and runs them under
# qemu-user as three CPUs. Only the engine is built (no default features:
# none of the store, transport, document or CLI dependencies):
#   cortex-a72  Raspberry Pi 4, ARMv8.0: must pick the `neon` kernels
#               (no `sdot`: a kernel that used it would die with SIGILL)
#   cortex-a76  Raspberry Pi 5, ARMv8.2: must pick `neon-dotprod`
#               (no `smmla`)
#   max         everything qemu emulates (ARMv8.6+ i8mm): `neon-i8mm`
#
# Needs: rustup's aarch64-unknown-linux-gnu target, Debian's
# gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu and qemu-user
# (`--install` installs them), and the models (scripts/setup.sh).
#
# Usage: scripts/test-arm.sh [--install] [--quick] [--cpu NAME]...
#   --install  installs the cross toolchain and qemu (apt, rustup)
#   --quick    kernel unit tests only (seconds per CPU; the reference tests
#              take 8-13 minutes per CPU under emulation)
#   --cpu      a qemu CPU model (default: cortex-a72, cortex-a76, max)
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu
cpus=()
install=0
quick=0
while [ $# -gt 0 ]; do
    case "$1" in
        --install) install=1 ;;
        --quick) quick=1 ;;
        --cpu) cpus+=("$2"); shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test-arm: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ ${#cpus[@]} -gt 0 ] || cpus=(cortex-a72 cortex-a76 max)

have_tools() {
    command -v aarch64-linux-gnu-gcc >/dev/null && command -v aarch64-linux-gnu-g++ >/dev/null \
        && command -v qemu-aarch64 >/dev/null
}
if [ "$install" = 1 ]; then
    if ! have_tools; then
        echo "test-arm: installing the aarch64 cross compiler and qemu-user" >&2
        apt-get install -y -q gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user >/dev/null; }
    fi
    rustup target list --installed 2>/dev/null | grep -qx "$TARGET" || rustup target add "$TARGET"
fi
for tool in aarch64-linux-gnu-gcc aarch64-linux-gnu-g++ qemu-aarch64; do
    command -v "$tool" >/dev/null || { echo "test-arm: $tool is missing (run with --install)" >&2; exit 2; }
done
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
    || { echo "test-arm: rust target $TARGET is missing (run with --install)" >&2; exit 2; }

export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc

# The engine only, with the same flags for every cargo call below, so the
# build is done once.
engine=(--locked --target "$TARGET" --no-default-features)
targets=(--lib)
[ "$quick" = 1 ] || targets+=(--test reference --test voice_reference)

echo "test-arm: building the engine's tests for $TARGET"
cargo test "${engine[@]}" "${targets[@]}" --no-run

expect() {
    case "$1" in
        cortex-a72|cortex-a53|cortex-a57) echo neon ;;
        max) echo neon-i8mm ;;
        *) echo neon-dotprod ;;
    esac
}

for cpu in "${cpus[@]}"; do
    echo "test-arm: $cpu, expecting the $(expect "$cpu") kernels"
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu $cpu"
    HEARTH_EXPECT_KERNELS="$(expect "$cpu")" \
        cargo test "${engine[@]}" --lib -- llm:: voice::
    [ "$quick" = 1 ] || cargo test "${engine[@]}" --test reference --test voice_reference
done
echo "test-arm: all passed"
