"""RAM quality benchmark: long-document QA generated from public-domain text, SmolLM2-135M.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ram_quality.py --seeds 0 [--out runs/ram_quality/ram_quality.json]

One process per seed (two may share --out: results merge under a lock). Per seed, each step is
skipped when its result exists and training resumes from checkpoints:

* ``ram``: the main RAM (by default the adapter form: LoRA encoder + projector + LoRA decoder
  q/k/v). Selector stage (InfoNCE only, encoder only, on short multi-question documents; evidence
  recall measured along the way: the learning curve), then the joint stage (answer NLL + InfoNCE,
  keep ratio sampled per step) on the joint-stage examples. Evaluated at keep 1/4 ("4x"), 1/8 ("8x")
  and 0 (skim only).
* ``full_ft``: the full-context baseline, fine-tuned on the SAME joint-stage examples in the same
  order (decoder q/k/v); evaluated on full contexts, and as the reader of the close-reading
  baselines at RAM 4x's hybrid length: keep-first, keep-last, random segments, MiniLM top-k.
* ``ram_no_infonce``: the main RAM's joint stage without InfoNCE (and so without a selector stage).
* ``ram_full`` (opt-in): the paper's fully trained form (full encoder copy, full q/k/v).
* ``zero_shot`` (seed-independent): the untouched decoder on full contexts.

Evidence recall (share of evidence segments among those kept at keep 1/4 and 1/8) is measured for
every RAM variant, the untrained encoder and MiniLM. Predictions per variant and seed go to
``<work>/predictions/<variant>/seed<s>/predictions.jsonl``; every run records its own config and
CPU seconds (training and evaluation). bf16 autocast is used for every variant alike.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import torch

from longlore.core.io import save_figure, write_json, write_jsonl
from longlore.core.metrics import substring_match
from longlore.core.models import load_causal_lm, load_embedder
from longlore.core.progress import console, track
from longlore.ram.config import RAMConfig
from longlore.ram.data import make_dataset
from longlore.ram.model import RAMModel, keep_count, positive_segments
from longlore.ram.trainer import TrainArgs, evaluate, group_by_document, train

KEEP = {"4x": 0.25, "8x": 0.125}


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0")
    p.add_argument("--variants", default="ram,full_ft,ram_no_infonce,zero_shot", help="Comma-separated, in order.")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--encoder-layers", type=int, default=8)
    p.add_argument("--steps", type=int, default=120, help="Joint-stage examples (= steps) for every trained variant.")
    p.add_argument("--train-tokens", default="700,1400", help="Joint-stage document lengths.")
    p.add_argument(
        "--lr", type=float, default=2e-4, help="Joint-stage peak lr of full-weight variants (full_ft, ram_full)."
    )
    p.add_argument(
        "--lora-lr", type=float, default=5e-4, help="Joint-stage peak lr of the LoRA variants (ram, ram_no_infonce)."
    )
    p.add_argument("--selector-steps", type=int, default=400)
    p.add_argument("--selector-lr", type=float, default=5e-4)
    p.add_argument("--selector-batch", type=int, default=1, help="Documents per selector step.")
    p.add_argument("--selector-docs", type=int, default=600)
    p.add_argument("--selector-tokens", default="600,1200")
    p.add_argument("--selector-questions", type=int, default=3, help="Questions per selector document.")
    p.add_argument("--curve-every", type=int, default=100, help="Selector steps between recall measurements.")
    p.add_argument("--curve-docs", type=int, default=8, help="Held-out documents for the learning curve.")
    p.add_argument("--keep-ratio-range", default="0.1,0.5", help="Joint-stage keep ratios drawn from (low, high].")
    p.add_argument("--temperature", type=float, default=0.05)
    p.add_argument("--lora-r", type=int, default=16, help="Main RAM: LoRA rank of encoder and decoder (0: full).")
    p.add_argument("--eval-n", type=int, default=150)
    p.add_argument("--eval-tokens", default="2000,8000")
    p.add_argument("--questions-per-doc", type=int, default=5)
    p.add_argument("--bf16", type=int, default=1)
    p.add_argument("--work", default="runs/ram_quality")
    p.add_argument("--out", default="runs/ram_quality/ram_quality.json")
    return p.parse_args()


@contextmanager
def autocast(enabled: bool):
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
        yield


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.work, self.out = args, Path(args.work), Path(args.out)
        self.work.mkdir(parents=True, exist_ok=True)
        _, self.tokenizer = load_causal_lm(args.model)
        tok = self.tokenizer
        tmin, tmax = map(int, args.train_tokens.split(","))
        smin, smax = map(int, args.selector_tokens.split(","))
        emin, emax = map(int, args.eval_tokens.split(","))
        self.joint = [dict(d, answer=d["answers"][0]) for d in make_dataset(tok, args.steps, tmin, tmax, seed=1000)]
        self.selector = [
            dict(d, answer=d["answers"][0])
            for d in make_dataset(
                tok,
                args.selector_docs * args.selector_questions,
                smin,
                smax,
                seed=1001,
                questions_per_doc=args.selector_questions,
            )
        ]
        self.eval = make_dataset(tok, args.eval_n, emin, emax, seed=2000, questions_per_doc=args.questions_per_doc)
        self.docs = group_by_document(self.eval)
        self.curve_docs = group_by_document(
            make_dataset(tok, args.curve_docs * 5, emin, emax, seed=3000, questions_per_doc=5)
        )
        write_jsonl(self.work / "eval.jsonl", self.eval, overwrite=True)
        self.embedder = None
        self.data_spec = {
            "joint": f"make_dataset(n={args.steps}, tokens={args.train_tokens}, seed=1000), one question per document",
            "selector": f"make_dataset(n={args.selector_docs * args.selector_questions}, tokens={args.selector_tokens},"
            f" seed=1001, questions_per_doc={args.selector_questions})",
            "eval": f"make_dataset(n={args.eval_n}, tokens={args.eval_tokens}, seed=2000, "
            f"questions_per_doc={args.questions_per_doc})",
        }

    # --- results file --------------------------------------------------------------------
    def load(self) -> dict:
        return json.loads(self.out.read_text()) if self.out.exists() else {"runs": {}}

    def has(self, key: str) -> bool:
        return key in self.load()["runs"]

    def record(self, key: str, value: dict, preds: list[dict] | None = None) -> None:
        if preds is not None:
            variant, seed = key.split("/")
            write_jsonl(self.work / "predictions" / variant / seed / "predictions.jsonl", preds, overwrite=True)
        with open(self.work / ".results.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            results = self.load()
            results["runs"][key] = value
            results["machine"] = {"platform": platform.platform(), "torch_threads": torch.get_num_threads()}
            results["data"] = self.data_spec
            results["command"] = (
                "python benchmarks/ram_quality.py "
                + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(self.args).items() if k != "seeds")
                + " --seeds S (one process per seed)"
            )
            summarise(results)
            write_json(self.out, results, overwrite=True)
        console.print(
            f"[green]{key}[/green] { {k: v for k, v in value.items() if k in ('substring_em', 'f1', 'cpu_s')} }"
        )

    # --- models ----------------------------------------------------------------------------
    def config(self, variant: str) -> RAMConfig:
        a = self.args
        lora = 0 if variant == "ram_full" else a.lora_r
        return RAMConfig(
            encoder_layers=a.encoder_layers,
            sample_keep_ratio=True,
            keep_ratio_range=tuple(map(float, a.keep_ratio_range.split(","))),
            temperature=a.temperature,
            contrastive_weight=0.0 if variant == "ram_no_infonce" else 1.0,
            encoder_lora_r=lora,
            decoder_lora_r=lora if variant != "full_ft" else 0,
            lora_alpha=2.0 * max(1, lora),
            lr=a.lora_lr if lora and variant != "full_ft" else a.lr,
        )

    def train_args(self, variant: str, seed: int, **extra) -> TrainArgs:
        a = self.args
        selector = variant in ("ram", "ram_full")
        return TrainArgs(
            steps=a.steps,
            selector_steps=a.selector_steps if selector else 0,
            selector_lr=a.selector_lr,
            selector_batch=a.selector_batch,
            warmup_steps=10,
            seed=seed,
            checkpoint_every=25,
            bf16=bool(a.bf16),
            **extra,
        )

    def trained(self, variant: str, seed: int) -> tuple[RAMModel, dict]:
        """Train (or resume) one variant; for RAM the selector stage runs in chunks with a recall check."""
        torch.manual_seed(seed)
        decoder, tok = load_causal_lm(self.args.model)
        ram = RAMModel(decoder, tok, self.config(variant))
        run_dir = self.work / "train" / f"{variant}-seed{seed}"
        curve_file = run_dir / "selector_curve.json"
        curve = json.loads(curve_file.read_text()) if curve_file.exists() else []
        if variant in ("ram", "ram_full"):
            if not curve:
                curve.append({"step": 0, **self.recall(ram, self.curve_docs), "cpu_s": 0.0})
            while curve[-1]["step"] < self.args.selector_steps:
                chunk = min(self.args.curve_every, self.args.selector_steps - curve[-1]["step"])
                summary = train(
                    ram,
                    self.joint,
                    run_dir,
                    self.train_args(variant, seed, stop_after=curve[-1]["step"] + chunk),  # counted from step 0
                    selector_examples=self.selector,
                )
                curve.append(
                    {
                        "step": len(summary["selector"]["history"]),
                        **self.recall(ram, self.curve_docs),
                        "cpu_s": summary["selector"]["cpu_s"],
                    }
                )
                run_dir.mkdir(parents=True, exist_ok=True)
                curve_file.write_text(json.dumps(curve))
                console.print(f"selector curve {curve[-1]}")
        summary = train(
            ram,
            self.joint,
            run_dir,
            self.train_args(variant, seed),
            full_context=variant == "full_ft",
            selector_examples=self.selector,
        )
        ram.eval()
        info = {
            "config": ram.config.to_dict(),
            "train_args": asdict(self.train_args(variant, seed)),
            "train_cpu_s": summary["cpu_s"],
            "train_cost": {
                s: {k: summary[s][k] for k in ("cpu_s", "wall_s", "steps")}
                for s in ("selector", "joint")
                if s in summary
            },
            "final_losses": {s: summary[s]["final"] for s in ("selector", "joint") if s in summary},
            "selector_curve": curve or None,
            "joint_examples": len(self.joint),
            "adapter_bytes": sum(v.numel() * 2 for v in ram.trainable_state().values()),
        }
        if variant == "ram":
            ram.save_pretrained(run_dir / "final", dtype=torch.bfloat16)
        return ram, info

    # --- evaluation ------------------------------------------------------------------------
    def recall(self, ram: RAMModel, docs: list[list[dict]]) -> dict:
        """Evidence recall at keep 1/4 and 1/8 (encoder only)."""
        shares = {name: [] for name in KEEP}
        with autocast(bool(self.args.bf16)):
            for doc in docs:
                encoded = ram.encode_context(doc[0]["context"])
                for ex in doc:
                    positives = positive_segments(encoded.texts, ex)
                    scores, _ = ram.relevance(ex["question"], encoded)
                    for name, ratio in KEEP.items():
                        kept = torch.zeros(len(positives), dtype=torch.bool)
                        kept[scores.topk(keep_count(len(positives), ratio)).indices] = True
                        shares[name].append(float((kept & positives).sum() / positives.sum()))
        return {f"recall_{k}": round(sum(v) / len(v), 4) for k, v in shares.items()}

    def minilm_scores(self, texts: list[str], question: str) -> torch.Tensor:
        if self.embedder is None:
            self.embedder = load_embedder("minilm")
        q = self.embedder.embed([question], is_query=True)[0]
        return torch.tensor(self.embedder.embed(texts) @ q)

    def eval_ram(self, ram: RAMModel, keep: dict[str, float]) -> tuple[dict, dict]:
        """Per keep setting: predictions (with kept segments and evidence recall)."""
        preds = {name: [] for name in keep}
        cpu = time.process_time()
        with autocast(bool(self.args.bf16)):
            for doc in track(self.docs, f"RAM {','.join(keep)}"):
                encoded = ram.encode_context(doc[0]["context"])
                for ex in doc:
                    positives = positive_segments(encoded.texts, ex)
                    for name, ratio in keep.items():
                        c = ram.compress(encoded, ex["question"], keep_ratio=ratio)
                        answer = ram.generate_from_embeddings([ram.prompt_embeddings(c, ex["question"])], 16)[0]
                        hit = float(positives[c.kept].sum() / positives.sum()) if c.kept else 0.0
                        preds[name].append(
                            row(ex, answer, kept=c.kept, evidence_recall=hit, hybrid=c.compressed_length)
                        )
        return preds, {"eval_cpu_s": round(time.process_time() - cpu, 1)}

    def eval_full(self, ram: RAMModel) -> tuple[list, dict]:
        preds, cpu = [], time.process_time()
        embed = ram.decoder.get_input_embeddings()
        with autocast(bool(self.args.bf16)):
            for doc in track(self.docs, "full context"):
                ids = self.tokenizer(doc[0]["context"], add_special_tokens=False)["input_ids"]
                answers = ram.generate_shared_prefix(embed(torch.tensor(ids)), [ex["question"] for ex in doc], 16)
                preds += [row(ex, a) for ex, a in zip(doc, answers)]
        return preds, {"eval_cpu_s": round(time.process_time() - cpu, 1)}

    def eval_baselines(self, ram: RAMModel, seed: int) -> dict[str, tuple[list, dict]]:
        """Close reading only, at RAM 4x's hybrid length, read by ``ram``'s decoder (full_ft)."""
        out = {}
        S = ram.config.segment_tokens
        for selector in ("first", "last", "random", "minilm"):
            preds, cpu = [], time.process_time()
            with autocast(bool(self.args.bf16)):
                for doc in track(self.docs, selector):
                    encoded = ram.encode_context(doc[0]["context"], encode=False)
                    n = len(encoded.segments)
                    budget = keep_count(n, 0.25) * S + n - keep_count(n, 0.25)  # RAM 4x's hybrid length
                    if selector != "minilm":  # question-independent: one prefill for all questions
                        c = ram.compress(encoded, "", target_tokens=budget, selector=selector, skim=False, seed=seed)
                        answers = ram.generate_shared_prefix(c.embeddings, [ex["question"] for ex in doc], 16)
                        preds += [row(ex, a, kept=c.kept) for ex, a in zip(doc, answers)]
                        continue
                    for ex in doc:
                        scores = self.minilm_scores(encoded.texts, ex["question"])
                        c = ram.compress(
                            encoded, ex["question"], target_tokens=budget, selector="scores", scores=scores, skim=False
                        )
                        answer = ram.generate_from_embeddings([ram.prompt_embeddings(c, ex["question"])], 16)[0]
                        preds.append(row(ex, answer, kept=c.kept))
            out[selector] = (preds, {"eval_cpu_s": round(time.process_time() - cpu, 1), "budget": "RAM 4x length"})
        return out

    def minilm_recall(self) -> dict:
        shares = {name: [] for name in KEEP}
        for doc in self.docs:
            ids = self.tokenizer(doc[0]["context"], add_special_tokens=False)["input_ids"]
            texts = [self.tokenizer.decode(ids[i : i + 50]) for i in range(0, len(ids), 50)]
            for ex in doc:
                positives = positive_segments(texts, ex)
                scores = self.minilm_scores(texts, ex["question"])
                for name, ratio in KEEP.items():
                    kept = torch.zeros(len(texts), dtype=torch.bool)
                    kept[scores.topk(keep_count(len(texts), ratio)).indices] = True
                    shares[name].append(float((kept & positives).sum() / positives.sum()))
        return {f"recall_{k}": round(sum(v) / len(v), 4) for k, v in shares.items()}

    # --- the per-seed plan -----------------------------------------------------------------
    def run_seed(self, seed: int) -> None:
        s = f"seed{seed}"
        for variant in self.args.variants.split(","):
            if variant == "zero_shot":
                if self.has("zero_shot/seed0"):
                    continue
                decoder, tok = load_causal_lm(self.args.model)
                ram = RAMModel(decoder, tok, RAMConfig(encoder_layers=self.args.encoder_layers)).eval()
                if not self.has("untrained_encoder/seed0"):
                    self.record("untrained_encoder/seed0", {"evidence_recall": self.recall(ram, self.docs)})
                if not self.has("minilm_topk_selection/seed0"):
                    self.record("minilm_topk_selection/seed0", {"evidence_recall": self.minilm_recall()})
                preds, info = self.eval_full(ram)
                self.record("zero_shot/seed0", {**evaluate_rows(preds), **info, "config": "untouched decoder"}, preds)
                continue
            keys = {
                "ram": [f"ram_4x/{s}", f"ram_8x/{s}", f"skim_only/{s}"],
                "ram_full": [f"ram_full_4x/{s}", f"ram_full_8x/{s}"],
                "ram_no_infonce": [f"ram_no_infonce_4x/{s}"],
                "full_ft": [f"full_ft/{s}", f"first/{s}", f"last/{s}", f"random/{s}", f"minilm_topk/{s}"],
            }[variant]
            if all(self.has(k) for k in keys):
                continue
            ram, info = self.trained(variant, seed)
            if variant == "full_ft":
                preds, extra = self.eval_full(ram)
                self.record(f"full_ft/{s}", {**evaluate_rows(preds), **info, **extra}, preds)
                for name, (preds, extra) in self.eval_baselines(ram, seed).items():
                    key = f"{'minilm_topk' if name == 'minilm' else name}/{s}"
                    self.record(key, {**evaluate_rows(preds), **extra, "reader": f"full_ft/{s}"}, preds)
                continue
            keep = {"ram": {"4x": 0.25, "8x": 0.125, "skim": 0.0}, "ram_full": KEEP, "ram_no_infonce": {"4x": 0.25}}
            preds, extra = self.eval_ram(ram, keep[variant])
            recall = self.recall(ram, self.docs)
            for name, rows in preds.items():
                key = {"skim": f"skim_only/{s}"}.get(name, f"{variant}_{name}/{s}")
                self.record(key, {**evaluate_rows(rows), **info, **extra, "evidence_recall": recall}, rows)


def row(ex: dict, answer: str, **extra) -> dict:
    return {
        "id": ex["id"],
        "doc": ex.get("doc", ""),
        "question": ex["question"],
        "answers": ex["answers"],
        "prediction": answer,
        "substring_match": substring_match(answer, ex["answers"]),
        "two_fact": "company that owns" in ex["question"],
        **extra,
    }


def evaluate_rows(rows: list[dict]) -> dict:
    metrics = evaluate([r["prediction"] for r in rows], rows)
    two = [r for r in rows if r["two_fact"]]
    metrics["substring_em_two_fact"] = sum(r["substring_match"] for r in two) / max(1, len(two))
    metrics["n_two_fact"] = len(two)
    return metrics


RECALL_NAMES = {
    "ram_4x": "ram",
    "ram_full_4x": "ram_full",
    "ram_no_infonce_4x": "ram_no_infonce",
    "untrained_encoder": "untrained_encoder",
    "minilm_topk_selection": "minilm_topk",
}


def summarise(results: dict) -> None:
    """summary[variant][metric] = mean/std over seeds; evidence_recall[keep ratio][method]."""
    table: dict[str, dict[str, list[float]]] = {}
    recall: dict[str, dict[str, list[float]]] = {}
    for key, value in results["runs"].items():
        name = key.split("/")[0]
        for metric in ("substring_em", "em", "f1", "substring_em_two_fact"):
            if metric in value:
                table.setdefault(name, {}).setdefault(metric, []).append(value[metric])
        if name in RECALL_NAMES and "evidence_recall" in value:
            for setting, ratio in KEEP.items():
                recall.setdefault(str(ratio), {}).setdefault(RECALL_NAMES[name], []).append(
                    value["evidence_recall"][f"recall_{setting}"]
                )
    results["summary"] = {
        name: {m: {"mean": statistics.mean(v), "std": statistics.pstdev(v), "n_seeds": len(v)} for m, v in ms.items()}
        for name, ms in table.items()
    }
    results["evidence_recall"] = {
        ratio: {m: statistics.mean(v) for m, v in methods.items()} for ratio, methods in recall.items()
    }
    results["evidence_recall_per_seed"] = recall


def plot(results: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [
        "full_ft",
        "zero_shot",
        "ram_4x",
        "ram_full_4x",
        "ram_8x",
        "minilm_topk",
        "ram_no_infonce_4x",
        "first",
        "last",
        "random",
        "skim_only",
    ]
    names = [n for n in order if n in results["summary"]]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 2]})
    means = [results["summary"][n]["substring_em"]["mean"] for n in names]
    stds = [results["summary"][n]["substring_em"]["std"] for n in names]
    ax.bar(names, means, yerr=stds, capsize=3, color=["C1" if n.startswith("ram") else "C0" for n in names])
    ax.set_ylabel("substring EM (mean of seeds)")
    ax.set_title("RAM vs baselines, held-out long-document QA (2K-8K tokens)")
    plt.setp(ax.get_xticklabels(), rotation=35, ha="right")
    for key, value in sorted(results["runs"].items()):
        curve = value.get("selector_curve") if key.startswith(("ram_4x", "ram_full_4x")) else None
        if curve:
            bx.plot([c["step"] for c in curve], [c["recall_8x"] for c in curve], "o-", label=f"{key} @1/8")
            bx.plot([c["step"] for c in curve], [c["recall_4x"] for c in curve], "x--", label=f"{key} @1/4")
    minilm = results.get("evidence_recall", {}).get("0.125", {}).get("minilm_topk")
    if minilm is not None:
        bx.axhline(minilm, color="grey", ls=":", label="MiniLM @1/8 (eval set)")
    bx.set_xlabel("selector-stage steps")
    bx.set_ylabel("evidence recall (curve documents)")
    bx.set_title("selector learning curve")
    bx.legend(fontsize=7)
    save_figure(fig, out.with_suffix(".png"))
    plt.close(fig)


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    bench = Bench(args)
    for seed in map(int, args.seeds.split(",")):
        bench.run_seed(seed)
    plot(bench.load(), bench.out)


if __name__ == "__main__":
    main()
