#!/usr/bin/env bash
# Runs every check Hearth has, from a fresh clone: fetches the models the
# tests need (cached in models/), then format, lint and the whole test suite.
# This is the README's test command and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

say "cargo fmt --check"
cargo fmt --all -- --check

say "building (test profile: dependencies optimized)"
cargo build --locked

say "fetching models (skipped when already verified)"
HEARTH="$TARGET_DIR/debug/hearth" scripts/setup.sh --no-build

say "systemd units: exposure scores"
scripts/check-units.sh

say "cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings

say "cargo test"
cargo test --locked

# ARM: the kernels cross-compiled to aarch64, run under qemu as a Pi 4
# (Cortex-A72: NEON only) and a Pi 5 (Cortex-A76: dotprod). The reference
# tests under emulation take ~18 minutes more: scripts/test-arm.sh without
# --quick.
say "aarch64 kernels under qemu (Cortex-A72, Cortex-A76)"
scripts/test-arm.sh --install --quick
