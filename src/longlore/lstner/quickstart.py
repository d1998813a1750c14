"""LST-NER quickstart: a small MiniLM source tagger, then 50-sentence transfer to e-commerce NER.

Kept to ~1-2 minutes on 2 cores: 320 source sentences for one epoch (batch 16), 50 target
sentences for 5 epochs of batch 8, 100 test sentences. The full few-shot comparison is
``benchmarks/lstner_fewshot.py``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from longlore.core.progress import console
from longlore.lstner.config import LSTNERConfig
from longlore.lstner.data import LabelSet
from longlore.lstner.synth import TARGET_TYPES, source_corpus, target_corpus
from longlore.lstner.trainer import train_source, train_target

EXAMPLES = [
    "Flash sale on Zaten running shoes imported from Portugal !",
    "is the Vomar 256GB fast charging smartphone worth it",
]


def run(out_dir: Path) -> str:
    """Train, transfer, evaluate and save; returns a Markdown section for the quickstart report."""
    start = time.perf_counter()
    base = LSTNERConfig(encoder="minilm", max_len=48, batch_size=16)
    source = train_source(source_corpus(320, seed=0), replace(base, epochs=1), dev=source_corpus(100, split="test"))
    src_f1 = source.evaluate(source_corpus(100, seed=1, split="test"))["f1"]
    train, test = target_corpus(50, seed=1), target_corpus(100, split="test")
    labels = LabelSet(TARGET_TYPES)
    rows, lst = [], None
    for method in ("source-then-target", "lstner"):
        console.log(f"lstner quickstart: training {method} on 50 target sentences")
        pipe = train_target(train, replace(base, epochs=5, batch_size=8, l_gw=0.1), method, source, labels=labels)
        scores = pipe.evaluate(test)
        rows.append(f"| {method} | {scores['f1']:.1f} | {scores['precision']:.1f} | {scores['recall']:.1f} |")
        lst = pipe
    lst.save_pretrained(out_dir / "lstner_model", overwrite=True)
    preds = "\n".join(
        f"- `{text}` -> " + ", ".join(f"{e['text']} [{e['type']}]" for e in lst.predict_text(text)) for text in EXAMPLES
    )
    return (
        "## lstner: cross-domain NER by label-graph matching\n\n"
        f"MiniLM source tagger (PER/ORG/LOC/MISC over KJV names, 320 sentences, 1 epoch): strict F1 {src_f1:.1f} "
        "on held-out source sentences. Transfer to e-commerce NER (BRAND/PRODUCT/CATEGORY/ATTRIBUTE/ORIGIN/"
        "AUDIENCE) from 50 sentences, 5 epochs of batch 8; 100 test sentences whose brands never occur in training:\n\n"
        "| method | strict F1 | P | R |\n|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        f"LST-NER predictions on raw text:\n{preds}\n\n"
        f"Model saved to `{out_dir / 'lstner_model'}` (`longlore lstner predict --model ... TEXT`). "
        f"One seed, small budget: the 10-seed comparison with paired CIs is `benchmarks/lstner_fewshot.py`. "
        f"Took {time.perf_counter() - start:.0f} s.\n"
    )
