"""PretrainRL on a synthetic world: does debiasing help? Every arm x seeds, paired CIs, held-out paraphrases.

Per seed s: a world with seed s (150 Zipf people, as before, plus ``--n-entrenched`` people whose
false, popular-valued biography is in the corpus ``--entrenched-false`` times against their true
one once), a ``small-llama`` pretrained from scratch on its corpus (seed s), and every method
continued from that one base for the same number of steps. Each trained model is scored three ways:

* ``cloze_train_neg`` — the original protocol: the trained cloze prompt, the negatives mined from
  the base (the debias arms trained against these);
* ``cloze_post_neg`` (with ``--cloze-post-neg``) — the cloze prompt, negatives mined from the
  *trained* model;
* ``paraphrase_post_neg`` — held-out paraphrases (prompt forms no fact objective trains on),
  negatives mined from the trained model on those prompts;

plus the SFT question form and held-out perplexity. Buckets: ``tail`` (the current world's tail
facts) and ``entrenched``. ``paired_gain`` compares arms seed by seed (same world, same base):
mean difference with a t interval over seeds. Each (method, seed) is saved as it completes under
``--work``; a rerun resumes. CPU seconds (process time, 1 torch thread) are recorded everywhere.

Cheaper designs (recorded in the JSON as ``seed_design`` / ``eval_facts``): ``--world-seed W``
shares one world and base among the seeds, which then vary only the continued training (use a
``--work`` folder of its own); ``--eval-buckets`` / ``--eval-per-bucket`` score a seeded sample.

    OMP_NUM_THREADS=1 python benchmarks/pretrainrl_synthetic.py --seeds 0 1 2 3 4 \\
        --out benchmarks/results/pretrainrl_synthetic.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path

import torch

from longlore.core.io import save_figure, write_json
from longlore.pretrainrl.base import load_model, save_model
from longlore.pretrainrl.config import METHODS, PretrainRLConfig, WorldConfig, method_config
from longlore.pretrainrl.metrics import evaluate_facts, paraphrase_facts, summarize
from longlore.pretrainrl.mining import load_negatives, mine_negatives, save_negatives
from longlore.pretrainrl.scoring import make_blocks, perplexity
from longlore.pretrainrl.trainer import train
from longlore.pretrainrl.world import SyntheticWorld

ROOT = Path(__file__).resolve().parents[1]
BUCKETS = ("head", "torso", "tail", "entrenched", "all")
PROTOCOLS = ["cloze_train_neg", "paraphrase_post_neg"]
CLOZE_POST = False  # --cloze-post-neg adds the third protocol
EVAL_FACTS = None  # --eval-buckets / --eval-per-bucket: the facts scored (None = all)
COMPARISONS = {
    "pretrainrl_vs_no_debias": ("pretrainrl", "pretrainrl-no-debias"),
    "interleaved_vs_no_debias": ("pretrainrl-interleaved", "pretrainrl-no-debias"),
    "pretrainrl_vs_ntp": ("pretrainrl", "ntp"),
    "pretrainrl_vs_sft": ("pretrainrl", "sft"),
}
KEYS = ("hit1", "p_truth", "margin", "max_p_false", "high_false_count")


def eval_facts(world, buckets: list[str] | None, per_bucket: int) -> list:
    """The facts scored after training: all of them, or a seeded sample of at most ``per_bucket`` per
    bucket of ``buckets`` (training always sees every fact; only the scoring is reduced)."""
    if not buckets and not per_bucket:
        return list(world.facts)
    rng = random.Random(1234)
    out = []
    for bucket in buckets or sorted({f.bucket for f in world.facts}):
        group = [f for f in world.facts if f.bucket == bucket]
        out += rng.sample(group, min(per_bucket, len(group))) if per_bucket else group
    return out


def evaluate(model, tok, world, base_negatives, heldout, cfg: PretrainRLConfig, seed: int) -> dict:
    """The three protocols, the question form and perplexity for one model."""
    facts = EVAL_FACTS if EVAL_FACTS is not None else world.facts
    para = paraphrase_facts(facts)
    post_para = mine_negatives(model, tok, para, cfg, seed=seed, progress=False)
    question = summarize(evaluate_facts(model, tok, facts, prompt_field="question"))
    out = {
        "cloze_train_neg": summarize(evaluate_facts(model, tok, facts, base_negatives)),
        "paraphrase_post_neg": summarize(evaluate_facts(model, tok, para, post_para)),
        "question": {b: {"hit1": question[b]["hit1"]} for b in question},
        "perplexity": perplexity(model, heldout),
    }
    if CLOZE_POST:  # the cloze prompt against negatives mined after training (costs one more mining pass)
        post_cloze = mine_negatives(model, tok, facts, cfg, seed=seed, progress=False)
        out["cloze_post_neg"] = summarize(evaluate_facts(model, tok, facts, post_cloze))
    return out


def t_interval(values: list[float]) -> dict:
    """Mean with a 95 % t interval over seeds (paired differences when ``values`` are differences)."""
    from scipy import stats

    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": n, "values": values}
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / n**0.5
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": n, "values": values}


def prepare_seed(seed: int, args, world_cfg: WorldConfig) -> dict:
    """World, pretrained base (cached), base negatives and base evaluation for one seed (with
    ``--world-seed W``: the world and base of seed W, shared by every continuation seed)."""
    seed = args.world_seed if args.world_seed is not None else seed
    world = SyntheticWorld.generate(replace(world_cfg, seed=seed))
    global EVAL_FACTS
    EVAL_FACTS = eval_facts(world, args.eval_buckets, args.eval_per_bucket) if args.reduced_eval else None
    base_dir = args.work / f"seed{seed}" / "base"
    if not (base_dir / "config.json").exists():
        model, tok = load_model(f"small-llama:seed={seed}")
        pre = PretrainRLConfig(
            fact_objective="none", steps=args.pretrain_steps, lr=3e-3, warmup=30, batch_size=15, fact_batch_size=1
        )
        c0 = time.process_time()
        train(model, tok, replace(pre, seed=seed), blocks=make_blocks(tok, world.corpus, pre.block_size), progress=True)
        save_model(model, tok, base_dir, overwrite=True)
        write_json(
            base_dir / "pretrain.json",
            {"config": pre.to_dict(), "cpu_seconds": time.process_time() - c0},
            overwrite=True,
        )
    model, tok = load_model(str(base_dir))
    cfg = base_config(args)
    neg_path = base_dir / "negatives.jsonl"
    if not neg_path.exists():
        save_negatives(neg_path, mine_negatives(model, tok, world.facts, cfg, progress=False), overwrite=True)
    negatives = load_negatives(neg_path)
    heldout = make_blocks(tok, world.heldout, 64)
    base_eval = args.work / f"seed{seed}" / ("base_eval_reduced.json" if args.reduced_eval else "base_eval.json")
    if not base_eval.exists():
        c0 = time.process_time()
        record = evaluate(model, tok, world, negatives, heldout, cfg, seed)
        record["eval_cpu_seconds"] = time.process_time() - c0
        write_json(base_eval, record, overwrite=True)
    return {"world": world, "base_dir": base_dir, "negatives": negatives, "heldout": heldout, "base_eval": base_eval}


def base_config(args) -> PretrainRLConfig:
    return PretrainRLConfig(
        steps=args.steps,
        fact_batch_size=args.fact_batch_size,
        lr=args.lr,
        mine_every=args.mine_every,
        beta=args.beta,
        debias_fraction=args.debias_fraction,
    )


def run_method(method: str, seed: int, prep: dict, args) -> dict:
    path = args.work / f"seed{seed}" / f"{method}.json"
    if path.exists():
        return json.loads(path.read_text())
    model, tok = load_model(str(prep["base_dir"]))
    blocks = make_blocks(tok, prep["world"].corpus, 64)
    cfg = method_config(method, replace(base_config(args), seed=seed))
    print(f"== seed {seed} {method}", flush=True)
    c0 = time.process_time()
    result = train(
        model, tok, cfg, blocks=blocks, facts=prep["world"].facts, negatives=prep["negatives"], progress=False
    )
    c1 = time.process_time()
    record = {
        "method": method,
        "seed": seed,
        "config": cfg.to_dict(),
        "train_cpu_seconds": c1 - c0,
        "mined_rounds": result.mined_rounds,
        "history": result.history,
        **evaluate(model, tok, prep["world"], prep["negatives"], prep["heldout"], cfg, seed),
    }
    record["eval_cpu_seconds"] = time.process_time() - c1
    write_json(path, record, overwrite=True)
    e = record["paraphrase_post_neg"].get("entrenched", {}).get("hit1", float("nan"))
    t = record["paraphrase_post_neg"]["tail"]["hit1"]
    print(f"   paraphrase hit1 entrenched {e:.3f} tail {t:.3f}; {c1 - c0:.0f} CPU s train", flush=True)
    return record


def metric(record: dict, bucket: str, protocol: str, key: str) -> float:
    return record[protocol][bucket][key]


def aggregate(runs: dict[str, dict[int, dict]], bases: dict[int, dict], seeds: list[int]) -> tuple[dict, dict, dict]:
    """Per-method stats, and paired gains for the entrenched bucket and for the current world's tail."""
    table = {}
    for method, by_seed in runs.items():
        rs = [by_seed[s] for s in seeds if s in by_seed]
        buckets = [b for b in BUCKETS if b in rs[0]["cloze_train_neg"]]
        table[method] = {
            "seeds": [r["seed"] for r in rs],
            "mined_rounds": [r["mined_rounds"] for r in rs],
            "train_cpu_seconds": t_interval([r["train_cpu_seconds"] for r in rs]),
            "eval_cpu_seconds": t_interval([r["eval_cpu_seconds"] for r in rs]),
            "perplexity_increase_pct": t_interval(
                [100 * (r["perplexity"] / bases[r["seed"]]["perplexity"] - 1) for r in rs]
            ),
            **{
                protocol: {b: {k: t_interval([metric(r, b, protocol, k) for r in rs]) for k in KEYS} for b in buckets}
                for protocol in PROTOCOLS
            },
            "question_hit1": {b: t_interval([r["question"][b]["hit1"] for r in rs]) for b in buckets},
        }

    def gains(bucket: str) -> dict:
        out = {}
        for name, (a, b) in COMPARISONS.items():
            if a not in runs or b not in runs:
                continue
            common = [s for s in seeds if s in runs[a] and s in runs[b]]
            out[name] = {
                f"tail_hit1_{short}": t_interval(
                    [
                        metric(runs[a][s], bucket, protocol, "hit1") - metric(runs[b][s], bucket, protocol, "hit1")
                        for s in common
                    ]
                )
                for short, protocol in (
                    ("paraphrase", "paraphrase_post_neg"),
                    ("cloze_post_neg", "cloze_post_neg"),
                    ("cloze_train_neg", "cloze_train_neg"),
                )
                if protocol in PROTOCOLS
            }
            out[name]["tail_max_p_false_paraphrase"] = t_interval(
                [
                    metric(runs[a][s], bucket, "paraphrase_post_neg", "max_p_false")
                    - metric(runs[b][s], bucket, "paraphrase_post_neg", "max_p_false")
                    for s in common
                ]
            )
        return out

    return table, gains("entrenched"), gains("tail")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--pretrain-steps", type=int, default=400)
    ap.add_argument("--steps", type=int, default=100, help="continuation steps (equal for every method)")
    ap.add_argument("--fact-batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta", type=float, default=0.1)
    ap.add_argument("--debias-fraction", type=float, default=0.4)
    ap.add_argument("--mine-every", type=int, default=10, help="re-mine negatives every N debias steps")
    ap.add_argument("--n-entrenched", type=int, default=40)
    ap.add_argument("--entrenched-false", type=int, default=8)
    ap.add_argument("--cloze-post-neg", action="store_true", help="also score the cloze with post-training negatives")
    ap.add_argument(
        "--world-seed", type=int, default=None, help="one world and base for every seed (seeds vary training only)"
    )
    ap.add_argument("--eval-buckets", nargs="+", default=None, help="score only these buckets (reduced evaluation)")
    ap.add_argument("--eval-per-bucket", type=int, default=0, help="score a seeded sample of N facts per bucket")
    ap.add_argument("--aggregate-only", action="store_true", help="summarise the runs under --work; train nothing")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the machine is shared)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "pretrainrl_synthetic")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "pretrainrl_synthetic" / "results.json")
    args = ap.parse_args()
    args.reduced_eval = bool(args.eval_buckets or args.eval_per_bucket)
    torch.set_num_threads(args.threads)
    global CLOZE_POST
    CLOZE_POST = args.cloze_post_neg
    if CLOZE_POST:
        PROTOCOLS.append("cloze_post_neg")
    world_cfg = WorldConfig(n_entrenched=args.n_entrenched, entrenched_false=args.entrenched_false)
    runs: dict[str, dict[int, dict]] = {m: {} for m in args.methods}
    bases, preps = {}, {}
    for seed in args.seeds:
        preps[seed] = prepare_seed(seed, args, world_cfg)
        bases[seed] = json.loads(preps[seed]["base_eval"].read_text())
    # method by method, so that an interrupted run has the first arms on every seed
    for method in args.methods:
        for seed in args.seeds:
            done = (args.work / f"seed{seed}" / f"{method}.json").exists()
            if done or not args.aggregate_only:
                runs[method][seed] = run_method(method, seed, preps[seed], args)
    runs = {m: by_seed for m, by_seed in runs.items() if by_seed}  # --aggregate-only: the (method, seed) runs done
    table, gain_entrenched, gain_tail = aggregate(runs, bases, args.seeds)
    world_seeds = [args.world_seed] if args.world_seed is not None else args.seeds
    world0 = SyntheticWorld.generate(replace(world_cfg, seed=world_seeds[0]))
    pretrain = [
        json.loads(p.read_text())["cpu_seconds"]
        for p in (args.work / f"seed{s}" / "base" / "pretrain.json" for s in world_seeds)
        if p.exists()
    ]
    base_eval_cpu = sum(
        json.loads(path.read_text())["eval_cpu_seconds"] for path in {prep["base_eval"] for prep in preps.values()}
    )
    cpu = (
        sum(pretrain)
        + base_eval_cpu
        + sum(r["train_cpu_seconds"] + r["eval_cpu_seconds"] for by_seed in runs.values() for r in by_seed.values())
    )
    write_json(
        args.out,
        {
            "command": " ".join(["python", *sys.argv]),
            "machine": f"{platform.machine()}, torch threads {args.threads}, shared 2-core CPU",
            "seeds": args.seeds,
            "seed_design": (
                f"one world and one pretrained base (seed {args.world_seed}); seeds vary the continued training "
                "(batch order, mining samples)"
                if args.world_seed is not None
                else "per seed: its own world, its own pretrained base and its own continued training"
            ),
            "world_seed": args.world_seed,
            "eval_facts": (
                {"buckets": args.eval_buckets, "per_bucket": args.eval_per_bucket, "n": len(EVAL_FACTS or [])}
                if args.reduced_eval
                else "all"
            ),
            "world": asdict(replace(world_cfg, seed=world_seeds[0])),
            "facts_per_bucket": dict(Counter(f.bucket for f in world0.facts)),
            "model": "small-llama (Llama, d128, 4 layers, 1024-token BPE), pretrained from scratch per seed",
            "budget": {
                "pretrain_steps": args.pretrain_steps,
                "steps": args.steps,
                "facts_per_step": args.fact_batch_size,
                "mine_every": args.mine_every,
                "debias_fraction": args.debias_fraction,
                "beta": args.beta,
            },
            "cpu_seconds_total": cpu,
            "protocols": {
                k: v
                for k, v in {
                    "cloze_train_neg": "trained cloze prompt, negatives mined from the base (the original protocol)",
                    "cloze_post_neg": "trained cloze prompt, negatives mined from the trained model",
                    "paraphrase_post_neg": "held-out paraphrases (never trained on), negatives mined after training",
                }.items()
                if k in PROTOCOLS
            },
            "previous_results": "benchmarks/results/pretrainrl_synthetic_v1.json (the world without entrenched "
            "facts, 3 seeds of one base, cloze prompt and base negatives only)",
            "paired_gain": gain_entrenched,
            "paired_gain_note": "entrenched regime: facts whose popular falsehood the corpus states 8x, the truth 1x; "
            "difference of Hit@1 (first arm minus second), mean over seeds with a 95% t interval",
            "paired_gain_current_tail": gain_tail,
            "base": {
                w: {p: bases[s][p] for p in (*PROTOCOLS, "perplexity")}
                for w, s in zip(world_seeds, [args.seeds[0]] if args.world_seed is not None else args.seeds)
            },
            "methods": table,
        },
        overwrite=True,
    )
    plot(table, args.out.with_suffix(".png"))
    headline = gain_entrenched.get("pretrainrl_vs_no_debias", {}).get("tail_hit1_paraphrase")
    print(json.dumps({"paired_gain[pretrainrl_vs_no_debias][tail_hit1_paraphrase]": headline}, indent=1))


def plot(table: dict, path: Path) -> None:
    """Hit@1 per method for the entrenched and tail buckets under the three protocols (95 % t intervals)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    width = 0.8 / len(PROTOCOLS)
    for ax, bucket in zip(axes, ("entrenched", "tail")):
        for j, protocol in enumerate(PROTOCOLS):
            stats = [table[m][protocol].get(bucket, {}).get("hit1") for m in methods]
            means = [s["mean"] if s else 0 for s in stats]
            errs = [(s["mean"] - s["ci_low"]) if s and s["ci_low"] is not None else 0 for s in stats]
            ax.bar([i + j * width for i in range(len(methods))], means, width, yerr=errs, capsize=2, label=protocol)
        ax.set_xticks(
            [i + width * (len(PROTOCOLS) - 1) / 2 for i in range(len(methods))], methods, rotation=25, fontsize=8
        )
        ax.set_title(f"{bucket} facts: Hit@1")
    axes[0].legend(fontsize=8)
    fig.suptitle("PretrainRL arms on the synthetic world (mean and 95% t interval over seeds)")
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    main()
