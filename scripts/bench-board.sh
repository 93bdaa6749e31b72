#!/usr/bin/env bash
# Benchmarks Hearth on the board it runs on (Raspberry Pi, NUC, ...) and
# prints one markdown report to paste into an issue or a forum post:
#   - the host (CPU, cores, kernel set, caches, memory, Hearth version) and
#     the memory read bandwidth measured in the same run;
#   - pp512 and tg128 for every installed model at each thread count, next
#     to llama.cpp's llama-bench on the same GGUF file when it is installed
#     (one or more builds), with the ratio, min/median and tg's share of
#     the memory bound;
#   - time to first token of an answer with sources (three excerpts from
#     an index of sample notes), and the peak RSS of `hearth serve`
#     answering one message.
#
# Usage: scripts/bench-board.sh [-t THREADS] [-r REPS] [-m FILE.gguf]...
#                               [--models DIR] [--hearth PATH]
#                               [--llama-bench [LABEL=]PATH]... [--no-answer]
#   -t      thread counts, comma-separated (default: 1 up to all cores)
#   -r      repetitions per test (default 5)
#   -m      a GGUF file to benchmark besides the installed models (repeatable)
#   --models       where the installed models are (default: models/, else
#                  /usr/share/hearth/models)
#   --hearth       the hearth binary (default: target/release/hearth, or
#                  hearth on PATH)
#   --llama-bench  a llama-bench binary, optionally labelled
#                  (avx2=/opt/llama-avx2/llama-bench); repeatable
#                  (default: llama-bench on PATH, if any)
#   --no-answer    skip the time-to-first-token and serve RSS part
# BENCH_BOARD_KEEP=1 keeps the raw JSON (its folder is printed at the end).
# Writes the report to stdout, progress to stderr. Exit 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

cores=$(nproc)
threads=$(seq -s, 1 "$cores")
reps=5
models=models
[ -d "$models" ] || models=/usr/share/hearth/models
hearth=target/release/hearth
[ -x "$hearth" ] || hearth=$(command -v hearth || true)
llamas=()
extra=()
answer=1
while [ $# -gt 0 ]; do
    case "$1" in
        -t) threads="$2"; shift ;;
        -r) reps="$2"; shift ;;
        -m) extra+=("$2"); shift ;;
        --models) models="$2"; shift ;;
        --hearth) hearth="$2"; shift ;;
        --llama-bench) llamas+=("$2"); shift ;;
        --no-answer) answer=0 ;;
        -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "bench-board: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$hearth" ] && [ -x "$hearth" ] || { echo "bench-board: no hearth binary (cargo build --release, or --hearth PATH)" >&2; exit 2; }
if [ ${#llamas[@]} -eq 0 ] && command -v llama-bench >/dev/null; then
    llamas=("llama.cpp=$(command -v llama-bench)")
fi

# The installed models (catalog name = file under --models), then -m files.
files=()
for f in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; do
    [ -f "$models/$f" ] && files+=("$models/$f")
done
files+=(${extra[@]+"${extra[@]}"})
[ ${#files[@]} -gt 0 ] || { echo "bench-board: no GGUF file in $models (scripts/setup.sh fetches the models, or pass -m FILE.gguf)" >&2; exit 2; }

out=$(mktemp -d)
if [ -n "${BENCH_BOARD_KEEP:-}" ]; then
    trap 'echo "bench-board: raw results in $out" >&2' EXIT
else
    trap 'rm -rf "$out"' EXIT
fi
echo "bench-board: $(uname -m), $cores cores, threads $threads, $reps repetitions, ${#files[@]} models" >&2

# Interleaved: for each model and thread count, Hearth then each llama-bench.
i=0
for file in "${files[@]}"; do
    i=$((i + 1))
    for t in ${threads//,/ }; do
        echo "bench-board: hearth bench $(basename "$file") -t $t" >&2
        "$hearth" bench -m "$file" -t "$t" -r "$reps" --json > "$out/hearth-$i-$t.json"
        for l in ${llamas[@]+"${llamas[@]}"}; do
            label=${l%%=*}; bin=${l#*=}; [ "$label" = "$l" ] && label=llama.cpp
            echo "bench-board: $label $(basename "$file") -t $t" >&2
            "$bin" -m "$file" -t "$t" -p 512 -n 128 -r "$reps" -o json > "$out/llama-$i-$t-$label.json" 2>"$out/llama.err" \
                || { echo "bench-board: $bin failed on $file: $(tail -1 "$out/llama.err")" >&2; rm -f "$out/llama-$i-$t-$label.json"; }
        done
    done
done

# Time to first token with sources, and serve's RSS, on the largest
# installed chat model (Gemma 3 270M is a base model: no chat template).
# Failures here are reported and leave the throughput table intact.
chat=
[ -f "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ] && chat=smollm2
[ -f "$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" ] && chat=qwen25coder
if [ "$answer" = 1 ] && [ -z "$chat" ]; then
    echo "bench-board: no installed chat model (smollm2, qwen25coder) for the answer part" >&2
    answer=0
fi
if [ "$answer" = 1 ]; then
    set +e
    home="$out/home"; mkdir -p "$home/docs"
    cp benches/answers/files/*.txt "$home/docs/"
    export HEARTH_DATA_DIR="$home/data" HEARTH_KEY_FILE="$home/key" HEARTH_CONFIG="$home/config.toml" HEARTH_MODELS_DIR="$models" RUST_LOG=warn
    tmax=${threads##*,}
    echo "bench-board: indexing sample notes, then asking $chat with $tmax threads" >&2
    "$hearth" index add "$home/docs" >/dev/null
    "$hearth" index >/dev/null 2>&1
    for q in "What is the password of my main Wi-Fi network?" \
             "Who serviced the boiler last time?" \
             "When is the car's next MOT due?"; do
        "$hearth" ask --json -t "$tmax" -m "$chat" "$q" > "$out/ask-$(echo "$q" | md5sum | cut -c1-8).json" 2>"$out/ask.err" \
            || echo "bench-board: hearth ask failed on \"$q\": $(tail -1 "$out/ask.err")" >&2
    done
    echo "bench-board: hearth serve answering one message" >&2
    "$hearth" serve -t "$tmax" -m "$chat" >/dev/null 2>"$out/serve.err" &
    serve=$!
    for _ in $(seq 600); do [ -S "$home/data/hearth.sock" ] && break; sleep 0.1; done
    start=$(date +%s.%N)
    echo "What is the guest Wi-Fi password?" | timeout 600 "$hearth" chat -m "$chat" > "$out/chat.txt" 2>&1 || true
    end=$(date +%s.%N)
    awk '/VmHWM/ {print $2}' "/proc/$serve/status" > "$out/serve-hwm-kb" 2>/dev/null
    echo "$start $end" > "$out/serve-time"
    [ -s "$out/serve-hwm-kb" ] || echo "bench-board: hearth serve did not stay up: $(tail -1 "$out/serve.err")" >&2
    kill "$serve" 2>/dev/null; wait "$serve" 2>/dev/null
    set -e
fi

python3 - "$out" "$reps" ${llamas[@]+"${llamas[@]}"} <<'PY'
import json, pathlib, statistics, sys
out = pathlib.Path(sys.argv[1]); reps = sys.argv[2]
labels = []
for l in sys.argv[3:]:
    label = l.split("=", 1)[0] if "=" in l else "llama.cpp"
    labels.append(label)

rows, host, bws = {}, None, {}
for f in sorted(out.glob("hearth-*.json")):
    for r in json.loads(f.read_text()):
        h = r.get("host") or {}
        host = host or h
        if h.get("mem_read_gbs"):
            bws[r["n_threads"]] = h["mem_read_gbs"]
        key = (r["model_type"], r["model"], r["n_threads"], r["test"])
        rows[key] = {"h": r, "l": {}}
for f in sorted(out.glob("llama-*.json")):
    _, i, t, label = f.stem.split("-", 3)
    hearth = json.loads((out / f"hearth-{i}-{t}.json").read_text())
    for r in json.loads(f.read_text()):
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        for key in rows:
            if key[1] == hearth[0]["model"] and key[2] == r["n_threads"] and key[3] == test:
                rows[key]["l"][label] = r

def kib(k):
    return f"{k // 1024}M" if k >= 1024 and k % 1024 == 0 else f"{k}K"

print("## Hearth benchmark")
print()
if host:
    caches = " ".join(f"L{c['level']}{'d' if c['level'] == 1 else ''} {kib(c['size_kib'])}"
                      for c in host.get("caches", []) if c["kind"] != "Instruction") or "not reported"
    mem = host.get("memory_mib")
    print(f"- CPU: {host['cpu']} ({host['arch']}), {host['cores_online']} cores online")
    print(f"- Hearth {host['hearth_version']}, kernels `{host['kernels']}`")
    print(f"- caches: {caches}; memory: {mem if mem else '?'} MiB")
    if bws:
        print("- memory read bandwidth (this run): " + ", ".join(f"{t} thread{'s' if t > 1 else ''} {g:.1f} GB/s" for t, g in sorted(bws.items())))
for label in labels:
    print(f"- reference: {label} llama-bench")
print(f"- {reps} repetitions per test after one warm-up; t/s mean ± sd")
print()
head = "| model | threads | test | Hearth t/s | min | median |"
rule = "| --- | --: | --: | --: | --: | --: |"
for label in labels:
    head += f" {label} t/s | ratio |"
    rule += " --: | --: |"
head += " % mem bound | Hearth peak RSS MiB |"
rule += " --: | --: |"
print(head); print(rule)
for key in sorted(rows, key=lambda k: (k[1], k[2], k[3])):
    r = rows[key]["h"]
    line = f"| {r['model']} ({r['model_type']}) | {r['n_threads']} | {r['test']} | {r['avg_ts']:.1f} ± {r['stddev_ts']:.1f} | {r.get('min_ts', 0):.1f} | {r.get('median_ts', 0):.1f} |"
    for label in labels:
        l = rows[key]["l"].get(label)
        if l:
            line += f" {l['avg_ts']:.1f} ± {l['stddev_ts']:.1f} | {r['avg_ts'] / l['avg_ts']:.2f} |"
        else:
            line += " - | - |"
    bound = r.get("mem_bound_ts")
    line += f" {100 * r['avg_ts'] / bound:.0f}% |" if bound else " - |"
    line += f" {r['peak_rss_bytes'] / 2**20:.0f} |"
    print(line)

asks = [json.loads(f.read_text()) for f in sorted(out.glob("ask-*.json")) if f.stat().st_size]
if asks:
    t = asks[0]["timings"]
    ttft = statistics.median(a["timings"]["first_token_ms"] for a in asks)
    pre = statistics.median(a["timings"]["prefill_tokens_per_s"] for a in asks)
    toks = statistics.median(a["prompt_tokens"] for a in asks)
    srcs = statistics.median(len(a["sources"]) for a in asks)
    print()
    print(f"Answer with sources ({asks[0]['model']}, {len(asks)} questions over sample notes, median): "
          f"time to first token {ttft:.0f} ms for a {toks:.0f}-token prompt citing {srcs:.0f} file(s) "
          f"(prefill {pre:.0f} t/s, model load {t['load_ms']:.0f} ms not counted)")
hwm = out / "serve-hwm-kb"
if hwm.exists() and hwm.read_text().strip():
    s, e = map(float, (out / "serve-time").read_text().split())
    print(f"`hearth serve` peak RSS after answering one message: {int(hwm.read_text()) / 1024:.0f} MiB (reply in {e - s:.1f} s)")
PY
