"""Diagnostic for the RAM quality benchmark: how often close reading keeps the evidence.

    .venv/bin/python benchmarks/ram_selection.py --ram-dir runs/ram_quality/ram-seed0/checkpoint

For each held-out question of runs/ram_quality/eval.jsonl: the share of evidence segments
(those holding a ``positive_spans`` sentence) among the segments kept at keep-ratio 0.25 and
0.125, for RAM's trained encoder, the untrained encoder (a fresh copy of the decoder's first k
layers) and MiniLM top-k. Writes benchmarks/results/ram_selection.json.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from longlore.core.io import read_jsonl, write_json
from longlore.core.models import load_causal_lm, load_embedder
from longlore.core.progress import track
from longlore.ram.model import RAMModel, positive_segments


def evidence_recall(ram: RAMModel, data: list[dict], rate: float, embedder=None) -> float:
    """Mean over questions of (evidence segments kept) / (evidence segments)."""
    shares = []
    for ex in track(data, f"selection @ {rate}"):
        _segments, texts = ram.segment(ex["context"])
        positives = positive_segments(texts, ex)
        if not positives.any():
            continue
        if embedder is None:
            c = ram.compress(ex["context"], ex["question"], rate=rate)
        else:
            q = embedder.embed([ex["question"]], is_query=True)[0]
            c = ram.compress(
                ex["context"],
                ex["question"],
                rate=rate,
                selector="scores",
                scores=torch.tensor(embedder.embed(texts) @ q),
                skim=False,
            )
        kept = torch.zeros(len(texts), dtype=torch.bool)
        kept[c.kept] = True
        shares.append(float((kept & positives).sum() / positives.sum()))
    return sum(shares) / len(shares)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ram-dir", required=True, help="A trained RAM folder (save_pretrained output).")
    parser.add_argument("--data", default="runs/ram_quality/eval.jsonl")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", default="benchmarks/results/ram_selection.json")
    args = parser.parse_args()
    data = list(read_jsonl(args.data))
    decoder, tokenizer = load_causal_lm(args.model)
    trained = RAMModel.from_pretrained(decoder, tokenizer, args.ram_dir).eval()
    # a separate pretrained decoder: from_pretrained wrote the trained q/k/v into the first one
    pretrained_decoder, _ = load_causal_lm(args.model)
    untrained = RAMModel(pretrained_decoder, tokenizer, trained.config).eval()
    embedder = load_embedder("minilm")
    result = {
        "command": "python benchmarks/ram_selection.py --ram-dir " + args.ram_dir,
        "data": args.data,
        "n_questions": len(data),
        "machine": platform.platform(),
        "evidence_recall": {},
    }
    with torch.no_grad():
        for rate in (0.25, 0.125):
            result["evidence_recall"][str(rate)] = {
                "ram_trained": evidence_recall(trained, data, rate),
                "ram_untrained": evidence_recall(untrained, data, rate),
                "minilm_topk": evidence_recall(trained, data, rate, embedder),
            }
    write_json(Path(args.out), result, overwrite=True)
    print(result["evidence_recall"])


if __name__ == "__main__":
    main()
