#!/usr/bin/env bash
# The packaging checks CI runs: builds the amd64 package twice (v1, and v2
# as a later revision) with the SmolLM2 and MiniLM model packages, runs
# lintian (errors fail; the warnings kept are listed in README "Debian
# packages"), then in a fresh Debian 13 root made with mmdebstrap:
#   install   users, directories and modes as `hearth doctor` checks them,
#             both keys, the config as a conffile; `hearth doctor` passes;
#             the units' exposure (`systemd-analyze security --offline=yes
#             --root=ROOT`) is within 2.0 / 4.0; `hearth serve`, run as the
#             unit's user on the installed model, answers a message through
#             its socket (and creates the store)
#   upgrade   v1 -> v2 keeps the edited config, both keys, the store, the
#             WhatsApp session and its media byte for byte
#   remove    keeps config, keys and data
#   purge     erases keys, store, session and media; the program is gone
# Each check prints ok/FAIL; exit 1 when one failed, 2 when the checks
# could not run.
#
# Usage: scripts/test-deb.sh [--install] [--profile dev|release] [--no-build] [--keep]
#   --install  installs what is missing: mmdebstrap and lintian (apt),
#              cargo-deb 3.8.0 (cargo install, a few minutes once)
#   --profile  which build to package (CI: dev, the test build's binary)
#   --no-build package what is already built
#   --keep     leave the root in $WORK for a look afterwards
# Needs root (chroot, mount), mmdebstrap and Debian's mirror, lintian,
# cargo-deb, python3, and models/ with smollm2 and minilm (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE=release
BUILD=1
KEEP=0
INSTALL=0
while [ $# -gt 0 ]; do
    case "$1" in
        --install) INSTALL=1; shift ;;
        --profile) PROFILE=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "test-deb: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "test-deb: run as root (it uses chroot and mount)" >&2; exit 2; }
if [ "$INSTALL" = 1 ]; then
    missing=()
    for tool in mmdebstrap lintian; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "test-deb: installing ${missing[*]}" >&2
        apt-get install -y -q "${missing[@]}" >/dev/null \
            || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
    fi
    if ! cargo deb --version 2>/dev/null | grep -q '3\.8\.'; then
        echo "test-deb: installing cargo-deb 3.8.0" >&2
        cargo install cargo-deb --version 3.8.0 --locked --quiet
    fi
fi
for tool in mmdebstrap lintian cargo-deb python3; do
    command -v "$tool" >/dev/null || { echo "test-deb: $tool is missing (apt install mmdebstrap lintian; cargo install cargo-deb --locked)" >&2; exit 2; }
done

WORK=$(mktemp -d /var/tmp/hearth-deb.XXXXXX)
ROOT=$WORK/root
mounted=()
cleanup() {
    local m
    for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
    [ -n "${SERVE_PID:-}" ] && kill "$SERVE_PID" 2>/dev/null || true
    if [ "$KEEP" = 1 ]; then echo "test-deb: left $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

failed=0
ok() { printf 'ok    %s\n' "$*"; }
bad() { printf 'FAIL  %s\n' "$*"; failed=1; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
in_root() { chroot "$ROOT" "$@"; }

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
build=(--arch amd64 --profile "$PROFILE")
[ "$BUILD" = 1 ] || build+=(--no-build)
say "building v1 and v2 packages ($PROFILE)"
scripts/build-deb.sh "${build[@]}" --models "smollm2 minilm" --out "$WORK/v1"
scripts/build-deb.sh "${build[@]}" --no-build --models "" --deb-version "$VERSION-2" --out "$WORK/v2"
V1=$(ls "$WORK"/v1/hearth_*_amd64.deb)
V2=$(ls "$WORK"/v2/hearth_*_amd64.deb)

say "lintian"
for deb in "$WORK"/v1/*.deb; do
    out=$(lintian --no-tag-display-limit "$deb" 2>&1 || true)
    errors=$(printf '%s\n' "$out" | grep -c '^E:' || true)
    printf '%s\n' "$out" | grep -E '^(E|W):' | sed 's/^/      /' || true
    check "lintian: $(basename "$deb"): no errors ($errors)" [ "$errors" = 0 ]
done

say "a fresh Debian 13 root"
mmdebstrap --quiet --variant=apt --include=systemd trixie "$ROOT"
for m in proc sys dev dev/pts; do
    mount --bind "/$m" "$ROOT/$m"
    mounted=("$ROOT/$m" "${mounted[@]}")
done
mkdir -p "$ROOT/tmp/debs"
cp "$V1" "$WORK"/v1/hearth-models-*.deb "$ROOT/tmp/debs/"

say "install v1"
models=()
for m in "$WORK"/v1/hearth-models-*.deb; do models+=("/tmp/debs/$(basename "$m")"); done
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    /tmp/debs/"$(basename "$V1")" "${models[@]}" >/dev/null
mode() { in_root stat -c '%a %U:%G' "$1"; }
check "users hearth and hearth-bridge exist" in_root id hearth-bridge
check "/etc/hearth is 750 root:hearth" [ "$(mode /etc/hearth)" = "750 root:hearth" ]
check "config is a 640 root:hearth conffile" \
    sh -c "[ '$(mode /etc/hearth/config.toml)' = '640 root:hearth' ] && grep -q /etc/hearth/config.toml '$ROOT/var/lib/dpkg/info/hearth.conffiles'"
check "store key is 600 root:root" [ "$(mode /etc/hearth/store.key)" = "600 root:root" ]
check "bridge key is 600 root:root" [ "$(mode /etc/hearth/bridge.key)" = "600 root:root" ]
check "/var/lib/hearth is 700 hearth:hearth" [ "$(mode /var/lib/hearth)" = "700 hearth:hearth" ]
check "/var/lib/hearth-bridge is 700 hearth-bridge:hearth-bridge" \
    [ "$(mode /var/lib/hearth-bridge)" = "700 hearth-bridge:hearth-bridge" ]
check "units enabled" test -L "$ROOT/etc/systemd/system/multi-user.target.wants/hearth.service" \
    -a -L "$ROOT/etc/systemd/system/multi-user.target.wants/hearth-bridge.service"
check "the console pairing unit ships disabled" \
    test ! -e "$ROOT/etc/systemd/system/multi-user.target.wants/hearth-pair.service"

score() { # UNIT: the exposure systemd-analyze gives it inside ROOT
    local out
    out=$(systemd-analyze security --offline=yes --root="$ROOT" --no-pager "$1" 2>/dev/null) \
        || out=$(in_root systemd-analyze security --offline=yes --no-pager "$1" 2>/dev/null) || true
    printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}
for pair in hearth.service:2.0 hearth-bridge.service:4.0; do
    unit=${pair%%:*} bound=${pair##*:} s=$(score "${pair%%:*}")
    check "$unit exposure ${s:-?} <= $bound" awk -v s="${s:-99}" -v b="$bound" 'BEGIN { exit !(s <= b) }'
done

doctor=$(in_root hearth doctor 2>&1) && doctor_rc=0 || doctor_rc=$?
printf '%s\n' "$doctor" | sed 's/^/      /'
check "hearth doctor passes in the fresh root" [ "$doctor_rc" = 0 ]
fresh=$(in_root hearth privacy 2>&1) && fresh_rc=0 || fresh_rc=$?
check "hearth privacy on the fresh box: nothing stored yet, exit 0" \
    sh -c "[ $fresh_rc = 0 ] && printf '%s' \"\$1\" | grep -q '^Nothing is stored yet'" _ "$fresh"

# hearth serve as its unit runs it (user hearth, the key as a credential),
# on the packaged model; a message through the socket gets a reply.
start_serve() {
    install -d -m 0750 -o root -g "$(in_root id -g hearth)" "$ROOT/run/hearth"
    chown "$(in_root id -u hearth)" "$ROOT/run/hearth"
    install -d -m 0700 "$ROOT/run/hearth-creds"
    install -m 0400 -o "$(in_root id -u hearth)" "$ROOT/etc/hearth/store.key" "$ROOT/run/hearth-creds/store.key"
    chown "$(in_root id -u hearth)" "$ROOT/run/hearth-creds"
    chroot "$ROOT" setpriv --reuid hearth --regid hearth --init-groups \
        env HOME=/var/lib/hearth CREDENTIALS_DIRECTORY=/run/hearth-creds \
        HEARTH_CONFIG=/etc/hearth/config.toml HEARTH_DATA_DIR=/var/lib/hearth \
        HEARTH_MODELS_DIR=/usr/share/hearth/models \
        hearth serve --socket /run/hearth/hearth.sock -n 8 >"$WORK/serve.log" 2>&1 &
    SERVE_PID=$!
}
stop_serve() {
    kill "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" 2>/dev/null || true
    SERVE_PID=""
}
ask() { # TEXT: the reply's text, or nothing after 180 s
    python3 - "$ROOT/run/hearth/hearth.sock" "$1" <<'PY'
import json, socket, sys, time
path, text = sys.argv[1], sys.argv[2]
deadline = time.time() + 180
while True:
    try:
        s = socket.socket(socket.AF_UNIX); s.connect(path); break
    except OSError:
        if time.time() > deadline: sys.exit(0)
        time.sleep(0.5)
s.settimeout(max(1, deadline - time.time()))
f = s.makefile("rw")
def send(o): f.write(json.dumps(o) + "\n"); f.flush()
send({"type": "hello", "version": 1, "role": "cli"})
send({"type": "inbound", "message_id": str(time.time()), "chat_id": "cli:owner",
      "sender_id": "cli:owner", "text": text, "timestamp_ms": int(time.time() * 1000)})
try:
    for line in f:
        o = json.loads(line)
        if o.get("type") == "outbound":
            print(o["text"]); break
except socket.timeout:
    pass
PY
}
start_serve
reply=$(ask "/status")
check "hearth serve (user hearth) answers /status from the installed model" \
    sh -c "printf '%s' \"\$1\" | grep -q 'smollm2'" _ "$reply"
reply=$(ask "Say hello.")
check "a message gets a reply from the model (${#reply} characters)" [ -n "$reply" ]
stop_serve
[ -n "$reply" ] || sed 's/^/      serve: /' "$WORK/serve.log" | tail -20

say "upgrade v1 -> v2"
sed -i 's/^numbers = \[\].*/numbers = ["+447700900123"]/' "$ROOT/etc/hearth/config.toml"
bridge_uid=$(in_root id -u hearth-bridge)
install -d -m 0700 -o "$bridge_uid" "$ROOT/var/lib/hearth-bridge/inbox"
# Stand-ins for the WhatsApp session and a saved voice note: the package
# must not touch either (a real session needs WhatsApp).
head -c 4096 /dev/urandom >"$ROOT/var/lib/hearth-bridge/session.db"
head -c 2048 /dev/urandom >"$ROOT/var/lib/hearth-bridge/inbox/note.ogg"
chown "$bridge_uid" "$ROOT/var/lib/hearth-bridge/session.db" "$ROOT/var/lib/hearth-bridge/inbox/note.ogg"
kept=(/etc/hearth/config.toml /etc/hearth/store.key /etc/hearth/bridge.key /var/lib/hearth/hearth.db
    /var/lib/hearth-bridge/session.db /var/lib/hearth-bridge/inbox/note.ogg)
sums() { (cd "$ROOT" && for f in "${kept[@]}"; do sha256sum ".$f"; done; mode /var/lib/hearth; mode /etc/hearth/config.toml); }
check "the store exists before the upgrade" test -s "$ROOT/var/lib/hearth/hearth.db"
before=$(sums)
cp "$V2" "$ROOT/tmp/debs/"
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    /tmp/debs/"$(basename "$V2")" >/dev/null
check "v2 is installed" sh -c "chroot '$ROOT' dpkg-query -W -f '\${Version}' hearth | grep -qx '$VERSION-2'"
check "config, keys, store, session and media kept byte for byte" [ "$before" = "$(sums)" ]
check "no conffile prompt left behind" sh -c "! ls '$ROOT'/etc/hearth/*.dpkg-* 2>/dev/null | grep -q ."
start_serve
reply=$(ask "/status")
check "after the upgrade the store opens and serve answers" sh -c "printf '%s' \"\$1\" | grep -q 'message(s)'" _ "$reply"
stop_serve

say "remove, then purge"
in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q hearth >/dev/null
check "remove: the program is gone" test ! -e "$ROOT/usr/bin/hearth"
check "remove: config, keys, store and session stay" \
    test -e "$ROOT/etc/hearth/config.toml" -a -e "$ROOT/etc/hearth/store.key" -a -e "$ROOT/var/lib/hearth/hearth.db" -a -e "$ROOT/var/lib/hearth-bridge/session.db"
in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q hearth >/dev/null
check "purge: keys and config gone" test ! -e "$ROOT/etc/hearth"
check "purge: store, session and media gone" test ! -e "$ROOT/var/lib/hearth" -a ! -e "$ROOT/var/lib/hearth-bridge"
check "purge: the model packages are untouched" test -d "$ROOT/usr/share/hearth/models"

if [ "$failed" = 0 ]; then echo "test-deb: all checks passed"; else echo "test-deb: some checks FAILED" >&2; fi
exit "$failed"
