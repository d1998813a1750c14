"""Package a trained RAM as the adapter shipped with longlore, with its model card.

    .venv/bin/python benchmarks/ram_adapter.py \
        --checkpoint <work>/train/ram-seed0/checkpoint/selector_state.pt \
        --recall benchmarks/results/ram_selector_recall.json \
        --out src/longlore/ram/artifacts/smollm2-135m-ram-lora

``--checkpoint`` is a training checkpoint of ``benchmarks/ram_quality.py`` (``--lora-r`` must be
the rank it trained with). Only what was trained is shipped: after the selector stage alone that
is the encoder's LoRA; the decoder's LoRA is still zero there (checked exactly) and is dropped, so
the decoder stays the untouched SmolLM2 (``decoder_trainable=()``); the projector is stored at its
initialisation (a scaled identity) so that the folder loads on its own. ``--run`` packages a
finished run's ``final/`` instead (every part trained). The script re-saves the tensors in bf16,
reloads them as a user would, answers the three ``make demo`` questions (read as text and as RAM's
hybrid) to record known outputs, and writes MODEL_CARD.md from the measured results JSON.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from longlore.core.errors import LongloreError
from longlore.core.io import atomic_write_text
from longlore.core.models import load_causal_lm
from longlore.ram.artifacts import TRAINING_FILE
from longlore.ram.config import RAMConfig
from longlore.ram.data import make_dataset
from longlore.ram.model import RAMModel, positive_segments
from longlore.ram.trainer import load_training_checkpoint

DEMO_DATA = "make_dataset(tokenizer, 3, 1800, 2200, seed=7, two_fact_share=0.0)"


def demo_outputs(ram: RAMModel, tokenizer) -> list[dict]:
    """The three ``make demo`` questions at keep 1/4: kept segments, evidence, both answers."""
    known = []
    with torch.no_grad():
        for ex in make_dataset(tokenizer, 3, 1800, 2200, seed=7, two_fact_share=0.0):
            encoded = ram.encode_context(ex["context"])
            row = {"question": ex["question"], "gold": ex["answers"][0]}
            for mode, skim in (("text", False), ("hybrid", True)):
                c = ram.compress(encoded, ex["question"], keep_ratio=0.25, skim=skim)
                row[f"answer_{mode}"] = ram.generate_from_embeddings([ram.prompt_embeddings(c, ex["question"])], 12)[0]
                row[f"compression_{mode}"] = round(c.compression, 3)
            row["kept"] = c.kept
            row["evidence"] = positive_segments(c.segment_texts, ex).nonzero().flatten().tolist()
            known.append(row)
    return known


def package(args: argparse.Namespace) -> tuple[RAMModel, dict]:
    decoder, tokenizer = load_causal_lm("smollm2-135m")
    if args.run:
        return RAMModel.from_pretrained(decoder, tokenizer, Path(args.run) / "final").eval(), {"stage": "joint"}
    r = args.lora_r
    trained_cfg = RAMConfig(encoder_layers=args.encoder_layers, encoder_lora_r=r, decoder_lora_r=r, lora_alpha=2.0 * r)
    trained = RAMModel(decoder, tokenizer, trained_cfg)
    info = load_training_checkpoint(trained, args.checkpoint)
    if info["stage"] != "selector":
        return trained.eval(), info
    untouched = [
        k for k, v in trained.trainable_state().items() if k.startswith("decoder.") and "lora_B" in k and v.any()
    ]
    if untouched:
        raise LongloreError(f"{args.checkpoint}: decoder adapters moved ({untouched[:2]}); package it with --run")
    ram = RAMModel(decoder, tokenizer, replace(trained_cfg, decoder_lora_r=0, decoder_trainable=()))
    ram.load_trainable_state({k: v for k, v in trained.trainable_state().items() if not k.startswith("decoder.")})
    return ram.eval(), info


def fmt(entry: dict | None) -> str:
    if not entry:
        return "not measured"
    return f"{entry['mean']:.3f} [{entry['ci95'][0]:.3f}, {entry['ci95'][1]:.3f}]"


def model_card(ram: RAMModel, info: dict, size: int, known: list[dict], recall: dict, args) -> str:
    cfg = ram.config
    n_params = sum(v.numel() for v in ram.trainable_state().values())
    selector_only = info.get("stage") == "selector"
    lines = [
        "# RAM adapter for SmolLM2-135M-Instruct",
        "",
        "A RAM (arXiv 2602.01840) in parameter-efficient form for the decoder `smollm2-135m`",
        f"(SmolLM2-135M-Instruct, 30 layers, hidden 576): LoRA r={cfg.encoder_lora_r} (alpha {cfg.lora_alpha:g}) on",
        f"every linear layer of the {cfg.encoder_layers}-layer encoder copy, and the 576x576 skim projector.",
        f"{n_params / 1e6:.2f} M parameters in bfloat16: `ram_model.safetensors` is {size / 1e6:.2f} MB.",
        "The decoder's own weights are neither changed nor stored.",
        "",
    ]
    if selector_only:
        lines += [
            "**What is trained, and what is not.** Only the selector: the encoder's LoRA, by RAM's selector",
            f"stage (InfoNCE over segment relevance, encoder only) for {info['step']} steps. The paper's joint",
            "stage (answer NLL + InfoNCE, training the projector and the decoder's q/k/v) did not run within",
            "this project's CPU budget, so the projector is at its initialisation (a scaled identity of the",
            "encoder states) and the decoder is the untouched SmolLM2 (`decoder_trainable=()`). Use it as a",
            "trained *selector*: read the kept segments as text (`compress(..., skim=False)`,",
            "`longlore ram compress --text-only`); RAM's hybrid input (skim vectors) is not trained here.",
            "",
        ]
    lines += [
        "```python",
        "from longlore.core.models import load_causal_lm",
        "from longlore.ram import RAMModel",
        "from longlore.ram.artifacts import shipped_adapter",
        "",
        'decoder, tokenizer = load_causal_lm("smollm2-135m")',
        'ram = RAMModel.from_pretrained(decoder, tokenizer, shipped_adapter("smollm2-135m"))',
        "c = ram.compress(long_text, question, keep_ratio=0.25, skim=False)  # the evidence, as text",
        "```",
        "",
        "## Training",
        "",
        "Synthetic long-document QA from `longlore.ram.data.make_dataset` (facts about invented brands planted",
        "in King James Bible text, near-duplicate distractors, two-fact questions); nothing else. Selector stage:",
        "600 documents of 600-1200 tokens, 3 questions each (`make_dataset(n=1800, tokens=600,1200, seed=1001,",
        "questions_per_doc=3)`), one document per step, lr 1e-3 peak with linear decay over a 300-step",
        f"schedule stopped at step {info.get('step')}, temperature 0.05, bf16 autocast, seed 0.",
        f"CPU cost: {info.get('cpu_s')} CPU seconds (one thread of a shared 2-core machine).",
        "",
        "Remake it (the same recipe through the CLI; the shipped file came from an earlier version of the",
        "trainer whose random streams differ, so a remake is equivalent, not bit-identical):",
        "",
        "```console",
        "$ longlore ram make-data --out sel.jsonl --n 1800 --min-tokens 600 --max-tokens 1200 --seed 1001 \\",
        "    --questions-per-doc 3",
        "$ longlore ram make-data --out joint.jsonl --n 100 --min-tokens 500 --max-tokens 1000 --seed 1000",
        "$ longlore ram train --data joint.jsonl --selector-data sel.jsonl --out runs/ram-adapter \\",
        "    --selector-steps 300 --selector-lr 1e-3 --stop-after 150 --warmup-steps 10 --checkpoint-every 25 \\",
        "    --encoder-lora-r 16 --decoder-lora-r 16 --lora-alpha 32 --bf16",
        "$ python benchmarks/ram_adapter.py --checkpoint runs/ram-adapter/checkpoint/selector/checkpoint.pt \\",
        f"    --recall {args.recall} --out {args.out}",
        "```",
        "",
    ]
    if recall:
        er = recall["evidence_recall"]
        lines += [
            f"## Measured (`{args.recall}`)",
            "",
            f"Held-out data: {recall['data']}. Evidence recall = share of a question's evidence segments",
            "among the segments kept; 95% CIs by bootstrap over documents.",
            "",
            "| keep ratio | this adapter | MiniLM top-k | untrained encoder |",
            "|---|---|---|---|",
        ]
        for s, ratio in (("4x", "1/4"), ("8x", "1/8")):
            lines.append(
                f"| {ratio} | {fmt(er[s].get(args.recall_name))} | {fmt(er[s].get('minilm_topk'))} | "
                f"{fmt(er[s].get('untrained_encoder'))} |"
            )
        qa = recall.get("qa_keep_0.25")
        if qa:
            lines += [
                "",
                f"Answers at keep 1/4 ({qa['n_questions']} questions, read by the untouched decoder), substring EM:",
                "",
                "| input | substring EM |",
                "|---|---|",
                f"| this adapter's selection, as text | {fmt(qa['substring_em']['ram_text'])} |",
                f"| this adapter's hybrid (kept text + untrained skim vectors) | {fmt(qa['substring_em']['ram_hybrid'])} |",
                f"| MiniLM's selection, as text (same length) | {fmt(qa['substring_em']['minilm_text'])} |",
            ]
    lines += [
        "",
        "## Known outputs",
        "",
        f"`known_outputs.json`: the three `make demo` questions ({DEMO_DATA}) at keep 1/4,",
        "answered from the kept text and from the hybrid (`tests/ram/test_ram_adapter.py` checks the first):",
        "",
    ]
    lines += [
        f"- {k['question']} (gold {k['gold']!r}): text {k['answer_text']!r}, hybrid {k['answer_hybrid']!r}; "
        f"evidence segments {k['evidence']} kept: {set(k['evidence']) <= set(k['kept'])}"
        for k in known
    ]
    kept = sum(set(k["evidence"]) <= set(k["kept"]) for k in known)
    right = {m: sum(k["gold"].lower() in k[f"answer_{m}"].lower() for k in known) for m in ("text", "hybrid")}
    lines += [
        "",
        f"Evidence kept for {kept}/{len(known)} questions; answers containing the gold answer: {right['text']}/"
        f"{len(known)} from the kept text, {right['hybrid']}/{len(known)} from the hybrid. The reader is the",
        "untouched 135M decoder, which here answers with a distractor's value or a number not in the text; the fine-tuned",
        "reader of the quality benchmark is not part of this adapter.",
    ]
    lines += [
        "",
        "Limits: trained on one synthetic task at CPU scale; expect it to transfer to other documents only",
        "as far as the selector's notion of relevance does.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="A ram_quality.py training checkpoint file.")
    source.add_argument("--run", help="A finished ram_quality.py training folder (holding final/).")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--encoder-layers", type=int, default=8)
    parser.add_argument("--recall", default="", help="ram_selector_recall.json measured on this adapter's run.")
    parser.add_argument("--recall-name", default="ram_seed0", help="This adapter's method name in --recall.")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ram, info = package(args)
    out = Path(args.out)
    ram.save_pretrained(out, dtype=torch.bfloat16)
    size = (out / "ram_model.safetensors").stat().st_size
    decoder, tokenizer = load_causal_lm("smollm2-135m")
    ram = RAMModel.from_pretrained(decoder, tokenizer, out).eval()  # what users get: the bf16-stored tensors
    known = demo_outputs(ram, tokenizer)
    trained = ["encoder (LoRA)"] + ([] if info.get("stage") == "selector" else ["projector", "decoder q/k/v (LoRA)"])
    untrained = ["projector (at its initialisation)"] if info.get("stage") == "selector" else []
    training = {"trained": trained, "untrained": untrained, **info}
    atomic_write_text(out / TRAINING_FILE, json.dumps(training, indent=1) + "\n", overwrite=True)
    atomic_write_text(out / "known_outputs.json", json.dumps(known, indent=1) + "\n", overwrite=True)
    recall = json.loads(Path(args.recall).read_text()) if args.recall else {}
    atomic_write_text(out / "MODEL_CARD.md", model_card(ram, info, size, known, recall, args), overwrite=True)
    print(json.dumps({"size_bytes": size, "info": info, "known": known}, indent=1))


if __name__ == "__main__":
    main()
