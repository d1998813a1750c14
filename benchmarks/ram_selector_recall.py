"""RAM's trained selector against MiniLM top-k: evidence recall on held-out long documents, paired.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ram_selector_recall.py \
        --ram seed0=runs/ram_quality/train/ram-seed0/checkpoint/selector_state.pt \
        --ram seed1=runs/ram_quality/train/ram-seed1/checkpoint/selector_state.pt \
        [--out runs/ram_selector_recall/ram_selector_recall.json]

Evidence recall of a selector at keep ratio r: the share of a question's evidence segments (50
tokens each) among the ``keep_count(N, r)`` segments it ranks highest, i.e. what RAM would read
verbatim. Every method sees the same documents, segments and questions, so the comparison is
paired per question; confidence intervals come from a bootstrap over documents (the questions of
one document are not independent). Methods: each trained RAM (a ``save_pretrained`` folder or a
selector-stage checkpoint, see ``benchmarks/ram_adapter.py``), the untrained encoder (the first
k decoder layers, as RAM starts), and MiniLM (all-MiniLM-L6-v2) cosine top-k. CPU seconds per
method are recorded. Only the encoder runs: this is the cheap half of RAM, measured on its own.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from longlore.core.io import save_figure, write_json, write_jsonl
from longlore.core.metrics import substring_match
from longlore.core.models import load_causal_lm, load_embedder
from longlore.core.progress import console, track
from longlore.ram.config import RAMConfig
from longlore.ram.data import make_dataset
from longlore.ram.model import RAMModel, keep_count, positive_segments
from longlore.ram.trainer import group_by_document, load_training_checkpoint

KEEP = {"4x": 0.25, "8x": 0.125}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ram", action="append", default=[], help="NAME=PATH of a trained RAM (repeat per seed).")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--encoder-layers", type=int, default=8)
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank the checkpoints were trained with (0: full).")
    p.add_argument("--eval-n", type=int, default=150, help="Held-out questions.")
    p.add_argument("--eval-tokens", default="2000,4000")
    p.add_argument("--questions-per-doc", type=int, default=5)
    p.add_argument("--data-seed", type=int, default=2000, help="ram_quality.py's evaluation seed.")
    p.add_argument(
        "--qa-docs",
        type=int,
        default=0,
        help="Also answer the questions of the first D documents at keep 1/4 with the untouched decoder: the first "
        "--ram's selection read as text, the same with its skim vectors (RAM's hybrid), MiniLM's selection as text.",
    )
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--bf16", type=int, default=1)
    p.add_argument("--out", default="runs/ram_selector_recall/ram_selector_recall.json")
    return p.parse_args()


def load_ram(decoder, tokenizer, path: Path, config: RAMConfig) -> tuple[RAMModel, dict]:
    """A saved RAM folder, or ``config``'s RAM with a training checkpoint's tensors loaded."""
    if path.is_dir():
        return RAMModel.from_pretrained(decoder, tokenizer, path), {"source": str(path)}
    ram = RAMModel(decoder, tokenizer, config)
    return ram, {"source": str(path), **load_training_checkpoint(ram, path)}


def recall_at(scores: torch.Tensor, positives: torch.Tensor, keep_ratio: float) -> float:
    """Share of the evidence segments among the top keep_count(N, keep_ratio) by score."""
    kept = torch.zeros(len(positives), dtype=torch.bool)
    kept[scores.float().topk(keep_count(len(positives), keep_ratio)).indices] = True
    return float((kept & positives).sum() / positives.sum())


def ram_scores(ram: RAMModel, docs: list[list[dict]], bf16: bool) -> tuple[list[list[torch.Tensor]], float]:
    """Relevance scores per document and question; CPU seconds."""
    cpu, out = time.process_time(), []
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for doc in track(docs, "RAM encoder"):
            encoded = ram.encode_context(doc[0]["context"])
            out.append([ram.relevance(ex["question"], encoded)[0].float() for ex in doc])
    return out, time.process_time() - cpu


def minilm_scores(texts: list[list[str]], docs: list[list[dict]]) -> tuple[list[list[torch.Tensor]], float]:
    cpu, out = time.process_time(), []
    embedder = load_embedder("minilm")
    for doc, segs in zip(track(docs, "MiniLM"), texts):
        e = torch.tensor(embedder.embed(segs))
        out.append([e @ torch.tensor(embedder.embed([ex["question"]], is_query=True)[0]) for ex in doc])
    return out, time.process_time() - cpu


def answer_questions(
    ram: RAMModel, docs: list[list[dict]], minilm: list[list[torch.Tensor]], bf16: bool
) -> tuple[list[dict], dict[str, float]]:
    """Per question at keep 1/4: the answers read from each method's compressed input."""
    rows, cpu = [], dict.fromkeys(QA_METHODS, 0.0)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for d, doc in enumerate(track(docs, "QA at keep 1/4")):
            encoded = ram.encode_context(doc[0]["context"])
            for q, ex in enumerate(doc):
                row = {"doc": d, "question": ex["question"], "answers": ex["answers"]}
                for method, kwargs in QA_METHODS.items():
                    start = time.process_time()
                    extra = {"scores": minilm[d][q]} if kwargs.get("selector") == "scores" else {}
                    c = ram.compress(encoded, ex["question"], keep_ratio=0.25, **kwargs, **extra)
                    answer = ram.generate_from_embeddings([ram.prompt_embeddings(c, ex["question"])], 16)[0]
                    cpu[method] += time.process_time() - start
                    row[method] = {"prediction": answer, "substring_match": substring_match(answer, ex["answers"])}
                    row[method]["kept"] = c.kept
                rows.append(row)
    return rows, cpu


# the QA methods: (compress keyword arguments) -- all read by the untouched decoder at keep 1/4
QA_METHODS = {
    "ram_text": {"skim": False},
    "ram_hybrid": {},
    "minilm_text": {"selector": "scores", "skim": False},
}


def flat(rows: list[list[float]]) -> list[float]:
    return [v for r in rows for v in r]


def bootstrap_ci(per_doc: list[list[float]], n: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean over questions, resampling whole documents."""
    rng = random.Random(seed)
    means = []
    for _ in range(n):
        sample = [v for _ in per_doc for v in per_doc[rng.randrange(len(per_doc))]]
        means.append(sum(sample) / len(sample))
    means.sort()
    return means[int(0.025 * n)], means[int(0.975 * n) - 1]


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    decoder, tokenizer = load_causal_lm(args.model)
    lo, hi = map(int, args.eval_tokens.split(","))
    data = make_dataset(tokenizer, args.eval_n, lo, hi, seed=args.data_seed, questions_per_doc=args.questions_per_doc)
    docs = group_by_document(data)
    config = RAMConfig(
        encoder_layers=args.encoder_layers,
        encoder_lora_r=args.lora_r,
        decoder_lora_r=args.lora_r,
        lora_alpha=2.0 * max(1, args.lora_r),
    )
    untrained = RAMModel(decoder, tokenizer, RAMConfig(encoder_layers=args.encoder_layers)).eval()
    texts = [untrained.segment(doc[0]["context"])[1] for doc in docs]
    positives = [[positive_segments(t, ex) for ex in doc] for t, doc in zip(texts, docs)]
    methods: dict[str, tuple[list[list[torch.Tensor]], float]] = {}
    methods["untrained_encoder"] = ram_scores(untrained, docs, bool(args.bf16))
    del untrained
    trained = {}
    for spec in args.ram:
        name, path = spec.split("=", 1)
        ram, trained[f"ram_{name}"] = load_ram(decoder, tokenizer, Path(path), config)
        methods[f"ram_{name}"] = ram_scores(ram.eval(), docs, bool(args.bf16))
        del ram
    methods["minilm_topk"] = minilm_scores(texts, docs)
    qa = None
    if args.qa_docs and args.ram:
        name, path = args.ram[0].split("=", 1)
        ram, _ = load_ram(decoder, tokenizer, Path(path), config)
        qa_rows, qa_cpu = answer_questions(
            ram.eval(), docs[: args.qa_docs], methods["minilm_topk"][0][: args.qa_docs], bool(args.bf16)
        )
        del ram
        per_doc = {
            m: [[r[m]["substring_match"] for r in qa_rows if r["doc"] == d] for d in range(args.qa_docs)]
            for m in QA_METHODS
        }
        qa = {
            "reader": "the untouched decoder (no decoder adapter, no trained projector)",
            "selector": f"ram_{name}",
            "keep_ratio": 0.25,
            "n_questions": len(qa_rows),
            "substring_em": {
                m: {
                    "mean": round(statistics.mean(flat(v)), 4),
                    "ci95": [round(x, 4) for x in bootstrap_ci(v, args.bootstrap)],
                }
                for m, v in per_doc.items()
            },
            "paired": {
                f"{a} - {b}": {
                    "mean": round(statistics.mean(flat(diff)), 4),
                    "ci95": [round(x, 4) for x in bootstrap_ci(diff, args.bootstrap)],
                }
                for a, b in (("ram_text", "minilm_text"), ("ram_hybrid", "ram_text"), ("ram_hybrid", "minilm_text"))
                for diff in [[[x - y for x, y in zip(pa, pb)] for pa, pb in zip(per_doc[a], per_doc[b])]]
            },
            "eval_cpu_s": {m: round(c, 1) for m, c in qa_cpu.items()},
        }

    per_question: dict[str, dict[str, list[list[float]]]] = {}  # method -> setting -> per doc -> per question
    for method, (scores, _) in methods.items():
        per_question[method] = {
            s: [[recall_at(sc, pos, r) for sc, pos in zip(ds, dp)] for ds, dp in zip(scores, positives)]
            for s, r in KEEP.items()
        }
    rams = [m for m in methods if m.startswith("ram_")]
    if rams:  # the mean over seeds, question by question
        per_question["ram_mean_of_seeds"] = {
            s: [
                [statistics.mean(per_question[m][s][d][q] for m in rams) for q in range(len(docs[d]))]
                for d in range(len(docs))
            ]
            for s in KEEP
        }

    recall = {
        s: {
            m: {
                "mean": round(statistics.mean(flat(per_question[m][s])), 4),
                "ci95": [round(x, 4) for x in bootstrap_ci(per_question[m][s], args.bootstrap)],
            }
            for m in per_question
        }
        for s in KEEP
    }
    paired = {}
    for m in [*rams, "ram_mean_of_seeds", "untrained_encoder"] if rams else ["untrained_encoder"]:
        for s in KEEP:
            diff = [[a - b for a, b in zip(x, y)] for x, y in zip(per_question[m][s], per_question["minilm_topk"][s])]
            values = flat(diff)
            paired[f"{m} - minilm_topk @ {s}"] = {
                "mean": round(statistics.mean(values), 4),
                "ci95": [round(x, 4) for x in bootstrap_ci(diff, args.bootstrap)],
                "wins_ties_losses": [
                    sum(v > 0 for v in values),
                    sum(v == 0 for v in values),
                    sum(v < 0 for v in values),
                ],
            }
    rows = [
        {
            "doc": d,
            "question": ex["question"],
            "n_segments": len(texts[d]),
            "evidence": positives[d][q].nonzero().flatten().tolist(),
            **{f"{m}@{s}": per_question[m][s][d][q] for m in per_question for s in KEEP},
        }
        for d, doc in enumerate(docs)
        for q, ex in enumerate(doc)
    ]
    out = Path(args.out)
    write_jsonl(out.with_name(out.stem + "_per_question.jsonl"), rows, overwrite=True)
    results = {
        "command": "python benchmarks/ram_selector_recall.py " + " ".join(sys.argv[1:]),
        "what": "evidence recall = share of a question's evidence segments among the top keep_count(N, r) "
        "segments by selector score; 95% CIs by bootstrap over documents; paired = same questions",
        "data": f"make_dataset(n={args.eval_n}, tokens={args.eval_tokens}, seed={args.data_seed}, "
        f"questions_per_doc={args.questions_per_doc}): {len(docs)} documents, {len(data)} questions",
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads(), "bf16": args.bf16},
        "trained": trained,
        "eval_cpu_s": {m: round(c, 1) for m, (_, c) in methods.items()},
        "evidence_recall": recall,
        "paired_vs_minilm": paired,
        "qa_keep_0.25": qa,
    }
    if qa is not None:
        write_jsonl(out.with_name(out.stem + "_qa_predictions.jsonl"), qa_rows, overwrite=True)
    write_json(out, results, overwrite=True)
    plot(results, out.with_suffix(".png"))
    console.print(recall)
    console.print(paired)
    console.print(qa)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    methods = list(results["evidence_recall"]["4x"])
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs, ys, err = [], [], [[], []]
        for j, s in enumerate(KEEP):
            entry = results["evidence_recall"][s][m]
            xs.append(j + i * width)
            ys.append(entry["mean"])
            err[0].append(entry["mean"] - entry["ci95"][0])
            err[1].append(entry["ci95"][1] - entry["mean"])
        ax.bar(xs, ys, width, yerr=err, capsize=3, label=m)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(KEEP))])
    ax.set_xticklabels([f"keep {r} ({s})" for s, r in KEEP.items()])
    ax.set_ylabel("evidence recall (95% CI, bootstrap over documents)")
    ax.set_ylim(0, 1.05)
    ax.set_title(results["data"].split(":")[1].strip(), fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
