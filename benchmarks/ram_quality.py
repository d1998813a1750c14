"""RAM quality benchmark on long-document QA generated from public-domain text.

    .venv/bin/python benchmarks/ram_quality.py --seeds 0,1 --steps 200 \
        --train-n 200 --train-tokens 2000,8000 --eval-n 60 --eval-tokens 2000,8000

Trains, per seed and with the same step budget: the full-context fine-tuned decoder (q/k/v),
RAM (keep-ratio sampled per step, evaluated at 4x and 8x) and RAM without the contrastive loss.
Evaluates at the same compressed length as RAM 4x: keep-first / keep-last truncation, random
segments and MiniLM top-k (close reading only, read by the full-context fine-tuned decoder), and
skim-only (RAM at keep-ratio 0). Writes benchmarks/results/ram_quality.json (+ .png); every
(variant, seed) result is saved as soon as it exists, training checkpoints resume.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform
import statistics
from pathlib import Path

import torch

from longlore.core.io import save_figure, write_json, write_jsonl
from longlore.core.models import load_causal_lm, load_embedder
from longlore.core.progress import console, track
from longlore.ram.config import RAMConfig
from longlore.ram.data import make_dataset
from longlore.ram.model import RAMModel
from longlore.ram.trainer import TrainArgs, evaluate, train


def answer_all(ram: RAMModel, data: list[dict], **kwargs) -> list[str]:
    preds = []
    for ex in track(data, kwargs.pop("label", "eval")):
        if kwargs.get("full"):
            preds += ram.generate_full_context([ex["context"]], [ex["question"]], max_new_tokens=16)
        else:
            compressed = ram.compress(ex["context"], ex["question"], **{k: v for k, v in kwargs.items() if k != "full"})
            preds += ram.generate_from_embeddings(
                [ram._prompt_embeddings(compressed, ex["question"], None)[0]], max_new_tokens=16
            )
    return preds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--train-n", type=int, default=200)
    parser.add_argument("--train-tokens", default="2000,8000")
    parser.add_argument("--eval-n", type=int, default=60)
    parser.add_argument("--eval-tokens", default="2000,8000")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--encoder-layers", type=int, default=8)
    parser.add_argument("--segment-tokens", type=int, default=50)
    parser.add_argument("--ratio-range", default="0.0,1.0", help="RAM's sampled keep-ratios lie in (low, high].")
    parser.add_argument(
        "--variants",
        default="full_ft,ram,ram_no_contrastive",
        help="Trained variants to run (each brings its evaluations).",
    )
    parser.add_argument(
        "--lr", type=float, default=1e-4, help="Peak learning rate, the same for every trained variant."
    )
    parser.add_argument("--work", default="runs/ram_quality")
    parser.add_argument("--out", default="benchmarks/results/ram_quality.json")
    args = parser.parse_args()
    work, out = Path(args.work), Path(args.out)
    results = load_results(out)
    _, tokenizer = load_causal_lm(args.model)
    tmin, tmax = map(int, args.train_tokens.split(","))
    emin, emax = map(int, args.eval_tokens.split(","))
    train_data = make_dataset(tokenizer, args.train_n, tmin, tmax, seed=1000)
    eval_data = make_dataset(tokenizer, args.eval_n, emin, emax, seed=2000)
    write_jsonl(work / "eval.jsonl", eval_data, overwrite=True)
    train_examples = [dict(d, answer=d["answers"][0]) for d in train_data]
    embedder = load_embedder("minilm")

    def record(key: str, preds: list[str], extra: dict | None = None) -> None:
        # one process per seed may share the results file: merge under a lock, never overwrite others' runs
        with open(work / ".results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            results.update(load_results(out))
            results["runs"][key] = {
                **evaluate(preds, eval_data),
                **(extra or {}),
                "command": "python benchmarks/ram_quality.py "
                + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
            }
            results.update(
                config={k: v for k, v in vars(args).items() if k != "seeds"},
                machine={"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
            )
            write_json(out, results, overwrite=True)
        console.print(f"[green]{key}[/green] {results['runs'][key]}")

    for seed in map(int, args.seeds.split(",")):
        sizes = dict(encoder_layers=args.encoder_layers, segment_tokens=args.segment_tokens, lr=args.lr)
        ratio_range = tuple(map(float, args.ratio_range.split(",")))
        for variant, cfg, full in (
            ("full_ft", RAMConfig(**sizes), True),
            ("ram", RAMConfig(sample_ratio=True, ratio_range=ratio_range, **sizes), False),
            (
                "ram_no_contrastive",
                RAMConfig(sample_ratio=True, ratio_range=ratio_range, contrastive_weight=0.0, **sizes),
                False,
            ),
        ):
            if variant not in args.variants.split(","):
                continue
            keys = {
                "full_ft": ["full_ft", "first", "last", "random", "embedding_topk"],
                "ram": ["ram_4x", "ram_8x", "skim_only"],
                "ram_no_contrastive": ["ram_no_contrastive_4x"],
            }[variant]
            if all(f"{k}/seed{seed}" in results["runs"] for k in keys):
                continue
            torch.manual_seed(seed)
            decoder, tok = load_causal_lm(args.model)
            ram = RAMModel(decoder, tok, cfg)
            summary = train(
                ram,
                train_examples,
                work / f"{variant}-seed{seed}",
                TrainArgs(steps=args.steps, seed=seed),
                full_context=full,
            )
            ram.eval()
            with torch.no_grad():
                if variant == "full_ft":
                    record(
                        f"full_ft/seed{seed}",
                        answer_all(ram, eval_data, full=True, label="full"),
                        {"train_s": summary["seconds"]},
                    )
                    # close-reading baselines at RAM-4x's compressed length, read by this decoder
                    budgets = [
                        RAMModel.compress(ram, ex["context"], ex["question"], rate=0.25).compressed_length
                        for ex in eval_data
                    ]
                    for name, selector in (("first", "first"), ("last", "last"), ("random", "random")):
                        preds = []
                        for ex, budget in zip(eval_data, budgets):
                            c = ram.compress(
                                ex["context"],
                                ex["question"],
                                target_tokens=budget,
                                selector=selector,
                                skim=False,
                                seed=seed,
                            )
                            preds += ram.generate_from_embeddings(
                                [ram._prompt_embeddings(c, ex["question"], None)[0]], 16
                            )
                        record(f"{name}/seed{seed}", preds)
                    preds = []
                    for ex, budget in zip(eval_data, budgets):
                        _segments, texts = ram.segment(ex["context"])
                        q = embedder.embed([ex["question"]], is_query=True)[0]
                        scores = torch.tensor(embedder.embed(texts) @ q)
                        c = ram.compress(
                            ex["context"],
                            ex["question"],
                            target_tokens=budget,
                            selector="scores",
                            scores=scores,
                            skim=False,
                        )
                        preds += ram.generate_from_embeddings([ram._prompt_embeddings(c, ex["question"], None)[0]], 16)
                    record(f"embedding_topk/seed{seed}", preds)
                elif variant == "ram":
                    record(
                        f"ram_4x/seed{seed}",
                        answer_all(ram, eval_data, rate=0.25, label="ram 4x"),
                        {"train_s": summary["seconds"]},
                    )
                    record(f"ram_8x/seed{seed}", answer_all(ram, eval_data, rate=0.125, label="ram 8x"))
                    record(f"skim_only/seed{seed}", answer_all(ram, eval_data, rate=0.0, label="skim only"))
                else:
                    record(
                        f"ram_no_contrastive_4x/seed{seed}",
                        answer_all(ram, eval_data, rate=0.25, label="no-contrastive"),
                    )
    with open(work / ".results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        summarise(load_results(out), out)


def load_results(out: Path) -> dict:
    return json.loads(out.read_text()) if out.exists() else {"runs": {}}


def summarise(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table: dict[str, dict[str, list[float]]] = {}
    for key, value in results["runs"].items():
        name = key.split("/")[0]
        for metric in ("substring_em", "f1"):
            table.setdefault(name, {}).setdefault(metric, []).append(value[metric])
    results["summary"] = {
        name: {
            m: {"mean": statistics.mean(v), "std": statistics.pstdev(v), "n_seeds": len(v)} for m, v in metrics.items()
        }
        for name, metrics in table.items()
    }
    write_json(out, results, overwrite=True)
    names = list(results["summary"])
    fig, ax = plt.subplots(figsize=(8, 4))
    means = [results["summary"][n]["substring_em"]["mean"] for n in names]
    stds = [results["summary"][n]["substring_em"]["std"] for n in names]
    ax.bar(names, means, yerr=stds, capsize=3)
    ax.set_ylabel("substring EM")
    ax.set_title("RAM vs baselines (held-out long-document QA)")
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    save_figure(fig, out.with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    main()
