"""Does a probe's memory say anything about its own text? Own memory vs another text's memory.

    .venv/bin/python benchmarks/probe_memory.py --probe-dir runs/probe/study/matched_r4/final \
        --n 40 --out benchmarks/results/probe_memory.json

For the first ``n`` held-out samples of each distribution (the same samples, in the same order, as
``longlore probe study`` with the same ``--seed`` and ``--length``), the teacher-forced reconstruction
NLL of each text (nats/token, text + eos) is computed twice through the frozen decoder: from the
text's own memory slots, and from the memory of the next sample of the same distribution (a
rotation, so every memory is used once and never for its own text). The paired gap
``other - own`` is the information the memory carries about its own text beyond what any memory of
that kind of text gives; 0 means the decoder ignores the memory's content. Reported per
distribution with 95% bootstrap CIs, beside the CPU seconds spent. A useful reading when greedy
BLEU is near its floor: a positive gap shows learning the BLEU cannot yet see.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

from longlore.core.io import write_json
from longlore.core.models import load_causal_lm
from longlore.core.progress import track
from longlore.probe.data import BUILTIN_DISTRIBUTIONS, Distributions
from longlore.probe.evaluate import paired_difference
from longlore.probe.model import ProbeAutoencoder
from longlore.probe.trainer import autocast


def memory_gap(
    probe: ProbeAutoencoder, samples: list[list[int]], batch_size: int, amp_bf16: bool, label: str
) -> dict[str, list[float]]:
    """Per-sample reconstruction NLL from the own memory and from the next sample's memory."""
    others = samples[1:] + samples[:1]
    own, other = [], []
    for start in track(range(0, len(samples), batch_size), label):
        batch, donors = samples[start : start + batch_size], others[start : start + batch_size]
        with torch.no_grad(), autocast(amp_bf16, probe.device):
            own += probe(batch)["nll_per_sequence"].tolist()
            other += probe(batch, memory_from=donors)["nll_per_sequence"].tolist()
    return {"own": own, "other": other}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe-dir", type=Path, required=True, help="A saved probe (or its run folder).")
    parser.add_argument("--decoder", default="smollm2-135m", help="The probe's frozen decoder (model spec).")
    parser.add_argument("--distributions", default=",".join(BUILTIN_DISTRIBUTIONS))
    parser.add_argument("--n", type=int, default=40, help="Held-out samples per distribution (>= 2).")
    parser.add_argument("--length", type=int, default=128, help="Tokens per sample.")
    parser.add_argument("--seed", type=int, default=0, help="Held-out sample order (the study's --seed).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--amp-bf16", action="store_true", help="bf16 autocast.")
    parser.add_argument("--out", type=Path, default=Path("runs/probe/probe_memory.json"))
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be at least 2 (each text needs another text's memory)")
    torch.set_num_threads(1)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    decoder, tokenizer = load_causal_lm(args.decoder)
    probe = ProbeAutoencoder.from_pretrained(decoder, tokenizer, args.probe_dir)
    data = Distributions(tokenizer)
    names = [d.strip() for d in args.distributions.split(",") if d.strip()]
    per: dict[str, dict] = {}
    pooled_own, pooled_other = [], []
    for name in names:
        samples = [s.ids for s in data.held_out(name, args.n, args.length, seed=args.seed)]
        nll = memory_gap(probe, samples, args.batch_size, args.amp_bf16, f"memory gap: {name}")
        pooled_own += nll["own"]
        pooled_other += nll["other"]
        per[name] = {
            "own_nll": round(sum(nll["own"]) / len(samples), 4),
            "other_nll": round(sum(nll["other"]) / len(samples), 4),
            "gap_other_minus_own": paired_difference(nll["other"], nll["own"], args.seed),
            "own_nll_per_sample": [round(x, 4) for x in nll["own"]],
            "other_nll_per_sample": [round(x, 4) for x in nll["other"]],
        }
    result = {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "machine": f"{platform.machine()}, torch {torch.__version__}, 1 thread",
        "probe": str(args.probe_dir),
        "decoder": args.decoder,
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "per_distribution": per,
        "all": {
            "own_nll": round(sum(pooled_own) / len(pooled_own), 4),
            "other_nll": round(sum(pooled_other) / len(pooled_other), 4),
            "gap_other_minus_own": paired_difference(pooled_other, pooled_own, args.seed),
        },
        "cpu_seconds": round(time.process_time() - cpu0, 1),
        "wall_seconds": round(time.perf_counter() - wall0, 1),
    }
    write_json(args.out, result, overwrite=True)
    gaps = {k: v["gap_other_minus_own"]["mean"] for k, v in per.items()}
    print(f"gap (other - own memory, nats/token): {gaps}; {result['cpu_seconds']} CPU s; wrote {args.out}")


if __name__ == "__main__":
    main()
