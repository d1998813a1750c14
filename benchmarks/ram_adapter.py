"""Package a RAM trained by ``benchmarks/ram_quality.py`` as the shipped adapter, with its model card.

    .venv/bin/python benchmarks/ram_adapter.py --run runs/ram_quality/train/ram-seed0 \
        --results benchmarks/results/ram_quality.json --out src/longlore/ram/artifacts/smollm2-135m-ram-lora

Loads the run's final state onto SmolLM2-135M-Instruct, re-saves it (bf16 tensors, the versioned
layout), answers the three quickstart questions to record a known output, and writes MODEL_CARD.md
with the training data, the commands that remake it and the measured figures of the results JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from longlore.core.io import atomic_write_text
from longlore.core.models import load_causal_lm
from longlore.ram.data import make_dataset
from longlore.ram.model import RAMModel, positive_segments


def figure(results: dict, name: str, metric: str = "substring_em") -> str:
    entry = results.get("summary", {}).get(name, {}).get(metric)
    if not entry:
        return "not measured"
    return f"{entry['mean']:.3f} ± {entry['std']:.3f} ({entry['n_seeds']} seed{'s' if entry['n_seeds'] > 1 else ''})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="A ram_quality.py training folder (holding final/).")
    parser.add_argument("--results", required=True, help="The ram_quality.json the run belongs to.")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    results = json.loads(Path(args.results).read_text())
    decoder, tokenizer = load_causal_lm("smollm2-135m")
    ram = RAMModel.from_pretrained(decoder, tokenizer, Path(args.run) / "final").eval()
    out = Path(args.out)
    ram.save_pretrained(out, dtype=torch.bfloat16)
    size = (out / "ram_model.safetensors").stat().st_size
    ram = RAMModel.from_pretrained(decoder, tokenizer, out).eval()  # what users get: the bf16-stored tensors
    demo = make_dataset(tokenizer, 3, 1800, 2200, seed=7, two_fact_share=0.0)
    known = []
    with torch.no_grad():
        for ex in demo:
            c = ram.compress(ex["context"], ex["question"], keep_ratio=0.25)
            answer = ram.generate_from_embeddings([ram.prompt_embeddings(c, ex["question"])], 12)[0]
            evidence = positive_segments(c.segment_texts, ex).nonzero().flatten().tolist()
            known.append(
                {
                    "question": ex["question"],
                    "gold": ex["answers"][0],
                    "answer": answer,
                    "kept": c.kept,
                    "evidence": evidence,
                }
            )
    atomic_write_text(out / "known_outputs.json", json.dumps(known, indent=1) + "\n", overwrite=True)
    run = results["runs"].get("ram_4x/seed0", {})
    cfg = ram.config
    recall = results.get("evidence_recall", {})
    curve = run.get("selector_curve") or []
    cost = run.get("train_cost", {})
    n_params = sum(v.numel() for v in ram.trainable_state().values())
    lines = [
        "# RAM adapter for SmolLM2-135M-Instruct",
        "",
        "A trained RAM (arXiv 2602.01840) in parameter-efficient form, for the decoder",
        "`smollm2-135m` (SmolLM2-135M-Instruct, 30 layers, hidden 576):",
        f"LoRA r={cfg.encoder_lora_r} on every linear layer of the 8-layer encoder copy, the skim projector",
        f"(576x576), LoRA r={cfg.decoder_lora_r} on the decoder's q/k/v (alpha {cfg.lora_alpha:g}).",
        f"{n_params / 1e6:.2f} M parameters, stored in bfloat16: `ram_model.safetensors` is {size / 1e6:.1f} MB.",
        "The decoder's own weights are not changed or stored.",
        "",
        "```python",
        "from longlore.core.models import load_causal_lm",
        "from longlore.ram import RAMModel",
        "from longlore.ram.artifacts import shipped_adapter",
        'decoder, tokenizer = load_causal_lm("smollm2-135m")',
        'ram = RAMModel.from_pretrained(decoder, tokenizer, shipped_adapter("smollm2-135m"))',
        "ram.answer(long_text, question, keep_ratio=0.25)   # about 4x compression",
        "```",
        "",
        "## Training",
        "",
        "Synthetic long-document QA from `longlore ram make-data` (facts about invented brands planted in",
        "King James Bible text, near-duplicate distractors, two-fact questions); nothing else.",
        f"- Selector stage (InfoNCE only, encoder only): {results['data']['selector']};",
        "  "
        + f"{run.get('train_args', {}).get('selector_steps')} steps, lr {run.get('train_args', {}).get('selector_lr')},"
        + " t = 0.05, bf16 autocast.",
        f"- Joint stage (answer NLL + InfoNCE, the paper's objective): {results['data']['joint']};",
        f"  {run.get('train_args', {}).get('steps')} steps of one example, lr {cfg.lr}, linear decay, keep ratio",
        f"  drawn from {tuple(cfg.keep_ratio_range)} per step, bf16 autocast.",
        f"- Seed 0. CPU cost: {json.dumps(cost)} (CPU seconds on one thread of a shared 2-core machine).",
        "",
        "Remake it:",
        "",
        "```console",
        f"$ {results.get('command', 'python benchmarks/ram_quality.py ...').replace('S (one process per seed)', '0')}",
        f"$ python benchmarks/ram_adapter.py --run <work>/train/ram-seed0 --results {args.results} --out {args.out}",
        "```",
        "",
        "## Measured (held-out questions, `benchmarks/results/ram_quality.json`)",
        "",
        f"Evaluation: {results['data']['eval']}.",
        "",
        "| variant | substring EM |",
        "|---|---|",
        f"| this adapter, keep 1/4 (~4x) | {figure(results, 'ram_4x')} |",
        f"| this adapter, keep 1/8 (~8x) | {figure(results, 'ram_8x')} |",
        f"| full context, fine-tuned on the same joint-stage examples | {figure(results, 'full_ft')} |",
        f"| full context, zero-shot | {figure(results, 'zero_shot')} |",
        f"| MiniLM top-k, same length as keep 1/4 | {figure(results, 'minilm_topk')} |",
        f"| fully trained RAM (paper form), keep 1/4 | {figure(results, 'ram_full_4x')} |",
        "",
        "Evidence recall (share of evidence segments read verbatim):",
        "",
        "| keep ratio | this adapter | MiniLM top-k | untrained encoder |",
        "|---|---|---|---|",
    ]
    for ratio in ("0.25", "0.125"):
        row = recall.get(ratio, {})
        lines.append(
            f"| {ratio} | {row.get('ram', float('nan')):.3f} | {row.get('minilm_topk', float('nan')):.3f} | "
            f"{row.get('untrained_encoder', float('nan')):.3f} |"
        )
    if curve:
        lines += ["", "Selector learning curve (recall on separate held-out documents):", ""]
        lines += [f"- step {c['step']}: {c['recall_4x']:.3f} at 1/4, {c['recall_8x']:.3f} at 1/8" for c in curve]
    lines += [
        "",
        "## Known outputs",
        "",
        "`known_outputs.json` holds the answers to the three `make demo` questions (the test",
        "`tests/ram/test_ram_adapter.py` checks the first):",
        "",
    ]
    lines += [f"- {k['question']} -> {k['answer']!r} (gold {k['gold']!r})" for k in known]
    hits = statistics.mean(k["gold"].lower() in k["answer"].lower() for k in known)
    lines += [
        "",
        f"{hits:.0%} of them right. Limits: trained on one synthetic task at CPU scale; expect it",
        "to transfer to other documents only as far as the selector's notion of relevance does.",
    ]
    atomic_write_text(out / "MODEL_CARD.md", "\n".join(lines) + "\n", overwrite=True)
    print(json.dumps({"size_bytes": size, "known": known}, indent=1))


if __name__ == "__main__":
    main()
