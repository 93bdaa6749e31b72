#!/usr/bin/env python3
"""sentence-transformers' throughput on the passages `cargo bench --bench
embed` uses (same generator, same 256 passages of 130 words), for the
ratio in the embedding benchmark. Needs torch + sentence-transformers
(not a Hearth dependency: install them in a virtualenv).

    python3 scripts/bench-embed-reference.py [--threads 2] [--model DIR]
"""
import argparse
import os
import time

VOCAB = """the router password garden invoice meeting Thursday kitchen battery
holiday receipt doctor train station recipe flour backup server printer school
weather budget insurance car appointment birthday present project deadline
network photo album and of to in is was for with on at by reminder electricity
water contract landlord warranty phone""".split()


def passages(n, words):
    """The same texts as benches/common/mod.rs `passages` (64-bit LCG)."""
    x = 12345
    out = []
    for _ in range(n):
        ws = []
        for i in range(words):
            x = (x * 6364136223846793005 + 1442695040888963407) % (1 << 64)
            w = VOCAB[(x >> 33) % len(VOCAB)]
            ws.append(w + "." if i % 12 == 11 else w)
        out.append(" ".join(ws))
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=os.path.join(here, "..", "models", "all-MiniLM-L6-v2"))
    a = ap.parse_args()
    import torch
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(a.threads)
    model = SentenceTransformer(a.model, device="cpu")
    model.max_seq_length = 256
    texts = passages(256, 130)
    model.encode(texts[:32])  # warm-up
    rates = []
    for _ in range(3):
        t = time.perf_counter()
        model.encode(texts, batch_size=32, normalize_embeddings=True)
        rates.append(len(texts) / (time.perf_counter() - t))
    rates.sort()
    print(
        f"sentence-transformers {sentence_transformers.__version__} (torch {torch.__version__}): {len(texts)} passages, {a.threads} threads: "
        f"{rates[1]:.1f} passages/s (median of 3; min {rates[0]:.1f}, max {rates[2]:.1f})"
    )


if __name__ == "__main__":
    main()
