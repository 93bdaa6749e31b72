#!/usr/bin/env bash
# Builds Hearth's Debian packages into dist/:
#   hearth_VERSION_amd64.deb, hearth_VERSION_arm64.deb
#       the program, its units, users, directories and config (cargo deb;
#       arm64 is cross-built with Debian's gcc-aarch64-linux-gnu)
#   hearth-models-NAME_VERSION_all.deb
#       one per model, architecture-independent, holding the files pinned in
#       models/manifest.toml under /usr/share/hearth/models; each file's
#       size and sha256 are checked against the manifest before packing, so
#       an upgrade of the program does not re-ship the models
#
# Usage:
#   scripts/build-deb.sh                         both architectures, release
#   scripts/build-deb.sh --arch amd64            one architecture
#   scripts/build-deb.sh --models "smollm2 minilm"   which model packages
#                                                (default: smollm2
#                                                qwen25coder minilm
#                                                whisper-base; "" for none)
#   scripts/build-deb.sh --profile dev --no-build
#                      package the debug binary the test build made (CI)
#   scripts/build-deb.sh --deb-version 0.1.0-2   another package revision
#                                                (the upgrade test's "v2")
#   scripts/build-deb.sh --out DIR               where the .debs go
#
# Needs: cargo-deb 3.8 (`cargo install cargo-deb --locked`), dpkg-deb,
# python3 (reads the manifest), the models in models/ (scripts/setup.sh),
# and for arm64 the rust target and cross gcc (scripts/test-arm.sh --install).
set -euo pipefail
cd "$(dirname "$0")/.."

ARCHES=(amd64 arm64)
MODELS="smollm2 qwen25coder minilm whisper-base"
PROFILE=release
BUILD=1
DEB_VERSION=""
OUT=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --arch) ARCHES=("$2"); shift 2 ;;
        --models) MODELS=$2; shift 2 ;;
        --profile) PROFILE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --deb-version) DEB_VERSION=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build-deb: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { echo "build-deb: $1 is missing ($2)" >&2; exit 2; }; }
need cargo-deb "cargo install cargo-deb --locked"
need dpkg-deb "apt install dpkg"
need python3 "apt install python3"
mkdir -p "$OUT"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)

for arch in "${ARCHES[@]}"; do
    args=(--locked --profile "$PROFILE" --output "$OUT")
    [ -n "$DEB_VERSION" ] && args+=(--deb-version "$DEB_VERSION")
    [ "$BUILD" = 1 ] || args+=(--no-build)
    case "$arch" in
        amd64)
            # .cargo/config.toml compiles for the build host's CPU, right for
            # setup.sh on the box itself but not for a package: one built on
            # an AVX2 host died with SIGILL on a CPU without it (the amd64
            # image booted as a Westmere). x86-64-v2 runs on every x86-64
            # CPU since 2009; Hearth's kernels pick AVX2/FMA/VNNI at run
            # time. Its own target dir, so this does not rebuild (and then
            # undo) the native build's cache.
            if [ "$BUILD" = 1 ]; then
                export RUSTFLAGS="-C target-cpu=x86-64-v2"
                export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/portable"
            fi
            ;;
        arm64)
            need aarch64-linux-gnu-gcc "apt install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu"
            export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
            export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
            export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
            export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
            args+=(--target aarch64-unknown-linux-gnu)
            ;;
        *) echo "build-deb: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
    esac
    say "hearth for $arch ($PROFILE)"
    # cargo-deb works out the shared-library dependencies itself ($auto);
    # dpkg-shlibdeps is not needed.
    cargo deb "${args[@]}"
    if [ "$arch" = amd64 ] && [ "$BUILD" = 1 ]; then
        # The package must start on an old x86-64 (no AVX), not just here.
        dir=$PROFILE; [ "$dir" = dev ] && dir=debug
        if command -v qemu-x86_64 >/dev/null; then
            qemu-x86_64 -cpu Westmere "$CARGO_TARGET_DIR/$dir/hearth" --version >/dev/null \
                || { echo "build-deb: the amd64 binary does not start on a Westmere CPU (instructions past x86-64-v2)" >&2; exit 1; }
            say "the amd64 binary starts on a Westmere CPU (qemu-x86_64)"
        else
            echo "build-deb: qemu-x86_64 missing (apt install qemu-user): not checked on an old CPU" >&2
        fi
    fi
done

# The model packages: plain dpkg-deb trees (no compiler involved).
models_pkg() {
    local name=$1 tree
    tree=$(mktemp -d)
    # Each line: file, size, sha256 of one of the model's files.
    python3 - "$name" >"$tree/files" <<'PY'
import sys, tomllib
name = sys.argv[1]
m = tomllib.load(open("models/manifest.toml", "rb"))
for model in m["model"]:
    if model["name"] == name:
        print(model["description"].replace("\n", " "))
        for f in model["files"]:
            print(f"{f['file']}\t{f['size']}\t{f['sha256']}")
        break
else:
    sys.exit(f"build-deb: no model {name!r} in models/manifest.toml")
PY
    local description
    description=$(head -n1 "$tree/files")
    local dest="$tree/root/usr/share/hearth/models"
    while IFS=$'\t' read -r file size sha; do
        local src="models/$file"
        [ -f "$src" ] || { echo "build-deb: $src is missing: MODELS=$name scripts/setup.sh" >&2; exit 2; }
        [ "$(stat -c %s "$src")" = "$size" ] || { echo "build-deb: $src is not $size bytes" >&2; exit 1; }
        echo "$sha  $src" | sha256sum --check --quiet - \
            || { echo "build-deb: $src does not match its sha256 in models/manifest.toml" >&2; exit 1; }
        install -D -m 0644 "$src" "$dest/$file"
    done < <(tail -n +2 "$tree/files")
    local pkg="hearth-models-$name" doc="$tree/root/usr/share/doc/hearth-models-$name"
    install -d -m 0755 "$doc" "$tree/root/DEBIAN"
    local license holder
    case "$name" in
        smollm2) holder="2024 Hugging Face"; license=Apache-2.0 ;;
        qwen25coder) holder="2024 Alibaba Cloud (the Qwen team)"; license=Apache-2.0 ;;
        minilm) holder="2021 Microsoft and the sentence-transformers authors"; license=Apache-2.0 ;;
        whisper-*) holder="2022 OpenAI"; license=MIT ;;
        gemma3) holder="2025 Google"; license="Gemma Terms of Use (https://ai.google.dev/gemma/terms)" ;;
        *) holder="the model's authors"; license="see the model's card" ;;
    esac
    cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $name
Comment: $description. The file(s) under /usr/share/hearth/models are
 redistributed unchanged; their sha256 sums are pinned in Hearth's
 models/manifest.toml.

Files: *
Copyright: $holder
License: $license
EOF
    printf '%s (%s) unstable; urgency=medium\n\n  * The files pinned in Hearth %s'"'"'s manifest.\n\n -- Hearth developers <hearth@hearth.invalid>  %s\n' \
        "$pkg" "$VERSION" "$VERSION" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" \
        | gzip -9n >"$doc/changelog.gz"
    local kib
    kib=$(du -sk --apparent-size "$tree/root/usr" | cut -f1)
    cat >"$tree/root/DEBIAN/control" <<EOF
Package: $pkg
Version: $VERSION
Architecture: all
Maintainer: Hearth developers <hearth@hearth.invalid>
Installed-Size: $kib
Section: misc
Priority: optional
Enhances: hearth
Multi-Arch: foreign
Description: Hearth model: $name
 $description.
 Installed read-only under /usr/share/hearth/models, where hearth serve
 finds it; sizes and sha256 checked against Hearth's manifest when built.
EOF
    say "$pkg ($((kib / 1024)) MiB)"
    dpkg-deb --root-owner-group -Zgzip -z1 --build "$tree/root" "$OUT/${pkg}_${VERSION}_all.deb" >/dev/null
    rm -rf "$tree"
}
for m in $MODELS; do models_pkg "$m"; done

say "packages in $OUT:"
ls -l "$OUT"/*.deb >&2
