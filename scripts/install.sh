#!/usr/bin/env bash
# Installs Hearth as two hardened systemd services on a Debian or Raspberry
# Pi OS box: hearth.service (the daemon, no network) and
# hearth-bridge.service (WhatsApp, no access to the store).
#
#   sudo scripts/install.sh --owner +4915112345678 [--index /home/me/docs]...
#   sudo scripts/install.sh --no-start          install, enable nothing
#   scripts/install.sh --no-models              leave /var/lib/hearth/models alone
#   scripts/install.sh --root /tmp/stage        stage into a directory (no
#                                               users, no systemctl; for checks)
#
# What it does: builds the release binary unless target/release/hearth
# exists (run scripts/setup.sh first for the models), creates the system
# users hearth and hearth-bridge, installs /usr/local/bin/hearth, the units,
# /etc/hearth/config.toml (0640 root:hearth), one key per process in
# /etc/hearth/{store,bridge}.key (0600 root; systemd hands them to the
# services as credentials), the models under /var/lib/hearth/models, and a
# drop-in per indexed folder (bound read-only into the daemon's sandbox).
# Then `hearth doctor` checks the result. Safe to run again: existing keys
# and config are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$(pwd)

DEST=""
OWNER=""
START=1
MODELS=1
INDEX=()
while [ $# -gt 0 ]; do
    case "$1" in
        --root) DEST=$2; shift 2 ;;
        --owner) OWNER=$2; shift 2 ;;
        --index) INDEX+=("$2"); shift 2 ;;
        --no-start) START=0; shift ;;
        --no-models) MODELS=0; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
staged() { [ -n "$DEST" ]; }

if ! staged && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo), or --root DIR to stage" >&2
    exit 2
fi

HEARTH=${HEARTH:-"${CARGO_TARGET_DIR:-$ROOT_DIR/target}/release/hearth"}
if [ ! -x "$HEARTH" ]; then
    say "building hearth (release)"
    cargo build --release --locked
fi

if ! staged; then
    for user in hearth hearth-bridge; do
        if ! id "$user" >/dev/null 2>&1; then
            say "creating system user $user"
            useradd --system --user-group --home-dir "/var/lib/$user" --shell /usr/sbin/nologin "$user"
        fi
    done
fi
own() { staged || chown "$@"; }

say "installing the binary, units and documentation"
install -D -m 0755 "$HEARTH" "$DEST/usr/local/bin/hearth"
# The units are the Debian package's; here the program, its documentation
# and the models live under /usr/local and /var/lib/hearth/models.
for unit in hearth.service hearth-bridge.service; do
    install -d -m 0755 "$DEST/etc/systemd/system"
    sed -e 's|/usr/bin/hearth|/usr/local/bin/hearth|' \
        -e 's|/usr/share/doc/hearth|/usr/local/share/doc/hearth|' \
        -e 's|HEARTH_MODELS_DIR=/usr/share/hearth/models|HEARTH_MODELS_DIR=/var/lib/hearth/models|' \
        "systemd/$unit" >"$DEST/etc/systemd/system/$unit"
    chmod 0644 "$DEST/etc/systemd/system/$unit"
done
install -D -m 0644 README.md "$DEST/usr/local/share/doc/hearth/README.md"

install -d -m 0750 "$DEST/etc/hearth"
own root:hearth "$DEST/etc/hearth"
CONFIG="$DEST/etc/hearth/config.toml"
if [ ! -e "$CONFIG" ]; then
    say "writing $CONFIG"
    # The services' places (data, keys, session, socket), as the Debian
    # package's config names them.
    "$HEARTH" --config "$CONFIG" init --system ${OWNER:+--owner "$OWNER"} >/dev/null
    chmod 0640 "$CONFIG"
    own root:hearth "$CONFIG"
fi

new_key() {
    local file=$1
    if [ ! -e "$file" ]; then
        say "creating $file"
        (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file"; echo >>"$file")
        own root:root "$file"
    fi
    chmod 0600 "$file"
}
new_key "$DEST/etc/hearth/store.key"
new_key "$DEST/etc/hearth/bridge.key"

install -d -m 0700 "$DEST/var/lib/hearth" "$DEST/var/lib/hearth/models"
if [ "$MODELS" = 1 ]; then
    say "installing models into /var/lib/hearth/models"
    (cd models && find . -type f ! -name '*.partial' ! -path './.wheels/*' -print0) |
        while IFS= read -r -d '' f; do
            install -D -m 0644 "models/$f" "$DEST/var/lib/hearth/models/$f"
        done
fi
own -R hearth:hearth "$DEST/var/lib/hearth"
install -d -m 0700 "$DEST/var/lib/hearth-bridge"
own hearth-bridge:hearth-bridge "$DEST/var/lib/hearth-bridge"

DROPIN="$DEST/etc/systemd/system/hearth.service.d"
if [ ${#INDEX[@]} -gt 0 ]; then
    install -d -m 0755 "$DROPIN"
    {
        echo "# Folders hearth serve may read (read-only), written by install.sh."
        echo "[Service]"
        for dir in "${INDEX[@]}"; do echo "BindReadOnlyPaths=$(realpath "$dir")"; done
    } >"$DROPIN/roots.conf"
    say "indexed folders bound read-only: ${INDEX[*]} (give user hearth read access, e.g. setfacl -R -m u:hearth:rX DIR)"
fi

# A DNS resolver on the LAN (the router) must stay reachable for the bridge.
RESOLVERS=$(awk '/^nameserver/ { print $2 }' /etc/resolv.conf 2>/dev/null | grep -v '^127\.0\.0\.53$' || true)
if [ -n "$RESOLVERS" ]; then
    install -d -m 0755 "$DEST/etc/systemd/system/hearth-bridge.service.d"
    {
        echo "# The DNS resolver(s) from /etc/resolv.conf, written by install.sh."
        echo "[Service]"
        for r in $RESOLVERS; do echo "IPAddressAllow=$r"; done
    } >"$DEST/etc/systemd/system/hearth-bridge.service.d/resolver.conf"
fi

if staged; then
    say "staged into $DEST (no users created, nothing started)"
    exit 0
fi

systemctl daemon-reload
if [ "$START" = 1 ]; then
    systemctl enable --now hearth.service
    say "hearth serve is running; link WhatsApp with:"
    echo "  sudo hearth pair      (reads /etc/hearth/config.toml; the session goes to user hearth-bridge)"
    echo "  sudo systemctl enable --now hearth-bridge.service"
fi
say "checking the installation"
/usr/local/bin/hearth doctor || true
