"""Quickstart: a small synthetic world end to end, then mining on real SmolLM2 (~2 minutes on 2 cores)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from longlore.core.io import write_json
from longlore.core.progress import console


def _row(name: str, summary: dict, ppl: float) -> str:
    tail, head = summary.get("tail", {}), summary.get("head", {})
    return (
        f"| {name} | {head.get('hit1', float('nan')):.2f} | {tail.get('hit1', float('nan')):.2f} | "
        f"{tail.get('p_truth', float('nan')):.3f} | {tail.get('high_false_count', 0)} | {ppl:.2f} |"
    )


def run(out_dir: Path) -> str:
    """Pretrain a small Llama on a 60-person world, continue with PretrainRL, show the state change;
    then mine SmolLM2's own wrong release years for a few MovieLens movies. Returns Markdown."""
    from longlore.pretrainrl.base import load_model
    from longlore.pretrainrl.config import PretrainRLConfig, WorldConfig
    from longlore.pretrainrl.facts import movielens_facts
    from longlore.pretrainrl.metrics import evaluate_facts, summarize
    from longlore.pretrainrl.mining import mine_negatives, save_negatives
    from longlore.pretrainrl.scoring import make_blocks, perplexity
    from longlore.pretrainrl.trainer import train
    from longlore.pretrainrl.world import SyntheticWorld

    out_dir = Path(out_dir)
    start = time.time()
    torch.manual_seed(0)
    world = SyntheticWorld.generate(WorldConfig(n_entities=60, max_count=60, heldout_docs=60))
    model, tok = load_model("small-llama:seed=0")
    blocks, heldout = make_blocks(tok, world.corpus, 64), make_blocks(tok, world.heldout, 64)
    console.print("[bold]pretrainrl quickstart[/]: pretraining a small Llama on the synthetic world")
    train(
        model,
        tok,
        PretrainRLConfig(fact_objective="none", steps=150, lr=3e-3, warmup=20, batch_size=15, fact_batch_size=1),
        blocks=blocks,
    )
    cfg = PretrainRLConfig(steps=60, fact_batch_size=32, lr=1e-3, mine_every=0)
    negatives = mine_negatives(model, tok, world.facts, cfg)
    save_negatives(out_dir / "negatives.jsonl", negatives, overwrite=True)
    before = summarize(evaluate_facts(model, tok, world.facts, negatives))
    ppl_before = perplexity(model, heldout)
    train(model, tok, cfg, blocks=blocks, facts=world.facts, negatives=negatives)
    after = summarize(evaluate_facts(model, tok, world.facts, negatives))
    ppl_after = perplexity(model, heldout)
    example = next(f for f in world.facts if f.bucket == "tail" and negatives[f.id].negatives)

    console.print("mining SmolLM2-135M-Instruct's own answers for 6 MovieLens release years")
    lm, lm_tok = load_model("smollm2-135m")
    movies = [f for f in movielens_facts(n_movies=40, seed=1) if f.relation == "release_year"][:6]
    mined = mine_negatives(lm, lm_tok, movies, PretrainRLConfig(num_negatives=3, mine_max_new_tokens=6))
    states = evaluate_facts(lm, lm_tok, movies, mined, batch_size=16)
    write_json(
        out_dir / "pretrainrl_quickstart.json",
        {"before": before, "after": after, "ppl_before": ppl_before, "ppl_after": ppl_after},
        overwrite=True,
    )
    lines = [
        "## PretrainRL: debias-then-learn against factual hallucination",
        "",
        f"A 60-person synthetic world ({len(world.facts)} facts), a small Llama pretrained 150 steps, then "
        "60 steps of PretrainRL (24 DPO debias steps on beam-mined falsehoods, 36 learn steps, corpus NTP throughout).",
        "",
        "| model | head Hit@1 | tail Hit@1 | tail P(truth) | tail high-prob falsehoods | held-out ppl |",
        "|---|---|---|---|---|---|",
        _row("pretrained", before, ppl_before),
        _row("+ PretrainRL", after, ppl_after),
        "",
        f"Example tail fact: `{example.prompt}` -> `{example.object}`; mined falsehoods: "
        f"{', '.join(negatives[example.id].negatives)}.",
        "",
        "SmolLM2-135M-Instruct on MovieLens release years (beam-mined wrong years; truth rank among 50+ years):",
        "",
        "| movie | truth | mined falsehoods | P(truth) | rank |",
        "|---|---|---|---|---|",
        *[
            f"| {f.subject} | {f.object} | {', '.join(mined[f.id].negatives)} | {s.p_truth:.3f} | {s.rank} |"
            for f, s in zip(movies, states)
        ],
        "",
        f"_({time.time() - start:.0f} s; files in `{out_dir}`)_",
    ]
    return "\n".join(lines)
