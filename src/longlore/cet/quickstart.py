"""CET's quickstart: a one-epoch MiniLM run of vanilla fine-tuning and CET on the UMLS/MovieLens
questions (about a minute on 2 cores); the multi-seed comparison is benchmarks/cet_retention.py."""

from __future__ import annotations

from pathlib import Path

from longlore.cet.config import CETConfig
from longlore.cet.data import save_questions
from longlore.cet.kgqa import build_benchmark
from longlore.cet.model import zero_shot_accuracy
from longlore.cet.trainer import train
from longlore.core.models import load_encoder
from longlore.core.progress import console

PROBES = ("probe_isa", "probe_movies")


def run(out_dir: Path) -> str:
    """Build small question sets, score the pretrained encoder, fine-tune with vanilla CE and CET."""
    out_dir = Path(out_dir) / "cet"
    data = build_benchmark(n_train=64, n_test=60, n_probe=60, seed=0)
    for name, qs in data.items():
        save_questions(out_dir / f"{name}.jsonl", qs, overwrite=True)
    example = data["target_train"][0]
    encoder, tokenizer = load_encoder("minilm")
    pre = {name: zero_shot_accuracy(encoder, tokenizer, data[name], 64) for name in ("target_test", *PROBES)}
    rows = [
        f"| pretrained (zero-shot, no training) | {pre['target_test']:.3f} | {pre['probe_isa']:.3f} | "
        f"{pre['probe_movies']:.3f} | - |"
    ]
    for method in ("vanilla", "cet"):
        console.print(f"[bold]cet quickstart[/bold]: {method}, 1 epoch on {len(data['target_train'])} questions")
        cfg = CETConfig(
            method=method, encoder="minilm", epochs=1, batch_size=16, k=3, theta=0.5, neighbour_space="answer"
        )
        result = train(
            cfg,
            data["target_train"],
            eval_sets={"target_test": data["target_test"]},
            retention_sets={p: data[p] for p in PROBES},
            cache_dir=out_dir / "cache",
        )
        last = result.history[-1]
        rows.append(
            f"| {method} | {last['target_test_acc']:.3f} | {last['probe_isa_zs']:.3f} | "
            f"{last['probe_movies_zs']:.3f} | {result.seconds:.0f} |"
        )
    table = "\n".join(rows)
    return (
        "## cet: causal effect tuning (multiple-choice QA that keeps pretrained knowledge)\n\n"
        f"Questions built from UMLS (pykeen) and MovieLens-100k (recbole), e.g. *{example.question}* "
        f"options {list(example.options)}, gold *{example.gold}*. Files in `{out_dir}`.\n\n"
        "| model | target test acc | probe: UMLS isa (zero-shot) | probe: movie genres (zero-shot) | train s |\n"
        f"|---|---|---|---|---|\n{table}\n\n"
        "One epoch, one seed, 64 training questions: a smoke test of the pipeline, not the comparison "
        "(see `benchmarks/cet_retention.py` and docs/cet.md for the seeded comparison with paired CIs).\n"
    )
