#!/usr/bin/env bash
# Scores the shipped systemd units with `systemd-analyze security
# --offline=yes` and fails when one is more exposed than its bound:
# hearth.service (serve: no network) <= 2.0, hearth-bridge.service <= 4.0.
# Prints each score; CI runs it from scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null; then
    echo "check-units: systemd-analyze is not installed (Debian: apt install systemd)" >&2
    exit 2
fi

status=0
for pair in hearth.service:2.0 hearth-bridge.service:4.0; do
    unit=${pair%%:*} bound=${pair##*:}
    out=$(systemd-analyze security --offline=yes --no-pager "systemd/$unit" 2>&1) || true
    score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    if [ -z "$score" ]; then
        printf '%s\n' "$out" >&2
        echo "check-units: no score for $unit" >&2
        exit 2
    fi
    if awk -v s="$score" -v b="$bound" 'BEGIN { exit !(s <= b) }'; then
        echo "$unit: exposure $score (bound $bound) ok"
    else
        printf '%s\n' "$out" | grep -v '^✓' >&2
        echo "$unit: exposure $score is over the bound $bound" >&2
        status=1
    fi
done
exit $status
