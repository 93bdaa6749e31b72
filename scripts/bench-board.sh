#!/usr/bin/env bash
# Benchmarks Hearth on the board it runs on (Raspberry Pi, NUC, ...) and,
# when llama.cpp's `llama-bench` is installed, llama.cpp on the same GGUF
# files with the same tests and threads, then prints one comparison table.
#
# Usage: scripts/bench-board.sh [-t THREADS] [-r REPS] [--models DIR]
#                               [--hearth PATH] [--llama-bench PATH]
#   -t      thread counts, comma-separated (default: 1 and all cores)
#   -r      repetitions per test (default 5)
#   --models       where the GGUF files are (default: models/)
#   --hearth       the hearth binary (default: target/release/hearth, or
#                  hearth on PATH)
#   --llama-bench  llama-bench (default: llama-bench on PATH; none: Hearth only)
# Tests: pp512 and tg128, as llama-bench runs them by default.
set -euo pipefail
cd "$(dirname "$0")/.."

cores=$(nproc)
threads="1,$cores"; [ "$cores" = 1 ] && threads=1
reps=5
models=models
hearth=target/release/hearth
[ -x "$hearth" ] || hearth=$(command -v hearth || true)
llama=$(command -v llama-bench || true)
while [ $# -gt 0 ]; do
    case "$1" in
        -t) threads="$2"; shift ;;
        -r) reps="$2"; shift ;;
        --models) models="$2"; shift ;;
        --hearth) hearth="$2"; shift ;;
        --llama-bench) llama="$2"; shift ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-board: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$hearth" ] && [ -x "$hearth" ] || { echo "bench-board: no hearth binary (cargo build --release, or --hearth PATH)" >&2; exit 2; }

# name in Hearth's catalog = file under --models
declare -A FILES=(
    [smollm2]=SmolLM2-135M-Instruct.Q4_1.gguf
    [gemma3]=gemma-3-270m-q4_k_m.gguf
    [qwen25coder]=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "bench-board: $(uname -m), $cores cores, threads $threads, $reps repetitions" >&2
for name in "${!FILES[@]}"; do
    file="$models/${FILES[$name]}"
    [ -f "$file" ] || { echo "bench-board: $file missing, skipping $name (scripts/setup.sh fetches it)" >&2; continue; }
    echo "bench-board: hearth bench $name" >&2
    HEARTH_MODELS_DIR="$models" "$hearth" bench -m "$name" -t "$threads" -r "$reps" --json > "$out/hearth-$name.json"
    if [ -n "$llama" ]; then
        echo "bench-board: llama-bench ${FILES[$name]}" >&2
        "$llama" -m "$file" -t "$threads" -p 512 -n 128 -r "$reps" -o json > "$out/llama-$name.json"
    fi
done

python3 - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
rows = {}
for f in sorted(out.glob("hearth-*.json")):
    name = f.stem.removeprefix("hearth-")
    for r in json.loads(f.read_text()):
        rows[(name, r["n_threads"], r["test"])] = [r["avg_ts"], None, r.get("peak_rss_bytes", 0)]
for f in sorted(out.glob("llama-*.json")):
    name = f.stem.removeprefix("llama-")
    for r in json.loads(f.read_text()):
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        rows.setdefault((name, r["n_threads"], test), [None, None, 0])[1] = r["avg_ts"]
print("| model | threads | test | Hearth t/s | llama.cpp t/s | ratio | Hearth peak RSS MiB |")
print("| --- | --: | --: | --: | --: | --: | --: |")
fmt = lambda v: "-" if v is None else f"{v:.1f}"
for (name, t, test), (h, l, rss) in sorted(rows.items()):
    ratio = f"{h / l:.2f}" if h and l else "-"
    print(f"| {name} | {t} | {test} | {fmt(h)} | {fmt(l)} | {ratio} | {rss / 2**20:.0f} |")
PY
