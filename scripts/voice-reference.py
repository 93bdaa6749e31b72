#!/usr/bin/env python3
"""faster-whisper's transcripts of the test voice notes, the reference
Hearth's `hearth transcribe` is checked against (tests/voice.rs) and timed
against (benches/transcribe.rs).

  scripts/voice-reference.py MODEL_DIR [--compute float32] [--threads 2] FILES...

Prints one JSON line per file: file, text, tokens, language, duration_s,
seconds. Settings: beam_size=1, without_timestamps=True, temperature=0
(greedy, no fallback), everything else faster-whisper 1.2.1's defaults
(condition_on_previous_text, no_speech_threshold 0.6, the suppress lists).
Needs faster-whisper==1.2.1 and ctranslate2==4.8.5 (never shipped).
"""
import argparse, json, os, time

from faster_whisper import WhisperModel

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--compute", default="float32")
p.add_argument("--threads", type=int, default=2)
p.add_argument("files", nargs="+")
a = p.parse_args()
m = WhisperModel(a.model, device="cpu", compute_type=a.compute, cpu_threads=a.threads)
for f in a.files:
    t = time.time()
    segs, info = m.transcribe(f, beam_size=1, without_timestamps=True, temperature=0.0)
    segs = list(segs)
    print(json.dumps({
        "file": os.path.basename(f),
        "text": "".join(s.text for s in segs).strip(),
        "tokens": [t for s in segs for t in s.tokens],
        "language": info.language,
        "duration_s": info.duration,
        "seconds": time.time() - t,
    }), flush=True)
